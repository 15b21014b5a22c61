"""The field-of-view check: a scan's in-plane extent against the training scans', in any orientation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.inference.field_of_view import (
    FIT_BELOW,
    LARGER,
    SMALLER,
    ensemble_range,
    field_of_view_check,
    fitted_preprocess,
    fov_of_file,
    in_plane_fov_mm,
    trained_range,
)
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.preprocessing.config import PreprocessConfig
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
    assert field_of_view_check(scan, None) == {"in_plane_mm": [225.0, 200.0], "trained_mm": None,
                                               "widened_to_mm": None, "window_mm": None, "warning": None}
    # What the network saw judges: a window of a trained size in a scan far larger is not warned about.
    huge = _volume(spacing=(4.0, 2.0, large))
    assert field_of_view_check(huge, trained, window_mm=(380.0, 200.0)) == {
        "in_plane_mm": [round(150 * large, 1), 200.0], "trained_mm": trained, "widened_to_mm": None,
        "window_mm": [380.0, 200.0], "warning": None}


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


def test_a_field_of_view_that_would_be_warned_about_is_widened_to_the_smallest_trained_one():
    trained, own = [220.0, 380.0], PreprocessConfig()
    small = _volume(spacing=(4.0, 2.0 * 0.65, 1.5))  # 225 x 130 mm: AP under 0.75 x 220
    fitted = fitted_preprocess(small, own, trained)
    assert fitted.min_fov_mm == 220.0 and fitted.widen_fill == "network_zero"
    assert fitted.target_shape == own.target_shape and fitted.ap_crop_fraction == own.ap_crop_fraction
    record = field_of_view_check(small, trained, fitted.min_fov_mm)
    assert record["widened_to_mm"] == 220.0 and record["warning"] is None  # the network sees a trained size
    assert field_of_view_check(small, trained)["warning"] is not None  # not widened: warned
    edge = FIT_BELOW * 220.0 / 200.0  # the factor that puts AP (200 mm) at the reach
    assert fitted_preprocess(_volume(spacing=(4.0, 2.0 * (edge + 0.01), 1.5)), own, trained) is own
    assert fitted_preprocess(_volume(spacing=(4.0, 2.0 * (edge - 0.01), 1.5)), own, trained).min_fov_mm == 220.0
    assert fitted_preprocess(small, own, None) is own  # no trained range, nothing to fit to
    wider = PreprocessConfig(min_fov_mm=300.0)  # weights that widen every scan further already
    assert fitted_preprocess(small, wider, trained) is wider
    own_fill = PreprocessConfig(min_fov_mm=100.0, widen_fill="image_zero")  # trained widened: keeps its fill
    assert fitted_preprocess(small, own_fill, trained) == PreprocessConfig(min_fov_mm=220.0, widen_fill="image_zero")


def test_the_bundled_weights_find_a_small_field_of_view_s_bodies_once_it_is_widened():
    """The sample cut to 0.4 of its field of view (148 x 112 mm) shows the network bodies 1.5-2 times the largest
    it learnt; widened to the smallest trained field they have a learnt size (0.84 against 0.57 when written)."""
    import dataclasses

    from SAFNetSpineLib.data.phantom import SAMPLE_OPTIONS, SAMPLE_SEED, make_phantom
    from SAFNetSpineLib.inference import Segmenter
    from SAFNetSpineLib.labels import VERTEBRA_IDS
    from SAFNetSpineLib.preprocessing.orientation import match_network_axes
    from SAFNetSpineLib.weights import default_weights_dir

    image, labels = make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)
    axes, _ = match_network_axes(image.direction)
    keep = [slice(None)] * 3
    for axis in axes[1:]:
        n = image.shape[axis]
        keep[axis] = slice(int(0.3 * n), int(0.3 * n) + int(round(0.4 * n)))
    scan = dataclasses.replace(image, array=np.asarray(image.array[tuple(keep)], np.float32))
    truth = np.isin(labels.array[tuple(keep)], VERTEBRA_IDS)
    dice = {}
    for fit in (True, False):
        result = Segmenter([default_weights_dir()], device="cpu", precision="fp32", fit_fov=fit).segment(scan)
        found = np.isin(result.labels.array, VERTEBRA_IDS)
        dice[fit] = 2 * (found & truth).sum() / (found.sum() + truth.sum())
        assert (result.field_of_view["widened_to_mm"] is not None) == fit
    assert dice[True] >= 0.75 and dice[True] >= dice[False] + 0.15, dice
