"""Volume -> network array (the forward half; the inverse is in :mod:`.restore`).

Forward (SAFNet paper): reorient to (D, H, W) = (left-right, superior-inferior,
anterior-posterior) from the direction cosines, keep the central part of the
anterior-posterior field of view, resample to ``target_shape`` (linear for images,
nearest for labels) and z-score. All of it is one resampling onto a
:class:`NetworkGrid`, so the inverse is one resampling back onto the input's grid:
the restored label map has exactly the input's size, spacing, origin and direction,
with background outside the crop.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.preprocessing.grid import NetworkGrid
from SAFNetSpineLib.preprocessing.resampling import array_ijk, resample_onto
from SAFNetSpineLib.volume import Volume


def _onto_grid(image: sitk.Image, grid: NetworkGrid, interpolator: int, pixel_type: int) -> np.ndarray:
    resampled = resample_onto(
        image, grid.shape, grid.spacing, grid.origin, grid.direction, interpolator=interpolator,
        pixel_type=pixel_type,
    )
    return array_ijk(resampled)


def preprocess_image(
    volume: Volume, config: PreprocessConfig | None = None, *, subject: str | None = None
) -> tuple[np.ndarray, NetworkGrid]:
    """Map an image onto the network grid and z-score it.

    Args:
        volume: Image in any orientation.
        config: Preprocessing parameters (paper defaults if None).
        subject: File or case named in errors.

    Returns:
        ``(array, grid)``: float32 array of shape ``config.target_shape`` = (D, H, W),
        zero mean and unit standard deviation, and the grid it lives on.

    Raises:
        SpineInputError: if the resampled image is constant (nothing to normalise).
    """
    config = config or PreprocessConfig()
    grid = NetworkGrid.covering(volume, config)
    sitk_image = volume.to_sitk()
    array = _onto_grid(sitk_image, grid, sitk.sitkLinear, sitk.sitkFloat32)
    inside = None  # network voxels within the scan, where the grid reaches past it and network_zero fills there
    if config.min_fov_mm > 0 and config.widen_fill == "network_zero":
        ones = sitk.Image(sitk_image.GetSize(), sitk.sitkUInt8) + 1
        ones.CopyInformation(sitk_image)
        inside = _onto_grid(ones, grid, sitk.sitkNearestNeighbor, sitk.sitkUInt8) > 0
        if inside.all():
            inside = None
    values = array if inside is None else array[inside]
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    if not np.isfinite(std) or std <= 1e-6 * max(1.0, abs(mean)):
        raise SpineInputError(subject, "image is constant inside the network field of view; nothing to segment")
    array -= mean
    array /= std
    if inside is not None:
        array[~inside] = 0.0
    return array, grid


def preprocess_label(label_volume: Volume, grid: NetworkGrid) -> np.ndarray:
    """Nearest-neighbour resample a label map onto a network grid.

    Args:
        label_volume: Label map (usually on the image's grid).
        grid: Grid from :func:`preprocess_image` of the matching image.

    Returns:
        int64 array (D, H, W) of label ids; 0 outside the label map.
    """
    array = np.asarray(label_volume.array)
    if array.dtype.kind == "f":
        array = np.rint(array)
    image = label_volume.with_array(array.astype(np.int32, copy=False)).to_sitk()
    return _onto_grid(image, grid, sitk.sitkNearestNeighbor, sitk.sitkInt32).astype(np.int64)
