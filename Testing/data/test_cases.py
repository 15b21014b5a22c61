"""Case folders: both layouts, partial annotations, and every bad input named in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.data.cases import Case, load_case, load_case_folder
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.labels import FOREGROUND_IDS
from SAFNetSpineLib.volume import Volume


def _pair(seed: int = 0, shape=(6, 10, 8), spacing=(4.0, 1.2, 1.2)):
    rng = np.random.default_rng(seed)
    image = Volume(rng.normal(100, 20, shape).astype(np.float32), np.array(spacing))
    label = np.zeros(shape, np.uint8)
    label[2:4, 2:5, 2:6] = 3
    label[2:4, 6:8, 2:6] = 12
    return image, Volume(label, np.array(spacing), is_label=True)


def _common_folder(root, annotated=((3, 12), (2, 3, 4, 5, 6))):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    entries = []
    for index, ids in enumerate(annotated):
        name = f"site_{index:02d}"
        image, label = _pair(index)
        write_volume(image, root / "imagesTr" / f"{name}.nii.gz")
        write_volume(label, root / "labelsTr" / f"{name}.nii.gz")
        entries.append({"case": name, "image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz",
                        "annotated_labels": list(ids)})
    (root / "dataset.json").write_text(json.dumps({"cases": entries}))
    return root


def test_common_layout_lists_cases_with_their_annotations(tmp_path):
    cases = load_case_folder(_common_folder(tmp_path / "ds"))
    assert [c.case_id for c in cases] == ["site_00", "site_01"]
    assert cases[0].annotated_labels == (3, 12)
    assert cases[1].annotated_labels == (2, 3, 4, 5, 6)
    assert cases[0].image_path.is_file() and cases[0].label_path.is_file()
    mask = cases[0].annotated_mask()
    assert mask.shape == (20,) and mask[[0, 3, 12]].all() and mask.sum() == 3


def test_load_case_returns_image_and_int_labels_on_one_grid(tmp_path):
    case = load_case_folder(_common_folder(tmp_path / "ds"))[0]
    image, label = load_case(case)
    assert image.same_grid(label)
    assert label.array.dtype == np.int64
    assert set(np.unique(label.array)) == {0, 3, 12}


def test_nnunet_training_list_is_fully_annotated(tmp_path):
    root = _common_folder(tmp_path / "ds")
    data = json.loads((root / "dataset.json").read_text())
    training = [{"image": "./" + e["image"], "label": "./" + e["label"]} for e in data["cases"]]
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    cases = load_case_folder(root)
    assert [c.case_id for c in cases] == ["site_00", "site_01"]
    assert all(c.annotated_labels == FOREGROUND_IDS for c in cases)


def test_mrspineseg_layout(tmp_path):
    root = tmp_path / "MRSpineSeg"
    (root / "MR").mkdir(parents=True)
    (root / "Mask").mkdir()
    for number in (10, 2):
        image, label = _pair(number)
        write_volume(image, root / "MR" / f"Case{number}.nii.gz")
        write_volume(label, root / "Mask" / f"mask_case{number}.nii.gz")
    cases = load_case_folder(root)
    assert [c.case_id for c in cases] == ["Case2", "Case10"]
    assert all(c.annotated_labels == FOREGROUND_IDS for c in cases)
    (root / "Mask" / "mask_case10.nii.gz").unlink()
    with pytest.raises(SpineInputError, match="Case10.*mask file is missing"):
        load_case_folder(root)


def test_missing_listed_file_names_the_case(tmp_path):
    root = _common_folder(tmp_path / "ds")
    (root / "labelsTr" / "site_01.nii.gz").unlink()
    with pytest.raises(SpineInputError, match="site_01.nii.gz.*case site_01: label file listed in dataset.json"):
        load_case_folder(root)


def test_annotated_id_outside_the_table(tmp_path):
    root = _common_folder(tmp_path / "ds", annotated=((3, 25),))
    with pytest.raises(SpineInputError, match=r"case site_00: annotated label ids \[25\]"):
        load_case_folder(root)


def test_label_values_outside_the_table_are_refused_when_loaded(tmp_path):
    root = _common_folder(tmp_path / "ds")
    image, label = _pair(0)
    bad = label.array.copy()
    bad[0, 0, 0] = 42
    write_volume(label.with_array(bad), root / "labelsTr" / "site_00.nii.gz")
    case = load_case_folder(root)[0]
    with pytest.raises(SpineInputError, match=r"site_00.nii.gz: case site_00: label values \[42\]") as error:
        load_case(case)
    assert "\n" not in str(error.value)


def test_mismatched_grids_are_refused_when_loaded(tmp_path):
    root = _common_folder(tmp_path / "ds")
    _, label = _pair(0, spacing=(4.0, 1.2, 1.5))
    write_volume(label, root / "labelsTr" / "site_01.nii.gz")
    case = load_case_folder(root)[1]
    with pytest.raises(SpineInputError, match="case site_01: label grid .* does not match the image grid"):
        load_case(case)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "unreadable dataset.json"),
        ('{"cases": 3}', "no 'cases'"),
        ('{"cases": []}', "lists no cases"),
    ],
)
def test_malformed_dataset_json(tmp_path, content, problem):
    root = _common_folder(tmp_path / "ds")
    (root / "dataset.json").write_text(content)
    with pytest.raises(SpineInputError, match=problem):
        load_case_folder(root)


def test_duplicate_case_ids_and_unknown_folders(tmp_path):
    root = _common_folder(tmp_path / "ds")
    data = json.loads((root / "dataset.json").read_text())
    data["cases"][1]["case"] = "site_00"
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(SpineInputError, match="'site_00' is listed twice"):
        load_case_folder(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpineInputError, match="not a dataset folder"):
        load_case_folder(tmp_path / "empty")
    with pytest.raises(SpineInputError, match="dataset folder not found"):
        load_case_folder(tmp_path / "nowhere")


def test_case_is_frozen():
    case = Case("a", Path("a.nii.gz"), Path("a_label.nii.gz"), (1,))
    with pytest.raises(AttributeError):
        case.case_id = "b"


@pytest.mark.realdata
def test_real_dataset_lists_partial_annotations(real_data_dir):
    cases = load_case_folder(real_data_dir)
    assert len(cases) == 64
    by_prefix = {c.case_id.split("_")[0]: c.annotated_labels for c in cases}
    assert by_prefix["myo"] == (2, 3, 4, 5, 6)
    assert by_prefix["ivd"] == (11, 12, 13, 14, 15)
    image, label = load_case(cases[0])
    assert image.same_grid(label)
    assert set(np.unique(label.array)) <= {0, *cases[0].annotated_labels}
