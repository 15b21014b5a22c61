"""Metrics against analytic shapes (explicit tolerances) and the partial-label NaN rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from SAFNetSpineLib.evaluation import dice_per_structure, score_case, surface_distances
from SAFNetSpineLib.evaluation.metrics import level_named_correctly

SPACING = np.array([0.8, 0.8, 1.5])  # anisotropic, mm


def _distance_from(center_mm, shape=(64, 64, 36)):
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij"), -1)
    return np.linalg.norm(grid - np.asarray(center_mm), axis=-1)


def test_concentric_spheres():
    """Radii 12 and 8 mm: Dice 2*8^3/(8^3+12^3); every surface point is 4 mm from the other surface."""
    r = _distance_from((25.6, 25.6, 27.0))
    big, small = (r <= 12).astype(np.int64) * 3, (r <= 8).astype(np.int64) * 3
    scores = score_case(big, small, SPACING, [3])[3]
    assert scores["dice"] == pytest.approx(2 * 8**3 / (8**3 + 12**3), abs=0.01)
    # Tolerance: one in-plane voxel (edge voxels sit up to a voxel inside the true surface).
    assert scores["msd_mm"] == pytest.approx(4.0, abs=0.8)
    assert scores["hd95_mm"] == pytest.approx(4.0, abs=0.8)


def test_offset_spheres():
    """Radius 10 mm, centres 4 mm apart: Dice = (4r+d)(2r-d)^2 / (16 r^3) = 0.704; HD <= d."""
    a = (_distance_from((25.6, 25.6, 27.0)) <= 10).astype(np.int64)
    b = (_distance_from((29.6, 25.6, 27.0)) <= 10).astype(np.int64)
    scores = score_case(a * 12, b * 12, SPACING, [12])[12]
    assert scores["dice"] == pytest.approx((40 + 4) * (20 - 4) ** 2 / 16000, abs=0.01)
    # Point-to-surface distance on a sphere shifted by d is about d*|cos(theta)|, mean d/2.
    assert scores["msd_mm"] == pytest.approx(2.0, abs=0.5)
    assert 2.5 <= scores["hd95_mm"] <= 4.0 + 0.8


def test_offset_cubes_exact_dice_and_hausdorff():
    """Cubes of 20 voxels shifted by 5 voxels along i: Dice = 15/20 exactly; HD95 <= 5 * 0.8 mm."""
    a = np.zeros((40, 30, 30), np.int64)
    b = np.zeros_like(a)
    a[5:25, 5:25, 5:25] = 4
    b[10:30, 5:25, 5:25] = 4
    scores = score_case(a, b, SPACING, [4])[4]
    assert scores["dice"] == pytest.approx(0.75, abs=1e-12)
    assert 0.0 < scores["hd95_mm"] <= 4.0 + 1e-6
    msd, hd95 = surface_distances(a == 4, b == 4, (1.0, 1.0, 1.0))
    assert hd95 <= 5.0 + 1e-6 and 0 < msd < 5.0


def test_crop_does_not_change_distances():
    a = np.zeros((50, 40, 30), bool)
    b = np.zeros_like(a)
    a[3:10, 3:9, 4:12] = True
    b[5:14, 2:9, 6:13] = True
    small = surface_distances(a, b, SPACING)
    padded = surface_distances(np.pad(a, 20), np.pad(b, 20), SPACING)
    assert small == pytest.approx(padded, abs=1e-6)


def test_only_annotated_structures_are_scored():
    reference = np.zeros((10, 10, 10), np.int64)
    reference[1:4] = 2
    reference[5:8] = 12
    prediction = reference.copy()
    prediction[0] = 7  # an unannotated structure found by the model: not scored
    prediction[5:8] = 0  # the annotated disc missed
    scores = score_case(prediction, reference, (1, 1, 1), annotated=[2, 12, 3])
    assert set(scores) == {2, 3, 12}
    assert scores[2]["dice"] == 1.0 and scores[2]["msd_mm"] == 0.0
    assert scores[12]["dice"] == 0.0 and math.isnan(scores[12]["msd_mm"])
    assert all(math.isnan(v) for v in scores[3].values())  # annotated but absent from both
    assert dice_per_structure(prediction, reference, [7]) == {7: 0.0}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_structure(np.zeros((2, 2, 2), int), np.zeros((2, 2, 3), int), [1])


def test_level_naming_detects_an_off_by_one_vertebra():
    reference = np.zeros((12, 12, 12), np.int64)
    reference[1:4], reference[5:8], reference[9:11] = 2, 3, 4  # L5, L4, L3
    shifted = np.zeros_like(reference)
    shifted[1:4], shifted[5:8] = 3, 4  # every level called one too high; L3 missed
    scores = score_case(shifted, reference, (1, 1, 1), [2, 3, 4, 5], surface=False)
    assert [scores[i]["level_ok"] for i in (2, 3, 4)] == [0.0, 0.0, 0.0]
    assert math.isnan(scores[5]["level_ok"])
    assert score_case(reference, reference, (1, 1, 1), [2, 3, 4], surface=False)[3]["level_ok"] == 1.0
    mostly = reference.copy()
    mostly[5, :, :] = 4  # a third of L4 mislabelled: still named L4 by majority
    assert level_named_correctly(mostly, reference, 3) == 1.0
