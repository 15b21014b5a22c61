"""Read and write images and label maps with their exact geometry.

Readers: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), a DICOM
series (a folder, or one .dcm file of the series) and Slicer segmentations
(.seg.nrrd, read as a label map in label-table ids). Writers: NIfTI, NRRD, MetaImage
and Slicer .seg.nrrd (:mod:`SAFNetSpineLib.io.seg_nrrd`).

Every problem with a file becomes one :class:`SpineInputError` naming it, never a
SimpleITK traceback; files are written under a temporary name in the target folder
and renamed, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SAFNetSpineLib.errors import SpineInputError, SpineInputWarning
from SAFNetSpineLib.io.files import (
    file_suffix,
    label_array_uint8,
    native_stderr_silenced,
    write_atomically,
)
from SAFNetSpineLib.io.nifti import check_nifti_complete, check_nifti_geometry, count_nifti_non_finite
from SAFNetSpineLib.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from SAFNetSpineLib.io.validation import (
    check_announced_size,
    check_image,
    check_image_path,
    check_input_path,
    check_memory,
    check_size,
    check_writable_dir,
)
from SAFNetSpineLib.volume import Volume

# ITK prints warnings (oblique NIfTI, DICOM slice spacing...) straight to stderr; the
# user should see one clean line from us instead.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

#: Readable single-file formats by (lower-case) suffix.
IMAGE_FORMATS = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}
#: Suffixes of single DICOM files (the whole series they belong to is read).
DICOM_SUFFIXES = (".dcm", ".ima")
#: How far (fraction of the usual gap) DICOM slice gaps may differ before the series is refused
#: (a tenth of it is warned about): a missing slice doubles one gap, rounding in the
#: position tags moves them by far less.
DICOM_GAP_TOLERANCE = 0.1
#: Suffixes write_volume accepts.
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".seg.nrrd")


def read_volume(path: str | Path, is_label: bool = False, check: bool = True) -> Volume:
    """Read a 3D image or label map with its geometry.

    Args:
        path: A NIfTI, NRRD, MetaImage or .seg.nrrd file, a DICOM series folder (the
            series with the most files is read) or one file of a DICOM series.
        is_label: Read as a label map (integer voxels). A .seg.nrrd is always a label map.
        check: For images, refuse non-finite, constant or absurdly sized volumes
            (:func:`~SAFNetSpineLib.io.validation.check_image`), and, from the header,
            volumes too large to segment in the memory left
            (:func:`~SAFNetSpineLib.io.validation.check_memory`).

    Returns:
        The volume, array indexed [i, j, k], geometry in LPS.

    Raises:
        SpineInputError: missing, unreadable, corrupt, 2D, 4D, multi-component or
            otherwise unusable input, naming the file.
    """
    # Missing, FIFO, device, socket (or a segmentation given as the image): refused before anything opens it.
    path = check_input_path(path) if is_label else check_image_path(path)
    suffix = file_suffix(path)
    for_segmenting = check and not is_label  # also refused: too large for the memory left
    if path.is_dir():
        image = _read_dicom_series(path, for_segmenting)
    elif suffix == ".seg.nrrd":
        return read_seg_nrrd(path)
    elif suffix in IMAGE_FORMATS:
        image = _read_image_file(path, IMAGE_FORMATS[suffix], for_segmenting)
    elif suffix in DICOM_SUFFIXES:
        image = _read_dicom_series_of_file(path, for_segmenting)
    else:
        raise SpineInputError(
            path, f"unsupported file type '{suffix or path.name}' (use NIfTI, NRRD, MHA/MHD or a DICOM folder)"
        )
    volume = _to_volume(image, path, is_label)
    if check and not is_label:
        check_image(volume, path)
    return volume


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write a volume atomically; label maps are stored as uint8.

    Args:
        volume: Image or label map.
        path: Output file ending in .nii.gz, .nii, .nrrd, .mha or .seg.nrrd.

    Returns:
        The written path.

    Raises:
        SpineInputError: unsupported suffix, unwritable folder, or labels outside 0..255.
    """
    path = Path(path)
    suffix = file_suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise SpineInputError(path, f"cannot write '{suffix or path.name}' files (use {', '.join(WRITE_SUFFIXES)})")
    if suffix == ".seg.nrrd":
        return write_seg_nrrd(volume, path)
    check_writable_dir(path.parent)
    if volume.is_label:
        image = volume.with_array(label_array_uint8(volume.array, path)).to_sitk()
    elif volume.array.dtype == bool:
        image = volume.with_array(volume.array.astype(np.uint8)).to_sitk()
    else:
        image = volume.to_sitk()
    def write(temp: Path) -> None:
        # Plain .nii is uncompressed by definition; everything else is gzip-compressed.
        with native_stderr_silenced():
            sitk.WriteImage(image, str(temp), useCompression=suffix != ".nii")

    write_atomically(path, write)
    return path


def _check_layout(dimension: int, size: tuple, components: int, spacing: tuple, path: Path,
                  for_segmenting: bool) -> None:
    """Refuse non-3D or multi-channel images (and, ``for_segmenting``, too large ones) from the header alone."""
    dims = " x ".join(str(n) for n in size)
    if components != 1:
        raise SpineInputError(path, f"image has {components} values per voxel (colour or vector); one is needed")
    if dimension == 2:
        raise SpineInputError(path, f"2D image ({dims}); a 3D volume is needed")
    if dimension == 4 and size[3] != 1:
        raise SpineInputError(path, f"4D image ({dims}); a single 3D volume is needed")
    if dimension not in (3, 4):
        raise SpineInputError(path, f"{dimension}D image ({dims}); a 3D volume is needed")
    check_size(size[:3], spacing[:3], path)
    if for_segmenting:
        check_memory(size[:3], path)


def _read_image_file(path: Path, kind: str, for_segmenting: bool) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with native_stderr_silenced():
            reader.ReadImageInformation()
    except RuntimeError:
        if kind == "NRRD":
            check_announced_size(path)  # an absurd size is named rather than called "corrupt"
        raise SpineInputError(path, f"unreadable or corrupt {kind} file") from None
    size = reader.GetSize()
    if kind == "NIfTI":
        check_nifti_geometry(path)  # before the layout: ITK's spacing may already be made up
    _check_layout(reader.GetDimension(), size, reader.GetNumberOfComponents(), reader.GetSpacing(), path,
                  for_segmenting)
    if kind == "NIfTI":
        check_nifti_complete(path)
    try:
        with native_stderr_silenced():
            image = reader.Execute()
    except RuntimeError:
        raise SpineInputError(path, f"unreadable or corrupt {kind} file (voxel data could not be read)") from None
    floats = image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64)
    if kind == "NIfTI" and floats and (sitk.GetArrayViewFromImage(image) == 0).any():
        # The NIfTI library under ITK reads NaN and infinity as 0: only the file can tell.
        bad = count_nifti_non_finite(path)
        if bad:
            raise SpineInputError(path, f"image has {bad} non-finite voxels (NaN or infinity)")
    if image.GetDimension() == 4:
        # A 4D file with one time point is a 3D volume in disguise.
        extractor = sitk.ExtractImageFilter()
        extractor.SetSize(list(size[:3]) + [0])
        extractor.SetIndex([0, 0, 0, 0])
        extractor.SetDirectionCollapseToStrategy(extractor.DIRECTIONCOLLAPSETOSUBMATRIX)
        image = extractor.Execute(image)
    return image


def _dicom_series_in(folder: Path) -> list[list[str]]:
    """File lists of every DICOM series found in ``folder`` and its subfolders."""
    found = []
    for directory, _, files in os.walk(folder):
        if not files:
            continue
        with native_stderr_silenced():
            series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory)
        for series_id in series_ids:
            with native_stderr_silenced():
                found.append(list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, series_id)))
    return found


def _read_series_files(files: list[str], subject: Path, for_segmenting: bool) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's position, to check the gaps
    try:
        with native_stderr_silenced():
            image = reader.Execute()
    except RuntimeError:
        raise SpineInputError(subject, "unreadable or corrupt DICOM series") from None
    _check_layout(image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel(),
                  image.GetSpacing(), subject, for_segmenting)
    if image.HasMetaDataKey("ITK_non_uniform_sampling_deviation"):
        _check_slice_gaps(reader, image, subject)
    return image


def _check_slice_gaps(reader: sitk.ImageSeriesReader, image: sitk.Image, subject: Path) -> None:
    """Refuse a series whose slices are unevenly spaced (a missing slice); warn about small unevenness.

    ITK stacks the slices on an even grid whose spacing is the first-to-last distance
    over the number of gaps, and only warns; a missing slice would make every distance
    along that axis wrong.
    """
    normal = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    try:
        positions = [[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")]
                     for i in range(len(reader.GetFileNames()))]
        gaps = np.diff(np.sort(np.asarray(positions, dtype=np.float64) @ normal))
    except (RuntimeError, ValueError):
        return  # no usable position tags: nothing better than ITK's grid to go on
    usual = float(np.median(gaps))
    spread = f"slices {gaps.min():.4g} to {gaps.max():.4g} mm apart, read as {image.GetSpacing()[2]:.4g} mm"
    deviation = float(np.max(np.abs(gaps - usual))) / usual if usual > 0 else np.inf
    if deviation > DICOM_GAP_TOLERANCE:
        raise SpineInputError(subject, f"DICOM slices are unevenly spaced ({spread}); is a slice missing?")
    if deviation > DICOM_GAP_TOLERANCE / 10:  # below that: rounding in the position tags
        warnings.warn(SpineInputWarning(subject, f"DICOM slices are slightly unevenly spaced ({spread})"), stacklevel=4)


def _read_dicom_series(folder: Path, for_segmenting: bool) -> sitk.Image:
    series = _dicom_series_in(folder)
    if not series:
        raise SpineInputError(folder, "no DICOM series found in folder")
    return _read_series_files(max(series, key=len), folder, for_segmenting)


def _read_dicom_series_of_file(path: Path, for_segmenting: bool) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with native_stderr_silenced():
            reader.ReadImageInformation()
        series_id = reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else ""
    except RuntimeError:
        raise SpineInputError(path, "unreadable or corrupt DICOM file") from None
    files = []
    if series_id:
        with native_stderr_silenced():
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path.parent), series_id))
    return _read_series_files(files or [str(path)], path, for_segmenting)


def _to_volume(image: sitk.Image, path: Path, is_label: bool) -> Volume:
    try:
        volume = Volume.from_sitk(image, is_label=is_label)
    except ValueError as error:
        raise SpineInputError(path, f"invalid geometry ({error})") from None
    if not is_label:
        return volume
    array = volume.array
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise SpineInputError(path, "label map has non-integer values")
    elif array.dtype.kind not in "biu":
        raise SpineInputError(path, f"label map has unsupported voxel type {array.dtype}")
    low, high = (array.min(), array.max()) if array.size else (0, 0)
    if low >= 0 and high <= 255:
        return volume.with_array(array.astype(np.uint8, copy=False))
    if low < np.iinfo(np.int32).min or high > np.iinfo(np.int32).max:
        raise SpineInputError(path, f"label values {low}..{high} are not label ids")
    return volume.with_array(array.astype(np.int32, copy=False))
