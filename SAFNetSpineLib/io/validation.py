"""Checks that turn unusable inputs and output folders into one-line errors.

Every check raises :class:`~SAFNetSpineLib.errors.SpineInputError` naming the file or
folder, so that the CLI prints one line and the Slicer module one dialog, and so that
bad input is caught before any minutes of compute are spent on it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.volume import Volume

#: Largest number of voxels along one axis of an input (a 2048 matrix is beyond any clinical MRI).
MAX_AXIS_VOXELS = 2048
#: Largest number of voxels in one input: 512 x 512 x 512, about 9.4 GiB of peak memory to segment.
MAX_TOTAL_VOXELS = 2**27
#: Peak memory of ``segment`` per input voxel, bytes. Measured (Testing/benchmarks/bench_input_memory.py,
#: docs/INPUT_CHECKS.md): 50.8 per voxel above a 0.66 GB base on phantoms of 1 to 80 million voxels
#: (80 x 1000 x 1000: 4.7 GB); an 80 x 1000 x 1000 scan in the issue 25 sweep peaked at 5.6 GB, 70 per
#: voxel all told, which is used. Most of it is the class scores interpolated onto the input grid.
SEGMENT_BYTES_PER_VOXEL = 70
#: Largest voxel size in mm; anything coarser is a broken header, not an MRI.
MAX_SPACING_MM = 50.0
#: Fewest voxels along every axis: a single slice is a 2D image.
MIN_AXIS_VOXELS = 2
#: Largest voxel magnitude an image may hold: preprocessing resamples in float32.
FLOAT32_LIMIT = float(np.finfo(np.float32).max)
#: An integer image with at most this many distinct values, all label-table ids, is a label map.
LABEL_MAP_MAX_VALUES = 32


def check_input_path(path: str | Path) -> Path:
    """Refuse a missing input, or one that is not a regular file or a folder, before opening it.

    Opening a FIFO for reading blocks until something writes to it, and a device or a
    socket is never an image, so these are refused from ``stat`` alone.

    Args:
        path: An input file or DICOM folder (symbolic links are followed).

    Returns:
        The path as a Path.

    Raises:
        SpineInputError: naming the path, if it is missing or of another kind.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SpineInputError(path, "file not found") from None
    except OSError as error:
        raise SpineInputError(path, f"cannot read ({error.strerror or error})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return path
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((text for test, text in kinds if test(mode)), "not a regular file")
    raise SpineInputError(path, f"input is {kind}, not an image file or a DICOM folder")


def check_image_path(path: str | Path) -> Path:
    """:func:`check_input_path`, also refusing a Slicer segmentation given where the MR image belongs.

    Raises:
        SpineInputError: naming the path.
    """
    from SAFNetSpineLib.io.files import file_suffix

    path = check_input_path(path)
    if file_suffix(path) == ".seg.nrrd":
        raise SpineInputError(path, "is a Slicer segmentation (.seg.nrrd), not an MR image; give the image")
    return path


def grid_differences(first: Volume, second: Volume, atol: float = 1e-4) -> list[str]:
    """What differs between two grids, each with both values, e.g. "origin (0, 0, 2.5) vs (0, 0, 0) mm".

    Shape, spacing, origin and direction are compared as ``Volume.same_grid`` does.
    """
    def text(values) -> str:
        return "(" + ", ".join(f"{float(v):.6g}" for v in np.ravel(values)) + ")"

    parts = []
    if first.shape != second.shape:
        parts.append(f"shape {first.shape} vs {second.shape}")
    for field, unit in (("spacing", " mm"), ("origin", " mm"), ("direction", "")):
        a, b = getattr(first, field), getattr(second, field)
        if a.shape != b.shape or not np.allclose(a, b, atol=atol):
            parts.append(f"{field} {text(a)} vs {text(b)}{unit}")
    return parts


def describe_grid_difference(first: Volume, second: Volume, names: tuple[str, str] = ("label", "image"),
                             atol: float = 1e-4) -> str:
    """One line saying where two grids differ: "label grid differs from the image grid in origin ... vs ... mm".

    Args:
        first, second: The volumes compared.
        names: What to call them in the text.
        atol: Tolerance (mm, or cosine for the direction).
    """
    parts = grid_differences(first, second, atol)
    if not parts:
        return f"{names[0]} grid matches the {names[1]} grid"
    return f"{names[0]} grid differs from the {names[1]} grid in " + "; ".join(parts)


def check_size(size: Sequence[int], spacing: Sequence[float], path: str | Path | None) -> None:
    """Reject 2D-like, absurdly large or absurdly spaced grids.

    Called on the header before the voxels are read, so that a huge file is refused
    without loading it.

    Args:
        size: Number of voxels along i, j, k.
        spacing: Voxel size (mm) along i, j, k.
        path: File named in the error.

    Raises:
        SpineInputError: if the grid cannot be a 3D spine MRI.
    """
    size = [int(n) for n in size]
    dims = " x ".join(str(n) for n in size)
    if min(size) < MIN_AXIS_VOXELS:
        raise SpineInputError(path, f"image is {dims} voxels, a single slice; a 3D volume is needed")
    if max(size) > MAX_AXIS_VOXELS:
        raise SpineInputError(path, f"image is {dims} voxels, more than {MAX_AXIS_VOXELS} along an axis")
    if int(np.prod(np.asarray(size, dtype=np.int64))) > MAX_TOTAL_VOXELS:
        raise SpineInputError(path, f"image is {dims} voxels, more than {MAX_TOTAL_VOXELS:,} in total")
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    if not np.all(np.isfinite(spacing_arr)) or np.any(spacing_arr <= 0) or np.any(spacing_arr > MAX_SPACING_MM):
        text = ", ".join(f"{v:g}" for v in spacing_arr)
        raise SpineInputError(path, f"voxel spacing ({text}) mm is not within (0, {MAX_SPACING_MM:g}] mm")


def check_announced_size(path: str | Path) -> None:
    """For a NRRD file ITK could not read: refuse it naming the grid its header announces, if absurd.

    ITK gives up on sizes it cannot allocate or index (0, 2**63, 10**11 x 10**11 x
    1000) with a generic error; the header itself says what is wrong.

    Raises:
        SpineInputError: naming the file and the announced sizes, when they cannot be
            a 3D spine MRI. Returns quietly when the header is not the problem.
    """
    from SAFNetSpineLib.io.nrrd_header import read_nrrd_header

    try:
        header = read_nrrd_header(path)
    except OSError:
        return
    if header is None or not header.sizes:
        return
    dims = " x ".join(str(n) for n in header.sizes)
    if len(header.sizes) < 3:
        raise SpineInputError(path, f"NRRD header announces a {len(header.sizes)}D grid ({dims} voxels)")
    if min(header.sizes) < 1:
        raise SpineInputError(path, f"NRRD header announces {dims} voxels; every size must be at least 1")
    check_size(header.sizes[:3], (1.0, 1.0, 1.0), path)


def available_memory_bytes() -> int | None:
    """Memory this process may still allocate: the least of free RAM, its cgroup's and its address-space limit.

    Returns:
        Bytes, or None where none of these can be read (not Linux).
    """
    found = []
    meminfo = _read_text("/proc/meminfo")
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            found.append(int(line.split()[1]) * 1024)
    limit, used = _read_text("/sys/fs/cgroup/memory.max").strip(), _read_text("/sys/fs/cgroup/memory.current").strip()
    if limit.isdigit() and used.isdigit():
        found.append(int(limit) - int(used))
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        unlimited = soft in (-1, resource.RLIM_INFINITY)
    except (ImportError, OSError, ValueError):  # not a POSIX system
        soft, unlimited = -1, True
    if not unlimited:
        for line in _read_text("/proc/self/status").splitlines():
            if line.startswith("VmSize:"):
                found.append(soft - int(line.split()[1]) * 1024)
    return max(min(found), 0) if found else None


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def check_memory(size: Sequence[int], path: str | Path | None) -> None:
    """Refuse, from its header, an image too large to segment in the memory left.

    Args:
        size: Number of voxels along i, j, k.
        path: File named in the error.

    Raises:
        SpineInputError: when ``SEGMENT_BYTES_PER_VOXEL`` times the voxels exceeds
            :func:`available_memory_bytes`.
    """
    available = available_memory_bytes()
    needed = int(np.prod(np.asarray(size, dtype=np.int64))) * SEGMENT_BYTES_PER_VOXEL
    if available is not None and needed > available:
        dims = " x ".join(str(int(n)) for n in size)
        raise SpineInputError(path, f"image is {dims} voxels; segmenting it needs about {needed / 2**30:.1f} GiB "
                                    f"of memory and {available / 2**30:.1f} GiB is free")


def check_image(volume: Volume, path: str | Path | None) -> None:
    """Reject images the network cannot segment: absurd grid, non-finite, out-of-range or constant voxels.

    Args:
        volume: The image as read.
        path: File named in the error.

    Raises:
        SpineInputError: naming ``path`` and the problem.
    """
    check_size(volume.shape, volume.spacing, path)
    array = volume.array
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise SpineInputError(path, f"image has {bad} non-finite voxels (NaN or infinity)")
        largest = float(np.max(np.abs(array)))
        if largest > FLOAT32_LIMIT:  # preprocessing resamples in float32: these would become infinite
            raise SpineInputError(path, f"image has voxel values up to {largest:.3g}, beyond the 32-bit float "
                                        f"range ({FLOAT32_LIMIT:.3g}) preprocessing works in; rescale it")
    elif array.dtype.kind not in "biu":
        raise SpineInputError(path, f"image has unsupported voxel type {array.dtype}")
    low, high = array.min(), array.max()
    if low == high:
        raise SpineInputError(path, f"image is constant (every voxel is {low:g}); nothing to segment")
    check_not_label_map(array, path)


def check_not_label_map(array: np.ndarray, path: str | Path | None) -> None:
    """Refuse a segmentation given where the MR image belongs.

    An MR image holds hundreds of grey values; an integer volume whose only values are
    a few label-table ids is a label map (e.g. an earlier ``NAME_seg.nii.gz``), and
    segmenting it would give a confident-looking, meaningless result.

    Raises:
        SpineInputError: naming the file and the values found.
    """
    from SAFNetSpineLib.labels import NUM_CLASSES

    if array.dtype.kind not in "biu" or array.min() < 0 or array.max() >= NUM_CLASSES:
        return
    values = np.unique(array)
    if values.size <= LABEL_MAP_MAX_VALUES:
        shown = ", ".join(str(int(v)) for v in values[:12]) + (", ..." if values.size > 12 else "")
        raise SpineInputError(
            path, f"image looks like a label map (only the values {shown}); give the MR image, not a segmentation"
        )


def check_writable_dir(path: str | Path) -> Path:
    """Make sure outputs can be written into folder ``path``, creating it if needed.

    Writes and removes a probe file, because permission bits do not tell the whole
    story (root, read-only mounts, full disks, network shares).

    Args:
        path: Output folder.

    Returns:
        The folder as a Path.

    Raises:
        SpineInputError: if the folder cannot be created or written.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SpineInputError(folder, "output folder is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpineInputError(folder, f"cannot create output folder ({error.strerror or error})") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise SpineInputError(folder, f"output folder is not writable ({error.strerror or error})") from None
    return folder
