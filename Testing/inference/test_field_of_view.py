"""The field-of-view check: a scan's in-plane extent against the training scans', in any orientation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.inference.field_of_view import (
    LARGER,
    SMALLER,
    ensemble_range,
    field_of_view_check,
    fov_of_file,
    in_plane_fov_mm,
    trained_range,
)
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import ModelManifest

#: Index axes of an identity LPS direction: i runs left (LR), j posterior (AP), k superior (SI).
SHAPE, SPACING = (20, 100, 150), (4.0, 2.0, 1.5)


def _volume(direction=None, shape=SHAPE, spacing=SPACING):
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    return Volume(np.zeros(shape, np.float32), np.asarray(spacing), np.zeros(3), direction)


def test_the_extent_follows_the_anatomy_not_the_array_order(tmp_path):
    assert in_plane_fov_mm(SHAPE, SPACING, np.eye(3)) == (225.0, 200.0)  # SI = 150 x 1.5, AP = 100 x 2
    # The same scan stored with its axes in another order (k, i, j) and one axis flipped.
    order = (2, 0, 1)
    direction = np.eye(3)[:, order] * np.array([1.0, -1.0, 1.0])
    turned = _volume(direction, tuple(SHAPE[n] for n in order), tuple(SPACING[n] for n in order))
    assert in_plane_fov_mm(turned.shape, turned.spacing, turned.direction) == (225.0, 200.0)
    path = write_volume(turned, tmp_path / "turned.nii.gz")
    assert fov_of_file(path) == pytest.approx((225.0, 200.0))  # from the header alone
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    assert fov_of_file(tmp_path / "broken.nii.gz") is None  # left to reading the case to report


def test_a_scan_far_smaller_or_larger_than_the_training_scans_is_warned_about():
    trained = [220.0, 380.0]
    scan = _volume()  # 225 x 200 mm: inside
    assert field_of_view_check(scan, trained)["warning"] is None
    record = field_of_view_check(_volume(spacing=(4.0, 2.0 * 0.65, 1.5 * 0.65)), trained)  # 146 x 130 mm
    assert record["in_plane_mm"] == [146.2, 130.0] and record["trained_mm"] == trained
    assert "146 x 130 mm" in record["warning"] and "220-380 mm" in record["warning"]
    edge = SMALLER * 220.0 / 200.0  # the factor that puts AP (200 mm) at the reach
    assert field_of_view_check(_volume(spacing=(4.0, 2.0 * (edge + 0.01), 1.5)), trained)["warning"] is None
    assert field_of_view_check(_volume(spacing=(4.0, 2.0 * (edge - 0.01), 1.5)), trained)["warning"] is not None
    large = 380.0 * LARGER / 150 + 0.01  # mm per pixel that puts SI just past the reach
    assert field_of_view_check(_volume(spacing=(4.0, 2.0, large)), trained)["warning"] is not None
    assert field_of_view_check(_volume(spacing=(4.0, 2.0, 380.0 * LARGER / 150 - 0.1)), trained)["warning"] is None
    assert SMALLER < 1.0 < LARGER
    assert field_of_view_check(scan, None) == {"in_plane_mm": [225.0, 200.0], "trained_mm": None, "warning": None}


def test_a_widened_field_of_view_counts_as_the_network_sees_it():
    """Weights with min_fov_mm 300 see a 146 mm scan widened to 300 mm, as every training scan below 300 mm."""
    small = _volume(spacing=(4.0, 2.0 * 0.65, 1.5 * 0.65))
    assert field_of_view_check(small, [220.0, 380.0], min_fov_mm=300.0)["warning"] is None
    assert field_of_view_check(small, [220.0, 380.0])["warning"] is not None


def test_the_trained_range_joins_the_parents_and_an_ensemble_trusts_what_all_learnt():
    assert trained_range([(224.0, 224.0), (381.04, 300.0)]) == [224.0, 381.0]
    assert trained_range([(224.0, 224.0)], parent=[150.0, 300.0]) == [150.0, 300.0]
    assert trained_range([]) is None and trained_range([], parent=[1.0, 2.0]) == [1.0, 2.0]
    assert trained_range([None, (224.0, 200.0)]) == [200.0, 224.0]
    assert ensemble_range([[200.0, 400.0], [220.0, 380.0]]) == [220.0, 380.0]
    assert ensemble_range([[200.0, 400.0], None]) is None


def test_the_manifest_carries_the_range_and_refuses_a_bad_one():
    base = {"architecture": "safnet", "model_config": {}, "preprocess": {}}
    assert ModelManifest.from_dict(base).trained_fov_mm is None  # manifests written before it
    manifest = ModelManifest.from_dict({**base, "trained_fov_mm": [221.0, 390.6]})
    assert json.loads(json.dumps(manifest.to_dict()))["trained_fov_mm"] == [221.0, 390.6]
    for bad in ([221.0], [390.0, 221.0], [0, 100], ["a", "b"], [True, 5]):
        with pytest.raises(ValueError, match="trained_fov_mm"):
            ModelManifest.from_dict({**base, "trained_fov_mm": bad})
