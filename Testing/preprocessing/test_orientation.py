"""Network axes come from the direction cosines: every one of the 48 storage orders gives the same network input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from SAFNetSpineLib.preprocessing import (
    PreprocessConfig,
    match_network_axes,
    permute_axes,
    preprocess_image,
    preprocess_label,
    reorient_to_network_axes,
)
from SAFNetSpineLib.volume import Volume

ORIENTATIONS = [(axes, flips) for axes in itertools.permutations(range(3))
                for flips in itertools.product((False, True), repeat=3)]


def rotation(degrees_x: float, degrees_y: float, degrees_z: float) -> np.ndarray:
    ax, ay, az = np.deg2rad([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def lps_of(volume: Volume, index) -> np.ndarray:
    return volume.origin + volume.direction @ (volume.spacing * np.asarray(index, dtype=np.float64))


# Stored as identity LPS: i runs to the patient's left, j to posterior, k to superior.
SHAPE = (12, 20, 16)
SPACING = (2.0, 1.5, 0.8)
# Left (high i), anterior but inside the central AP half (j = 6 of 20, kept range 5..14),
# superior (high k).
MARKER = (10, 6, 13)
# Network (D, H, W): D left->right: 12-1-10 = 1; H superior->inferior: 16-1-13 = 2;
# W anterior->posterior, cropped to j = 5..14 and halved: (6-5)//2 = 0.
EXPECTED_NETWORK_VOXEL = (1, 2, 0)
CONFIG = PreprocessConfig(target_shape=(12, 16, 5), ap_crop_fraction=0.5)


def marker_volume(direction: np.ndarray) -> Volume:
    rng = np.random.default_rng(0)
    array = rng.uniform(0.0, 1.0, SHAPE).astype(np.float32)
    array[MARKER] = 100.0
    return Volume(array, SPACING, (-11.0, 23.5, 40.0), direction)


@pytest.mark.parametrize("tilt", [(0.0, 0.0, 0.0), (12.0, -9.0, 7.0)], ids=["axial", "oblique"])
def test_marker_lands_in_the_same_network_voxel_for_all_48_orders(tilt):
    base = marker_volume(rotation(*tilt))
    reference, _ = preprocess_image(base, CONFIG)
    assert np.unravel_index(np.argmax(reference), reference.shape) == EXPECTED_NETWORK_VOXEL
    for axes, flips in ORIENTATIONS:
        stored = permute_axes(base, axes, flips)
        # The fixture really moves nothing: the marker keeps its patient position.
        marker_index = np.unravel_index(np.argmax(stored.array), stored.shape)
        np.testing.assert_allclose(lps_of(stored, marker_index), lps_of(base, MARKER), atol=1e-9)
        network, grid = preprocess_image(stored, CONFIG)
        assert np.unravel_index(np.argmax(network), network.shape) == EXPECTED_NETWORK_VOXEL, (axes, flips)
        np.testing.assert_allclose(network, reference, atol=1e-4, err_msg=str((axes, flips)))
        assert grid.shape == CONFIG.target_shape


def test_network_axes_point_left_right_superior_inferior_anterior_posterior():
    _, grid = preprocess_image(marker_volume(np.eye(3)), CONFIG)
    # LPS: D towards the patient's right (-L), H towards inferior (-S), W towards posterior (+P).
    np.testing.assert_allclose(grid.direction, [[-1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    # Edge-aligned: the grid spans the full LR and SI field of view and the central AP half.
    np.testing.assert_allclose(grid.spacing * np.array(grid.shape), [24.0, 12.8, 15.0])


def test_labels_follow_the_same_axes():
    base = marker_volume(rotation(5.0, 0.0, -20.0))
    # Both input voxels of network W = 0 (j = 5, 6), so no nearest-neighbour tie decides.
    label_array = np.zeros(SHAPE, dtype=np.uint8)
    label_array[MARKER[0], 5:7, MARKER[2]] = 7
    labels = base.with_array(label_array, is_label=True)
    _, grid = preprocess_image(base, CONFIG)
    reference = preprocess_label(labels, grid)
    assert reference.dtype == np.int64 and reference[EXPECTED_NETWORK_VOXEL] == 7
    assert np.count_nonzero(reference) == 1
    for axes, flips in ORIENTATIONS:
        stored_image = permute_axes(base, axes, flips)
        stored_labels = permute_axes(labels, axes, flips)
        _, stored_grid = preprocess_image(stored_image, CONFIG)
        np.testing.assert_array_equal(preprocess_label(stored_labels, stored_grid), reference)


def test_reorient_to_network_axes_is_a_pure_reindexing():
    base = marker_volume(rotation(10.0, 20.0, -15.0))
    canonical = reorient_to_network_axes(base)
    for axes, flips in ORIENTATIONS:
        stored = reorient_to_network_axes(permute_axes(base, axes, flips))
        np.testing.assert_array_equal(stored.array, canonical.array)
        assert stored.same_grid(canonical, atol=1e-9)
    # D, H, W directions are within 25 degrees of right, inferior, posterior.
    targets = np.array([[-1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float).T
    assert np.all(np.sum(canonical.direction * targets, axis=0) > np.cos(np.deg2rad(25)))


def test_best_permutation_wins_for_strongly_oblique_axes():
    # 40 degrees about the LR axis: each of j, k is still closer to one of P, S.
    direction = rotation(40.0, 0.0, 0.0)
    axes, signs = match_network_axes(direction)
    assert axes == (0, 2, 1) and signs == (-1, -1, 1)


def test_permute_axes_rejects_non_permutations():
    with pytest.raises(ValueError):
        permute_axes(marker_volume(np.eye(3)), (0, 0, 1), (False, False, False))
