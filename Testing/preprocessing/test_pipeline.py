"""Preprocess -> restore round trips: labels come back on the input's exact grid."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.preprocessing import (
    NetworkGrid,
    PreprocessConfig,
    permute_axes,
    preprocess_image,
    preprocess_label,
    restore_labels,
)
from SAFNetSpineLib.volume import Volume

ORIENTATIONS = [(axes, flips) for axes in itertools.permutations(range(3))
                for flips in itertools.product((False, True), repeat=3)]


def oblique_sagittal() -> np.ndarray:
    """i ~ left-right, j ~ inferior, k ~ anterior, tilted by about 15 degrees."""
    a, b = np.deg2rad(15.0), np.deg2rad(-8.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    tilt = tilt @ np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return tilt @ np.array([[1, 0, 0], [0, 0, -1], [0, -1, 0]], dtype=float)


def blob_labels(shape, spacing, centres_mm, radii_mm) -> np.ndarray:
    """Ellipsoids (label 1, 2, ...) in voxel space, sized in mm."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"))
    labels = np.zeros(shape, dtype=np.uint8)
    for label, (centre, radii) in enumerate(zip(centres_mm, radii_mm, strict=True), start=1):
        inside = sum(((grid[n] - centre[n]) / radii[n]) ** 2 for n in range(3)) <= 1.0
        labels[inside] = label
    return labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


#: A small oblique anisotropic scene, and one like a 15 x 512 x 512 sagittal scan at a quarter of
#: its in-plane size (2x in-plane downsampling to the network, as in the paper), each with
#: ellipsoids (centre, radii in mm along i, j, k) well inside the central AP half.
SMALL = dict(shape=(14, 40, 48), spacing=(3.3, 0.9, 1.1),
             centres=[(23.0, 12.0, 26.0), (23.0, 24.0, 28.0), (20.0, 30.0, 24.0)],
             radii=[(10.0, 5.0, 7.0), (11.0, 4.0, 8.0), (8.0, 3.5, 6.0)])
SAGITTAL = dict(shape=(15, 128, 128), spacing=(4.0, 0.6, 0.6),
                centres=[(30.0, 20.0, 38.0), (30.0, 36.0, 40.0), (28.0, 54.0, 37.0)],
                radii=[(18.0, 12.0, 14.0), (16.0, 3.5, 13.0), (18.0, 13.0, 15.0)])


def case(direction=None, scene=SMALL) -> tuple[Volume, Volume]:
    labels = blob_labels(scene["shape"], scene["spacing"], scene["centres"], scene["radii"])
    rng = np.random.default_rng(1)
    image = (rng.normal(0.0, 1.0, labels.shape) + 5.0 * labels).astype(np.float32)
    direction = oblique_sagittal() if direction is None else direction
    origin = (-20.0, 35.5, 110.0)
    spacing = scene["spacing"]
    return Volume(image, spacing, origin, direction), Volume(labels, spacing, origin, direction, is_label=True)


def assert_exact_grid(restored: Volume, reference: Volume) -> None:
    assert restored.is_label and restored.array.dtype == np.uint8
    assert restored.shape == reference.shape
    assert np.array_equal(restored.spacing, reference.spacing)
    assert np.array_equal(restored.origin, reference.origin)
    assert np.array_equal(restored.direction, reference.direction)


def crop_mask(grid: NetworkGrid, reference: Volume) -> np.ndarray:
    return restore_labels(np.ones(grid.shape, dtype=np.int64), grid, reference).array > 0


@pytest.mark.parametrize(
    "scene, config, min_dice",
    [(SMALL, PreprocessConfig((16, 48, 32), 0.5), (0.97, 0.97, 0.97)),
     # The thin disc-like blob 2 is 3 network voxels thick along H: its surface costs more Dice.
     (SAGITTAL, PreprocessConfig((18, 64, 32), 0.5), (0.95, 0.9, 0.95)),
     # Both in-plane axes (36 and 53 mm) widened to 90 mm: the grid reaches past the scan.
     (SMALL, PreprocessConfig((16, 128, 96), 0.6, min_fov_mm=90.0), (0.95, 0.95, 0.95))],
    ids=["upsampling", "paper-like-2x-downsampling", "widened-field-of-view"],
)
def test_label_round_trip_over_48_orders(scene, config, min_dice):
    image, labels = case(scene=scene)
    for axes, flips in ORIENTATIONS:
        stored_image, stored_labels = permute_axes(image, axes, flips), permute_axes(labels, axes, flips)
        network, grid = preprocess_image(stored_image, config)
        net_labels = preprocess_label(stored_labels, grid)
        assert network.shape == net_labels.shape == config.target_shape
        inside = crop_mask(grid, stored_image)
        one_hot = np.eye(4, dtype=np.float32)[net_labels].transpose(3, 0, 1, 2)  # (C, D, H, W)
        for restored in (restore_labels(net_labels, grid, stored_image), restore_labels(one_hot, grid, stored_image)):
            assert_exact_grid(restored, stored_image)
            assert not restored.array[~inside].any()
            for label in (1, 2, 3):
                truth = (stored_labels.array == label) & inside
                assert truth.sum() > 100
                assert dice(restored.array == label, truth) > min_dice[label - 1], (axes, flips, label)


def test_fast_nearest_restore_matches_simpleitk_resampling():
    image, labels = case(scene=SAGITTAL)
    config = PreprocessConfig((18, 64, 32), 0.5)
    for axes, flips in ORIENTATIONS[::3]:
        stored_image, stored_labels = permute_axes(image, axes, flips), permute_axes(labels, axes, flips)
        _, grid = preprocess_image(stored_image, config)
        net_labels = preprocess_label(stored_labels, grid)
        ours = restore_labels(net_labels, grid, stored_image).array
        source = grid.as_volume(net_labels.astype(np.uint8), is_label=True).to_sitk()
        theirs = sitk.Resample(source, stored_image.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                               sitk.sitkUInt8)
        theirs = np.transpose(sitk.GetArrayFromImage(theirs), (2, 1, 0))
        assert np.mean(ours == theirs) > 0.9995, (axes, flips)


def test_crop_keeps_the_central_anterior_posterior_fraction():
    image, _ = case(np.eye(3))  # k runs anterior-posterior (LPS +P is j here: eye -> j is AP)
    for fraction in (0.5, 0.75, 1.0):
        _, grid = preprocess_image(image, PreprocessConfig((14, 40, 24), fraction))
        inside = crop_mask(grid, image)
        kept_j = np.flatnonzero(inside.any(axis=(0, 2)))  # identity direction: j is anterior-posterior
        assert kept_j.size == round(SMALL["shape"][1] * fraction)
        assert kept_j[0] == round(SMALL["shape"][1] * (1 - fraction) / 2)
        assert inside.any(axis=(1, 2)).all() and inside.any(axis=(0, 1)).all()


def test_a_widened_field_of_view_puts_the_anatomy_where_the_whole_scan_has_it():
    """A scan cut to a smaller field of view and widened back lands on the whole scan's grid (ties of the
    nearest-neighbour sampling aside: the grid's voxels fall half-way between the scan's)."""
    image, labels = case(np.eye(3), scene=SAGITTAL)  # in-plane 76.8 x 76.8 mm
    config = PreprocessConfig((18, 64, 32), 1.0, min_fov_mm=76.8)
    cut = (slice(None), slice(20, 108), slice(32, 96))  # 52.8 x 38.4 mm about the centre
    origin = image.origin + image.spacing * np.array([0.0, 20.0, 32.0])
    small = Volume(image.array[cut], image.spacing, origin, image.direction)
    small_labels = small.with_array(labels.array[cut], is_label=True)
    whole, whole_grid = preprocess_image(image, config)
    part, part_grid = preprocess_image(small, config)
    np.testing.assert_allclose(part_grid.spacing, whole_grid.spacing)
    np.testing.assert_allclose(part_grid.origin, whole_grid.origin, atol=1e-9)
    whole_net, part_net = preprocess_label(labels, whole_grid), preprocess_label(small_labels, part_grid)
    inside = restore_labels(np.ones(part_grid.shape, dtype=np.int64), part_grid, small).array > 0
    assert inside.all()  # the widened grid covers the whole of the smaller scan
    seen = part_net > 0
    assert seen.sum() > 500 and np.mean(part_net[seen] == whole_net[seen]) > 0.97, np.mean(part_net[seen] == whole_net[seen])
    # Without the widening the same anatomy is drawn larger: more network voxels per label.
    unwidened = preprocess_label(small_labels, preprocess_image(small, PreprocessConfig((18, 64, 32), 1.0))[1])
    assert (unwidened > 0).sum() > 1.5 * seen.sum()
    # Around the cut-out scan the widened image is the background value, the same after z-scoring.
    outside = whole_grid.shape[1] // 8
    assert np.ptp(part[:, :outside]) < 1e-5 < np.ptp(whole[:, :outside])


def test_network_zero_fills_past_the_scan_with_0_and_z_scores_the_scan_alone():
    """widen_fill="network_zero": the scan's own voxels are z-scored by themselves and the grid past them holds
    0 (SAFNet's border padding); "image_zero" (the default, older manifests) keeps the image's 0 there."""
    image, _ = case(np.eye(3), scene=SAGITTAL)
    cut = (slice(None), slice(20, 108), slice(32, 96))
    small = Volume(image.array[cut], image.spacing, image.origin + image.spacing * np.array([0.0, 20.0, 32.0]),
                   image.direction)
    widened = PreprocessConfig((18, 64, 32), 1.0, min_fov_mm=76.8)
    dark, grid = preprocess_image(small, widened)
    filled, filled_grid = preprocess_image(small, dataclasses.replace(widened, widen_fill="network_zero"))
    np.testing.assert_allclose(filled_grid.origin, grid.origin)
    inside = preprocess_label(small.with_array(np.ones(small.shape, np.int64), is_label=True), grid) > 0
    assert 0.2 < inside.mean() < 0.8
    assert np.all(filled[~inside] == 0.0) and np.ptp(dark[~inside]) < 1e-5 and dark[~inside].max() < -0.1
    assert abs(filled[inside].mean()) < 1e-4 and abs(filled[inside].std() - 1.0) < 1e-4
    assert abs(dark[inside].mean()) > 0.05  # the padding shifted the scan's own z-scores
    # The scan's voxels differ only by the z-scoring: one affine map takes the one onto the other.
    slope, offset = np.polyfit(dark[inside], filled[inside], 1)
    np.testing.assert_allclose(filled[inside], slope * dark[inside] + offset, atol=1e-4)
    # Without a widening there is nothing past the scan, and the two fills agree exactly.
    plain = PreprocessConfig((18, 64, 32), 1.0)
    np.testing.assert_array_equal(preprocess_image(small, plain)[0],
                                  preprocess_image(small, dataclasses.replace(plain, widen_fill="network_zero"))[0])
    assert PreprocessConfig.from_dict({"target_shape": [18, 64, 32]}).widen_fill == "image_zero"
    with pytest.raises(SpineInputError, match="widen_fill"):
        PreprocessConfig.from_dict({"widen_fill": "mirror"})


def test_scores_restore_is_smoother_but_agrees_with_nearest():
    image, labels = case()
    config = PreprocessConfig((12, 32, 16), 0.5)
    _, grid = preprocess_image(image, config)
    net_labels = preprocess_label(labels, grid)
    rng = np.random.default_rng(2)
    scores = np.eye(4, dtype=np.float32)[net_labels].transpose(3, 0, 1, 2) + rng.uniform(0, 0.2, (4,) + grid.shape)
    by_scores = restore_labels(scores.astype(np.float32), grid, image).array
    by_labels = restore_labels(net_labels, grid, image).array
    assert np.mean(by_scores == by_labels) > 0.97
    truth = labels.array * crop_mask(grid, image)
    assert dice(by_scores > 0, truth > 0) >= dice(by_labels > 0, truth > 0) - 0.01


def test_restore_onto_a_foreign_grid_still_matches_it_exactly():
    image, labels = case()
    _, grid = preprocess_image(image, PreprocessConfig((12, 32, 16), 1.0))
    scores = np.eye(4, dtype=np.float32)[preprocess_label(labels, grid)].transpose(3, 0, 1, 2)
    centre = image.origin + image.direction @ (image.spacing * (np.array(image.shape) - 1) / 2)
    other_shape, other_spacing = np.array([30, 40, 36]), np.array([1.5, 1.4, 1.6])
    other = Volume(np.zeros(other_shape, np.float32), other_spacing, centre - other_spacing * (other_shape - 1) / 2,
                   np.eye(3))
    restored = restore_labels(scores, grid, other)
    assert_exact_grid(restored, other)
    assert restored.array.any()


def test_empty_prediction_restores_to_background():
    image, _ = case()
    _, grid = preprocess_image(image, PreprocessConfig((12, 32, 16)))
    scores = np.zeros((20,) + grid.shape, dtype=np.float32)
    scores[0] = 1.0
    restored = restore_labels(scores, grid, image)
    assert_exact_grid(restored, image)
    assert not restored.array.any()


def test_restore_rejects_wrong_shapes():
    image, _ = case()
    _, grid = preprocess_image(image, PreprocessConfig((12, 32, 16)))
    with pytest.raises(ValueError):
        restore_labels(np.zeros((12, 32, 15), dtype=np.int64), grid, image)
    with pytest.raises(ValueError):
        restore_labels(np.zeros((2, 12, 32)), grid, image)


def test_preprocessed_image_is_z_scored_float32():
    image, _ = case()
    network, _ = preprocess_image(image, PreprocessConfig((12, 32, 16)))
    assert network.dtype == np.float32 and network.flags.c_contiguous
    assert abs(float(network.mean())) < 1e-4 and abs(float(network.std()) - 1.0) < 1e-4


def test_constant_image_is_refused_with_its_name():
    image, _ = case()
    flat = image.with_array(np.full(image.shape, 7.0, dtype=np.float32))
    with pytest.raises(SpineInputError, match="case_7.*constant"):
        preprocess_image(flat, subject="case_7.nii.gz")


def test_grid_serialises_and_places_network_arrays_in_the_patient():
    image, _ = case()
    _, grid = preprocess_image(image)
    again = NetworkGrid.from_dict(json.loads(json.dumps(grid.to_dict())))
    assert again.shape == grid.shape == (18, 256, 128)
    np.testing.assert_array_equal(again.affine_lps, grid.affine_lps)
    volume = grid.as_volume(np.zeros(grid.shape, np.float32))
    np.testing.assert_array_equal(volume.affine_lps, grid.affine_lps)


def test_config_round_trips_through_json_and_rejects_nonsense():
    config = PreprocessConfig(target_shape=(18, 128, 64), ap_crop_fraction=0.6)
    assert PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()
    assert PreprocessConfig().to_dict() == {"target_shape": [18, 256, 128], "ap_crop_fraction": 0.5,
                                            "min_fov_mm": 0.0, "widen_fill": "image_zero"}
    assert PreprocessConfig.from_dict({"min_fov_mm": 380}).min_fov_mm == 380.0
    with pytest.raises(SpineInputError, match="unknown keys"):
        PreprocessConfig.from_dict({"target_shape": [18, 256, 128], "spacing": 1.0})
    with pytest.raises(SpineInputError):
        PreprocessConfig.from_dict({"ap_crop_fraction": 1.5})
    with pytest.raises(ValueError):
        PreprocessConfig(target_shape=(18, 0, 128))
    with pytest.raises(SpineInputError, match="min_fov_mm"):
        PreprocessConfig.from_dict({"min_fov_mm": -1.0})
