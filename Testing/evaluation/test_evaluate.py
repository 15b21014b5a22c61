"""evaluate_model: predictions scored in the input's own geometry, one row per annotated structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from SAFNetSpineLib.data.cases import load_case, load_case_folder
from SAFNetSpineLib.evaluation import evaluate_model, mean_metric, predict_case, score_case
from SAFNetSpineLib.weights import load_model


@pytest.fixture(scope="module")
def partial_phantoms(tmp_path_factory):
    """Two small phantoms, the second annotated for lumbar vertebral bodies only."""
    from SAFNetSpineLib.data.phantom import PhantomOptions, write_phantom_dataset

    folder = write_phantom_dataset(tmp_path_factory.mktemp("ph"), 2, 7,
                                   PhantomOptions(fov_mm=(220.0, 160.0), inplane_spacing_mm=(2.0, 2.4), slices=(8, 9)))
    data = json.loads((folder / "dataset.json").read_text())
    data["cases"][1]["annotated_labels"] = [2, 3, 4, 5, 6]
    (folder / "dataset.json").write_text(json.dumps(data))
    return load_case_folder(folder)


def test_rows_cover_annotated_structures_in_input_space(partial_phantoms, tiny_weights):
    torch.manual_seed(0)
    model, manifest = load_model(tiny_weights)
    rows = evaluate_model(model, manifest, partial_phantoms, "cpu", surface=False)
    assert [r["label_id"] for r in rows if r["case"] == partial_phantoms[1].case_id] == [2, 3, 4, 5, 6]
    assert len([r for r in rows if r["case"] == partial_phantoms[0].case_id]) == 19
    assert all(np.isnan(r["msd_mm"]) for r in rows)

    image, reference = load_case(partial_phantoms[1])
    prediction = predict_case(model, image, manifest.preprocess, "cpu")
    assert prediction.same_grid(image) and prediction.is_label
    expected = score_case(prediction.array.astype(np.int64), reference.array, image.spacing, [2, 3, 4, 5, 6],
                          surface=False)
    mine = {r["label_id"]: r["dice"] for r in rows if r["case"] == partial_phantoms[1].case_id}
    assert mine == pytest.approx({k: v["dice"] for k, v in expected.items()}, nan_ok=True)
    assert mean_metric(rows, "dice", [2, 3]) == pytest.approx(
        np.nanmean([r["dice"] for r in rows if r["label_id"] in (2, 3)]), nan_ok=True)
