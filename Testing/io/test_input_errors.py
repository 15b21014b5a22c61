"""Every bad input is one SpineInputError naming the file, with nothing printed by ITK."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.io import check_image, check_writable_dir, read_volume, write_seg_nrrd, write_volume
from SAFNetSpineLib.volume import Volume


def good_image() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.normal(0, 1, (6, 8, 7)).astype(np.float32), (1.0, 0.8, 3.0), (1.0, 2.0, 3.0))


def nrrd_header(path, sizes: str, directions: str) -> None:
    """A NRRD whose header claims a grid; voxel data is absent (checks must not need it)."""
    path.write_text(
        "NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {sizes}\nspace directions: {directions}\nkinds: domain domain domain\n"
        "endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n"
    )


def refused(path, match: str, capfd, **kwargs) -> SpineInputError:
    with pytest.raises(SpineInputError, match=match) as caught:
        read_volume(path, **kwargs)
    message = str(caught.value)
    assert os.path.basename(str(path)) in message and "\n" not in message
    assert capfd.readouterr().err == ""  # ITK warnings are silenced
    return caught.value


def test_missing_file(tmp_path, capfd):
    refused(tmp_path / "nowhere.nii.gz", "file not found", capfd)


@pytest.mark.parametrize("name", ["garbage.nii.gz", "garbage.nii", "garbage.nrrd", "garbage.mha", "garbage.dcm"])
def test_corrupt_files(tmp_path, capfd, name):
    path = tmp_path / name
    path.write_bytes(os.urandom(3000))
    refused(path, "unreadable or corrupt", capfd)


def test_truncated_files(tmp_path, capfd):
    # ITK pads a short NIfTI voxel block with zeros; it must be refused, not segmented.
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        path = write_volume(good_image(), tmp_path / f"cut{suffix}")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])  # a cut download
        refused(path, "truncated|corrupt", capfd)
    # A complete gzip stream around a short voxel block.
    path = write_volume(good_image(), tmp_path / "short.nii.gz")
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:1000]))
    refused(path, "truncated NIfTI", capfd)


def test_empty_file_and_unsupported_type(tmp_path, capfd):
    (tmp_path / "empty.nrrd").write_bytes(b"")
    refused(tmp_path / "empty.nrrd", "unreadable or corrupt", capfd)
    (tmp_path / "notes.txt").write_text("hello")
    refused(tmp_path / "notes.txt", "unsupported file type", capfd)


def test_2d_image(tmp_path, capfd):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(1).random((30, 40)).astype(np.float32)), str(path))
    refused(path, "2D image", capfd)


def test_single_slice_3d_image(tmp_path, capfd):
    image = good_image()
    path = write_volume(Volume(image.array[:, :, :1].copy(), image.spacing), tmp_path / "one_slice.nrrd")
    refused(path, "single slice", capfd)


def test_4d_image(tmp_path, capfd):
    frames = [good_image().to_sitk() for _ in range(3)]
    path = tmp_path / "dynamic.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(frames), str(path))
    refused(path, "4D image", capfd)


def test_multi_component_image(tmp_path, capfd):
    rgb = sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), dtype=np.uint8), isVector=True)
    path = tmp_path / "colour.mha"
    sitk.WriteImage(rgb, str(path))
    refused(path, "3 values per voxel", capfd)


def test_non_finite_voxels(tmp_path, capfd):
    image = good_image()
    array = image.array.copy()
    array[1, 2, 3] = np.nan
    array[2, 2, 2] = np.inf
    path = write_volume(image.with_array(array), tmp_path / "nan.nrrd")
    refused(path, "2 non-finite voxels", capfd)
    assert read_volume(path, check=False).shape == image.shape  # the check is what refuses it


def test_constant_image(tmp_path, capfd):
    image = good_image()
    path = write_volume(image.with_array(np.full(image.shape, 3.0, np.float32)), tmp_path / "flat.nii.gz")
    refused(path, "constant", capfd)
    # A constant label map (e.g. all background) is a valid label map.
    assert np.all(read_volume(path, is_label=True).array == 3)


@pytest.mark.parametrize(
    "sizes, directions, match",
    [
        ("4000 10 10", "(1,0,0) (0,1,0) (0,0,1)", "more than 2048 along an axis"),
        ("2048 2048 100", "(1,0,0) (0,1,0) (0,0,1)", "more than 134,217,728 in total"),
        ("10 10 10", "(60,0,0) (0,1,0) (0,0,1)", "spacing"),
    ],
    ids=["axis", "total", "spacing"],
)
def test_absurd_grids_are_refused_from_the_header(tmp_path, capfd, sizes, directions, match):
    path = tmp_path / "absurd.nrrd"
    nrrd_header(path, sizes, directions)
    refused(path, match, capfd)


def test_zero_spacing(tmp_path, capfd):
    path = tmp_path / "zero_spacing.nrrd"
    nrrd_header(path, "10 10 10", "(0,0,0) (0,1,0) (0,0,1)")
    refused(path, "corrupt|spacing", capfd)


def test_label_map_with_fractions(tmp_path, capfd):
    image = good_image()
    path = write_volume(image, tmp_path / "soft_labels.nii.gz")
    refused(path, "non-integer", capfd, is_label=True)


def test_dicom_folder_without_series(tmp_path, capfd):
    (tmp_path / "empty_study").mkdir()
    (tmp_path / "empty_study" / "readme.txt").write_text("no images here")
    refused(tmp_path / "empty_study", "no DICOM series", capfd)


def test_seg_nrrd_with_unknown_segments_names_them(tmp_path, capfd):
    import slicerio

    image = good_image()
    segmentation = slicerio.create_segmentation(image.shape, image.affine_lps)
    for name, corner in (("L3", 0), ("Liver", 2), ("Spleen", 4)):
        mask = np.zeros(image.shape, dtype=bool)
        mask[corner:corner + 2] = True
        slicerio.add_segment(segmentation, mask, {"name": name})
    path = tmp_path / "organs.seg.nrrd"
    slicerio.write_segmentation(str(path), segmentation)
    refused(path, "not in the spine label table: Liver, Spleen", capfd, is_label=True)


def test_corrupt_seg_nrrd(tmp_path, capfd):
    path = tmp_path / "broken.seg.nrrd"
    path.write_bytes(b"NRRD0004\nsizes: banana\n\n" + os.urandom(100))
    refused(path, "unreadable or corrupt", capfd, is_label=True)


def test_check_image_directly():
    image = good_image()
    check_image(image, "fine.nii.gz")
    with pytest.raises(SpineInputError, match="big.nii.gz"):
        check_image(Volume(np.zeros((2, 2, 2)), (0.5, 0.5, 51.0)), "big.nii.gz")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SpineInputError, match="a_file"):
        check_writable_dir(blocker)
    with pytest.raises(SpineInputError, match="cannot create output folder"):
        check_writable_dir(blocker / "out")
    with pytest.raises(SpineInputError, match="out"):
        write_volume(good_image(), blocker / "out" / "seg.nii.gz")
    labels = good_image().with_array(np.zeros((6, 8, 7), np.uint8), is_label=True)
    with pytest.raises(SpineInputError, match="out"):
        write_seg_nrrd(labels, blocker / "out" / "seg.seg.nrrd")
    created = check_writable_dir(tmp_path / "new" / "nested")
    assert created.is_dir() and not list(created.iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_output_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SpineInputError, match="not writable"):
            check_writable_dir(folder)
    finally:
        folder.chmod(0o700)


def test_bad_output_values_leave_the_existing_file_alone(tmp_path):
    image = good_image()
    path = write_volume(image.with_array(np.ones(image.shape, np.uint8), is_label=True), tmp_path / "labels.nrrd")
    before = path.read_bytes()
    bad = image.with_array(np.full(image.shape, 300, np.int32), is_label=True)
    with pytest.raises(SpineInputError, match="0..255"):
        write_volume(bad, path)
    with pytest.raises(SpineInputError, match="cannot write"):
        write_volume(image, tmp_path / "labels.png")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nrrd"]


def test_a_write_that_fails_half_way_keeps_the_old_file(tmp_path):
    from SAFNetSpineLib.io.volume_io import write_atomically

    path = write_volume(good_image(), tmp_path / "result.nii.gz")
    before = path.read_bytes()

    def crash(temp):
        temp.write_bytes(b"half a file")
        raise RuntimeError("disk full\nITK details")

    with pytest.raises(SpineInputError, match="result.nii.gz: could not write the file: ITK details; nothing was"):
        write_atomically(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.nii.gz"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX-only")
def test_fifo_socket_and_device_inputs_are_refused_at_once(tmp_path):
    import socket
    import time

    from SAFNetSpineLib.io.validation import check_input_path

    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)  # opening it for reading would block forever
    started = time.monotonic()
    with pytest.raises(SpineInputError, match=r"scan.nii.gz: input is a named pipe \(FIFO\)"):
        check_input_path(fifo)
    with pytest.raises(SpineInputError, match=r"input is a named pipe \(FIFO\), not an image file"):
        read_volume(fifo)  # hung forever before (ITK opened it and waited for a writer)
    with pytest.raises(SpineInputError, match="named pipe"):
        read_volume(fifo, is_label=True)
    with pytest.raises(SpineInputError, match="input is a character device"):
        check_input_path("/dev/null")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "s.nrrd"))
        with pytest.raises(SpineInputError, match="input is a socket"):
            check_input_path(tmp_path / "s.nrrd")
    finally:
        server.close()
    with pytest.raises(SpineInputError, match="file not found"):
        check_input_path(tmp_path / "absent.nii.gz")
    assert check_input_path(tmp_path) == tmp_path  # a DICOM folder is fine
    assert time.monotonic() - started < 5


def test_truncated_nifti_reports_the_bytes_present(tmp_path, capfd):
    # Half a gzip stream: the count must be what decompresses, not 0.
    image = Volume(np.random.default_rng(2).normal(0, 1, (40, 40, 40)).astype(np.float32), (1.0, 1.0, 1.0))
    path = write_volume(image, tmp_path / "half.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = refused(path, r"truncated NIfTI file \(\d+ of \d+ bytes\)", capfd)
    present, expected = (int(n) for n in str(error).split("(")[1].split(" bytes")[0].split(" of "))
    assert expected == 352 + 40 * 40 * 40 * 4
    assert 0.3 * expected < present < expected


def test_label_map_given_as_the_image_is_refused(tmp_path, capfd):
    labels = np.zeros((20, 16, 12), np.uint8)
    labels[3:9, 2:8, 2:10] = 2
    labels[10:14, 2:8, 2:10] = 12
    path = write_volume(Volume(labels, (1.0, 1.0, 3.0), is_label=True), tmp_path / "scan_seg.nii.gz")
    refused(path, r"image looks like a label map \(only the values 0, 2, 12\); give the MR image", capfd)
    # As a label map it reads fine, and a uint8 MR image with real grey values is not refused.
    assert read_volume(path, is_label=True).array.max() == 12
    grey = np.random.default_rng(3).integers(0, 256, labels.shape).astype(np.uint8)
    assert read_volume(write_volume(Volume(grey, (1.0, 1.0, 3.0)), tmp_path / "mr_uint8.nii.gz")).shape == grey.shape


@pytest.mark.parametrize("sizes, match", [
    ("0 10 10", r"announces 0 x 10 x 10 voxels; every size must be at least 1"),
    ("100000000000 100000000000 1000", r"image is 100000000000 x 100000000000 x 1000 voxels, more than 2048"),
    ("9223372036854775807 2 2", r"image is 9223372036854775807 x 2 x 2 voxels"),
])
def test_absurd_nrrd_size_that_itk_cannot_read_is_named(tmp_path, sizes, match):
    from SAFNetSpineLib.io.validation import check_announced_size

    path = tmp_path / "absurd.nrrd"
    nrrd_header(path, sizes, "(1,0,0) (0,1,0) (0,0,1)")
    with pytest.raises(SpineInputError, match=match):
        check_announced_size(path)
    with pytest.raises(SpineInputError, match=match):
        read_volume(path)  # was "unreadable or corrupt NRRD file"
    nrrd_header(path, "10 10 10", "(1,0,0) (0,1,0) (0,0,1)")
    check_announced_size(path)  # a sane header is not the problem: no verdict
