"""Resampling between a volume's grid and an arbitrary target grid (SimpleITK)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def resample_onto(
    image: sitk.Image,
    size: Sequence[int],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
    *,
    interpolator: int,
    pixel_type: int,
    default: float = 0.0,
) -> sitk.Image:
    """Sample ``image`` at the voxel centres of a target grid (identity transform).

    Args:
        image: Source image (scalar or vector pixels).
        size: Target voxels along its i, j, k axes.
        spacing: Target voxel size (mm).
        origin: LPS position (mm) of target voxel (0, 0, 0).
        direction: (3, 3) LPS direction matrix of the target, columns = axis unit vectors.
        interpolator: e.g. ``sitk.sitkLinear`` for intensities, ``sitk.sitkNearestNeighbor`` for labels.
        pixel_type: SimpleITK output pixel type.
        default: Value where the target lies outside the source.

    Returns:
        The resampled image.
    """
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in size])
    resampler.SetOutputSpacing([float(v) for v in spacing])
    resampler.SetOutputOrigin([float(v) for v in origin])
    resampler.SetOutputDirection([float(v) for v in np.asarray(direction, dtype=np.float64).reshape(-1)])
    resampler.SetInterpolator(interpolator)
    resampler.SetOutputPixelType(pixel_type)
    resampler.SetDefaultPixelValue(float(default))
    return resampler.Execute(image)


def array_ijk(image: sitk.Image) -> np.ndarray:
    """Voxels of a SimpleITK image indexed [i, j, k] (or [i, j, k, c] for vector images), C-contiguous."""
    view = sitk.GetArrayViewFromImage(image)
    order = (2, 1, 0) if view.ndim == 3 else (2, 1, 0, 3)
    # One explicit copy: the view dies with the image.
    return np.array(np.transpose(view, order), order="C", copy=True)
