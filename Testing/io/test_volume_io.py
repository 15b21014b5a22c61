"""Volume -> file -> Volume keeps voxels and geometry, in every format and all 48 storage orders."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.io import read_volume, write_seg_nrrd, write_volume
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.preprocessing import permute_axes
from SAFNetSpineLib.volume import Volume

ORIENTATIONS = [(axes, flips) for axes in itertools.permutations(range(3))
                for flips in itertools.product((False, True), repeat=3)]
#: Geometry tolerance (mm, cosine): NIfTI stores it in float32, the others as decimal text.
TOLERANCE = {".nii.gz": 2e-5, ".nii": 2e-5, ".nrrd": 1e-9, ".mha": 1e-9}


def oblique(degrees: float = 13.0) -> np.ndarray:
    a = np.deg2rad(degrees)
    tilt = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return tilt @ np.array([[1.0, 0, 0], [0, 0, -1], [0, -1, 0]]) @ np.array(
        [[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])


def image_and_labels() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(5)
    image = rng.normal(200.0, 40.0, (5, 7, 6)).astype(np.float32)
    labels = rng.integers(0, 20, (5, 7, 6)).astype(np.uint8)
    geometry = dict(spacing=(3.7, 0.55, 0.8125), origin=(-101.25, 37.123456, 412.5), direction=oblique())
    return Volume(image, **geometry), Volume(labels, is_label=True, **geometry)


def assert_same(read: Volume, written: Volume, tolerance: float) -> None:
    assert read.shape == written.shape
    np.testing.assert_array_equal(read.array, written.array)
    np.testing.assert_allclose(read.spacing, written.spacing, rtol=0, atol=tolerance)
    np.testing.assert_allclose(read.origin, written.origin, rtol=0, atol=tolerance * 20)
    np.testing.assert_allclose(read.direction, written.direction, rtol=0, atol=tolerance)


@pytest.mark.parametrize("suffix", list(TOLERANCE))
def test_round_trip_keeps_geometry_in_all_48_orders(tmp_path, suffix):
    image, labels = image_and_labels()
    for number, (axes, flips) in enumerate(ORIENTATIONS):
        stored_image, stored_labels = permute_axes(image, axes, flips), permute_axes(labels, axes, flips)
        image_path = write_volume(stored_image, tmp_path / f"image{number}{suffix}")
        label_path = write_volume(stored_labels, tmp_path / f"labels{number}{suffix}")
        read_image = read_volume(image_path)
        read_labels = read_volume(label_path, is_label=True)
        assert not read_image.is_label and read_image.array.dtype == np.float32
        assert read_labels.is_label and read_labels.array.dtype == np.uint8
        assert_same(read_image, stored_image, TOLERANCE[suffix])
        assert_same(read_labels, stored_labels, TOLERANCE[suffix])
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_labels_are_written_as_uint8(tmp_path):
    _, labels = image_and_labels()
    wide = labels.with_array(labels.array.astype(np.int64))
    path = write_volume(wide, tmp_path / "labels.nii.gz")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8


def test_float_label_files_are_read_as_integers(tmp_path):
    _, labels = image_and_labels()
    image = labels.with_array(labels.array.astype(np.float32), is_label=False)
    path = write_volume(image, tmp_path / "float_labels.nrrd")
    read = read_volume(path, is_label=True)
    assert read.array.dtype == np.uint8
    np.testing.assert_array_equal(read.array, labels.array)


def test_existing_output_is_replaced(tmp_path):
    image, labels = image_and_labels()
    path = tmp_path / "out.nii.gz"
    write_volume(image, path)
    write_volume(labels, path)
    np.testing.assert_array_equal(read_volume(path, is_label=True).array, labels.array)


def test_one_time_point_4d_file_is_a_3d_volume(tmp_path):
    image, _ = image_and_labels()
    four_d = sitk.JoinSeries([image.to_sitk()])
    path = tmp_path / "single_frame.nii.gz"
    sitk.WriteImage(four_d, str(path))
    read = read_volume(path)
    assert read.shape == image.shape
    np.testing.assert_array_equal(read.array, image.array)


def write_dicom_series(volume: Volume, folder, series_uid: str, shifts_mm: dict | None = None) -> list:
    """One file per k-slice with the position/orientation tags a scanner writes.

    ``shifts_mm`` moves the position tag of slice k that far along the slice normal.
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = volume.to_sitk()
    d = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": "MR",
            "0020|000d": series_uid + ".1",
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.2.{k}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p + (shifts_mm or {}).get(k, 0.0) * n:.6f}" for p, n in
                                   zip(image.TransformIndexToPhysicalPoint((0, 0, k)), d[2::3], strict=True)),
            "0020|0037": "\\".join(f"{v:.9f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": f"{volume.spacing[2]:.6f}",
        }
        for key, value in tags.items():
            slice_.SetMetaData(key, value)
        paths.append(folder / f"{series_uid[-6:]}_{k:03d}.dcm")
        writer.SetFileName(str(paths[-1]))
        writer.Execute(slice_)
    return paths


def test_dicom_series_folder_and_single_file(tmp_path):
    rng = np.random.default_rng(7)
    big = Volume(rng.integers(0, 1000, (6, 7, 5)).astype(np.int16), (0.8, 0.7, 3.0), (10.5, -20.25, 33.0),
                 oblique(20.0))
    small = Volume(rng.integers(0, 1000, (6, 7, 3)).astype(np.int16), (0.8, 0.7, 3.0), (0.0, 0.0, 0.0), np.eye(3))
    files = write_dicom_series(big, tmp_path / "study" / "t2", "1.2.826.0.1.3680043.2.1125.9.111111")
    write_dicom_series(small, tmp_path / "study" / "localizer", "1.2.826.0.1.3680043.2.1125.9.222222")
    # DICOM readers stack slices along the row x column normal: a left-handed grid
    # comes back with k reversed, the same voxels at the same patient positions.
    expected = permute_axes(big, (0, 1, 2), (False, False, bool(np.linalg.det(big.direction) < 0)))
    for source in (tmp_path / "study", files[2]):  # the folder (largest series wins) or one file of it
        assert_same(read_volume(source), expected, 1e-5)
    assert read_volume(tmp_path / "study" / "localizer").shape == (6, 7, 3)


def test_seg_nrrd_has_named_coloured_coded_segments(tmp_path):
    import slicerio

    _, labels = image_and_labels()
    array = np.zeros(labels.shape, dtype=np.uint8)
    array[1:3, 2:5, 1:4] = 3  # L4
    array[3:5, 2:6, 2:5] = 12  # L4/L5
    labels = labels.with_array(array)
    path = write_seg_nrrd(labels, tmp_path / "case.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(path))
    segments = {s["labelValue"]: s for s in segmentation["segments"]}
    assert sorted(segments) == [3, 12]  # only the structures present
    for label_id, segment in segments.items():
        table = STRUCTURES[label_id]
        assert segment["name"] == table.short_name
        np.testing.assert_allclose(segment["color"], table.color_float, atol=1e-5)
        assert segment["terminology"]["type"][:2] == ["SCT", table.snomed_code]
        assert segment["terminology"]["category"][1] == "123037004"
    np.testing.assert_allclose(segmentation["ijkToLPS"], labels.affine_lps, atol=1e-9)
    read = read_volume(path, is_label=True)
    assert read.is_label
    assert_same(read, labels, 1e-9)
    assert write_volume(labels, tmp_path / "again.seg.nrrd").is_file()


def test_seg_nrrd_from_other_tools_maps_names_and_layers(tmp_path):
    import slicerio

    _, labels = image_and_labels()
    segmentation = slicerio.create_segmentation(labels.shape, labels.affine_lps)
    first = np.zeros(labels.shape, dtype=bool)
    first[0:3, 0:4, 0:3] = True
    second = np.zeros(labels.shape, dtype=bool)
    second[2:5, 3:7, 2:6] = True  # overlaps the first: slicerio puts it in a second layer
    slicerio.add_segment(segmentation, first, {"name": "Lumbar vertebra 5"})
    slicerio.add_segment(segmentation, second, {"name": "L5-S1"})
    path = tmp_path / "external.seg.nrrd"
    slicerio.write_segmentation(str(path), segmentation)
    read = read_volume(path, is_label=True)
    assert set(np.unique(read.array)) == {0, 2, 11}
    assert np.all(read.array[second] == 11) and np.all(read.array[first & ~second] == 2)
