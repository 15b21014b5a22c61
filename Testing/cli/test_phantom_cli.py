"""``phantom --anatomy``: the cartoon spine or the plausible lumbar spine of the bundled sample, as training data."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.labels import L5_ID, SACRUM_ID


def _superior_extent_mm(path, label_id: int) -> float:
    """Extent (mm) along the patient's superior axis of one label in a label file."""
    image = sitk.ReadImage(str(path))
    index = np.argwhere(sitk.GetArrayFromImage(image) == label_id)[:, ::-1]  # (x, y, z) index order
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in index.astype(float)])
    return float(np.ptp(points[:, 2]))


def test_lumbar_phantoms_carry_the_whole_sacrum_and_bodies_only(tmp_path):
    out = tmp_path / "lumbar"
    assert main(["phantom", "-o", str(out), "--n", "1", "--seed", "3000", "--anatomy", "lumbar", "--bodies-only"]) == 0
    labels = next((out / "labelsTr").iterdir())
    sacrum, l5 = _superior_extent_mm(labels, SACRUM_ID), _superior_extent_mm(labels, L5_ID)
    # The whole sacrum (S1-S5, about 100 mm, tilted) in view, not an S1-sized block: several L5 heights tall.
    assert sacrum > 2.5 * l5, (sacrum, l5)
    assert 20.0 < l5 < 45.0, l5


def test_an_unknown_anatomy_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["phantom", "-o", str(tmp_path / "p"), "--anatomy", "thoracic"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
