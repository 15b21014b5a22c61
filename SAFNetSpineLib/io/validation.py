"""Checks that turn unusable inputs and output folders into one-line errors.

Every check raises :class:`~SAFNetSpineLib.errors.SpineInputError` naming the file or
folder, so that the CLI prints one line and the Slicer module one dialog, and so that
bad input is caught before any minutes of compute are spent on it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.volume import Volume

#: Largest number of voxels along one axis of an input (a 2048 matrix is beyond any clinical MRI).
MAX_AXIS_VOXELS = 2048
#: Largest number of voxels in one input (2**28 float32 voxels are already 1 GiB).
MAX_TOTAL_VOXELS = 2**28
#: Largest voxel size in mm; anything coarser is a broken header, not an MRI.
MAX_SPACING_MM = 50.0
#: Fewest voxels along every axis: a single slice is a 2D image.
MIN_AXIS_VOXELS = 2


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
        raise SpineInputError(path, f"image is {dims} voxels, more than 2**28 in total")
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    if not np.all(np.isfinite(spacing_arr)) or np.any(spacing_arr <= 0) or np.any(spacing_arr > MAX_SPACING_MM):
        text = ", ".join(f"{v:g}" for v in spacing_arr)
        raise SpineInputError(path, f"voxel spacing ({text}) mm is not within (0, {MAX_SPACING_MM:g}] mm")


def check_image(volume: Volume, path: str | Path | None) -> None:
    """Reject images the network cannot segment: absurd grid, non-finite or constant voxels.

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
    elif array.dtype.kind not in "biu":
        raise SpineInputError(path, f"image has unsupported voxel type {array.dtype}")
    low, high = array.min(), array.max()
    if low == high:
        raise SpineInputError(path, f"image is constant (every voxel is {low:g}); nothing to segment")


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
