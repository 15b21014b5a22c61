"""Inputs whose voxels or geometry a reader would get wrong without a word (issue 25, items 3, 7, 8, 9, 10).

Each is refused with one line naming the file, or, where the image is still usable,
read with one ``SpineInputWarning``; see docs/INPUT_CHECKS.md.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.errors import SpineInputError, SpineInputWarning
from SAFNetSpineLib.io import read_volume, write_seg_nrrd, write_volume
from SAFNetSpineLib.io.validation import SEGMENT_BYTES_PER_VOXEL, available_memory_bytes
from SAFNetSpineLib.volume import Volume

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_volume_io import oblique, write_dicom_series  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def mr_like(dtype=np.float32) -> Volume:
    """Noise with a background of exact zeros (as many MR exports have), oblique and anisotropic."""
    rng = np.random.default_rng(4)
    array = rng.normal(300.0, 50.0, (9, 12, 10)).astype(dtype)
    array[:, :, :2] = 0
    return Volume(array, (3.5, 0.9, 1.1), (12.0, -40.0, 7.5), oblique(15.0))


def refused(path, match: str, **kwargs) -> str:
    with pytest.raises(SpineInputError, match=match) as caught:
        read_volume(path, **kwargs)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def patch_nifti(path: Path, offset: int, data: bytes) -> Path:
    """Overwrite header bytes of a .nii or .nii.gz file in place."""
    raw = bytearray(gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes())
    raw[offset:offset + len(data)] = data
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return path


# --- NIfTI voxels: NaN and infinity (ITK's NIfTI library reads them as 0) ---------------------------

@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nifti_nan_and_infinite_voxels_are_refused(tmp_path, suffix, dtype):
    image = mr_like(dtype)
    array = image.array.copy()
    array[4, 5, 6], array[1, 1, 5], array[2, 3, 4] = np.nan, np.inf, -np.inf
    path = write_volume(image.with_array(array), tmp_path / f"bad{suffix}")
    refused(path, "image has 3 non-finite voxels")


def test_nifti_with_zeros_but_finite_voxels_is_read(tmp_path):
    image = mr_like()
    path = write_volume(image, tmp_path / "fine.nii.gz")
    np.testing.assert_array_equal(read_volume(path).array, image.array)


# --- NIfTI geometry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axis, value", [(1, 0.0), (3, float("nan")), (3, -1.1)])
def test_nifti_voxel_size_zero_nan_or_negative_is_refused(tmp_path, axis, value):
    path = write_volume(mr_like(), tmp_path / "pixdim.nii.gz")
    patch_nifti(path, 76 + 4 * axis, struct.pack("<f", value))
    refused(path, rf"pixdim\[{axis}\] = {value:g} mm in the header; .*ITK would silently use 1 mm")


def test_nifti_without_magic_is_not_read_as_analyze(tmp_path):
    path = write_volume(mr_like(), tmp_path / "nomagic.nii")
    patch_nifti(path, 344, b"xx1\0")
    refused(path, r"no NIfTI magic in the header \(found 'xx1'\): .* Analyze 7.5 image .*identity direction, origin 0")


def test_nifti_voxel_offset_inside_the_header_is_refused(tmp_path):
    path = write_volume(mr_like(), tmp_path / "offset.nii")
    patch_nifti(path, 108, struct.pack("<f", float("nan")))
    refused(path, r"voxel offset \(vox_offset\) 0 in the header lies inside the header itself")


def test_nifti_without_orientation_is_read_with_one_warning(tmp_path):
    path = patch_nifti(write_volume(mr_like(), tmp_path / "noforms.nii.gz"), 252, struct.pack("<2h", 0, 0))
    with pytest.warns(SpineInputWarning, match="no orientation in the NIfTI header") as caught:
        volume = read_volume(path)
    assert len(caught) == 1 and str(caught[0].message).startswith(str(path))
    np.testing.assert_allclose(volume.direction, np.eye(3))


def test_good_nifti_reads_without_warnings(tmp_path):
    path = write_volume(mr_like(), tmp_path / "good.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_volume(path)


# --- DICOM: a missing slice (ITK spreads the rest evenly and only warns) ----------------------------

def dicom_volume() -> Volume:
    rng = np.random.default_rng(8)
    return Volume(rng.integers(0, 1000, (6, 7, 8)).astype(np.int16), (0.8, 0.7, 4.0), (10.5, -20.25, 33.0),
                  oblique(10.0))


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    files = write_dicom_series(dicom_volume(), tmp_path / "t2", "1.2.826.0.1.3680043.2.1125.9.333333")
    files[3].unlink()
    message = refused(tmp_path / "t2", "DICOM slices are unevenly spaced")
    assert "4 to 8 mm apart" in message and "read as 4.667 mm" in message and "missing" in message
    refused(files[5], "DICOM slices are unevenly spaced")  # one file of the series: the same series


def test_dicom_series_slightly_uneven_is_read_with_one_warning(tmp_path):
    write_dicom_series(dicom_volume(), tmp_path / "t2", "1.2.826.0.1.3680043.2.1125.9.444444", shifts_mm={3: 0.2})
    with pytest.warns(SpineInputWarning, match="slightly unevenly spaced") as caught:
        volume = read_volume(tmp_path / "t2")
    assert len(caught) == 1 and volume.shape == (6, 7, 8)


# --- Values the network's float32 preprocessing would overflow --------------------------------------

def test_float64_image_beyond_float32_is_refused_with_its_reason(tmp_path):
    image = mr_like(np.float64)
    path = write_volume(image.with_array(image.array * 1e298), tmp_path / "huge.nrrd")
    message = refused(path, r"voxel values up to [\d.]+e\+300, beyond the 32-bit float range")
    assert "constant" not in message


# --- Memory: an image too large to segment in the memory left ---------------------------------------

def test_available_memory_is_known_on_linux():
    if sys.platform != "linux":
        pytest.skip("read from /proc")
    assert 0 < available_memory_bytes() < 2**50


def test_image_too_large_for_the_memory_left_is_refused_from_its_header(tmp_path):
    """80 x 1000 x 1000 voxels under a 2 GiB address-space allowance: one line before any voxel is read."""
    if not hasattr(os, "fork") or sys.platform != "linux":
        pytest.skip("RLIMIT_AS and /proc/self/status are Linux")
    header = tmp_path / "big.nhdr"
    header.write_text("NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 80 1000 1000\n"
                      "space directions: (4,0,0) (0,0.3,0) (0,0,0.3)\nkinds: domain domain domain\nendian: little\n"
                      "encoding: raw\nspace origin: (0,0,0)\ndata file: big.raw\n")
    (tmp_path / "big.raw").write_bytes(b"")
    code = textwrap.dedent(f"""
        import resource, sys
        from SAFNetSpineLib.errors import SpineInputError
        from SAFNetSpineLib.io import read_volume
        vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            read_volume({str(header)!r})
        except SpineInputError as error:
            print(error)
        except MemoryError:
            print('MemoryError')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    line = result.stdout.strip()
    assert line.startswith(f"{header}: image is 80 x 1000 x 1000 voxels; segmenting it needs about"), \
        result.stdout + result.stderr[-800:]
    needed, free = (float(v) for v in re.findall(r"([\d.]+) GiB", line))
    assert needed == pytest.approx(80e6 * SEGMENT_BYTES_PER_VOXEL / 2**30, abs=0.05) and free < 2.01


# --- Slicer segmentations whose segments would be merged or lost ------------------------------------

def seg_nrrd_with_header(tmp_path, name: str, change) -> Path:
    """A .seg.nrrd of phantom 5's labels (small grid), its text header changed by ``change(header) -> header``."""
    from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom

    _, labels = make_phantom(5, PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5)))
    raw = write_seg_nrrd(labels, tmp_path / "source.seg.nrrd").read_bytes()
    end = raw.index(b"\n\n")
    path = tmp_path / name
    path.write_bytes(change(raw[:end].decode("latin-1")).encode("latin-1") + raw[end:])
    return path


def l5_named_s(header: str) -> str:
    """The L5 segment (Segment1, label 2) renamed "S" and stripped of its terminology."""
    header = header.replace("Segment1_Name:=L5", "Segment1_Name:=S")
    return re.sub(r"Segment1_Tags:=[^\n]*", "Segment1_Tags:=", header)


SEG_PROBLEMS = {
    "same_name.seg.nrrd": (l5_named_s, r"segments 'S' \(Segment_1\) and 'S' \(Segment_2\) both stand for S"),
    "label_300.seg.nrrd": (lambda h: h.replace("Segment1_LabelValue:=2", "Segment1_LabelValue:=300"),
                           "segment 'L5' .* has label value 300, which the uint8 voxels cannot hold .*vanish"),
    "label_0.seg.nrrd": (lambda h: h.replace("Segment1_LabelValue:=2", "Segment1_LabelValue:=0"),
                         "segment 'L5' .* has label value 0"),
    "shared_value.seg.nrrd": (lambda h: h.replace("Segment1_LabelValue:=2", "Segment1_LabelValue:=1"),
                              "segments 'S' .* and 'L5' .* share label value 1 in layer 0"),
    "layer_3.seg.nrrd": (lambda h: h.replace("Segment1_Layer:=0", "Segment1_Layer:=3"),
                         "segment 'L5' .* is in layer 3; the file has 1"),
}


@pytest.mark.parametrize("name", sorted(SEG_PROBLEMS))
def test_seg_nrrd_segments_that_would_merge_or_vanish_are_refused(tmp_path, name):
    change, match = SEG_PROBLEMS[name]
    refused(seg_nrrd_with_header(tmp_path, name, change), match, is_label=True)


def test_seg_nrrd_is_not_an_mr_image(tmp_path):
    path = seg_nrrd_with_header(tmp_path, "case.seg.nrrd", lambda h: h)
    refused(path, r"is a Slicer segmentation \(.seg.nrrd\), not an MR image")
    assert read_volume(path, is_label=True).is_label
