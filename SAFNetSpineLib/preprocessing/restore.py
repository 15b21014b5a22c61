"""Network output -> label map on the input's exact grid (the inverse of preprocessing).

A :class:`NetworkGrid` built by :meth:`NetworkGrid.covering` runs along the input's
own (permuted, flipped) axes, so going back is separable: along each input axis, each
input voxel reads one network voxel (nearest) or blends two (linear). That is done
with plain gathers restricted to the foreground's bounding box, which is several
times faster than a general resampler on a 15 x 512 x 512 volume. A grid that is not
aligned with the reference falls back to SimpleITK's nearest-neighbour resampler.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SAFNetSpineLib.preprocessing.grid import NetworkGrid
from SAFNetSpineLib.preprocessing.resampling import array_ijk, resample_onto
from SAFNetSpineLib.volume import Volume


def restore_labels(net_output: np.ndarray, grid: NetworkGrid, reference: Volume) -> Volume:
    """Map network output back onto the reference image's exact grid.

    Label maps (D, H, W) are resampled nearest-neighbour. Class scores (C, D, H, W)
    (probabilities or logits) are interpolated linearly, then argmaxed, which gives
    smoother boundaries than resizing the argmax; only classes that win somewhere
    near the foreground are interpolated.

    Args:
        net_output: int labels (D, H, W) or float scores (C, D, H, W) on ``grid``
            (a CPU torch tensor works too).
        grid: The grid from preprocessing.
        reference: The volume whose grid the result must have (the input image).

    Returns:
        uint8 label Volume with ``reference``'s size, spacing, origin and direction;
        background (0) outside the network's field of view.
    """
    net_output = np.asarray(net_output)
    if net_output.ndim == 3 and tuple(net_output.shape) == grid.shape:
        scores, winners = None, net_output
    elif net_output.ndim == 4 and tuple(net_output.shape[1:]) == grid.shape:
        scores, winners = net_output, _argmax_first_axis(net_output)
    else:
        raise ValueError(f"network output of shape {net_output.shape} is neither {grid.shape} nor (C,) + that")
    result = np.zeros(reference.shape, dtype=np.uint8)
    box = _foreground_box(winners)
    if box is None:
        return reference.with_array(result, is_label=True)
    aligned = _aligned_axes(grid, reference)
    if aligned is None:
        return _restore_by_resampling(winners, grid, reference)
    axes, signs = aligned
    low, high = box
    taps = [_axis_taps(grid, reference, a, axes[a], signs[a], low[a], high[a]) for a in range(3)]
    if any(tap is None for tap in taps):
        return reference.with_array(result, is_label=True)
    crop = tuple(slice(lo, hi + 1) for lo, hi in zip(low, high, strict=True))
    if scores is None:
        labels = winners[crop].astype(np.uint8)
        for a, (_, first, _, weight) in enumerate(taps):
            labels = np.take(labels, first + (weight >= 0.5), axis=a)  # round half up, as ITK does
    else:
        labels = _interpolated_winners(scores, winners, crop, taps)
    inverse = np.argsort(axes)  # reference axis n is network axis inverse[n]
    region = tuple(slice(int(taps[a][0][0]), int(taps[a][0][-1]) + 1) for a in inverse)
    result[region] = np.transpose(labels, inverse)
    return reference.with_array(result, is_label=True)


def _foreground_box(winners: np.ndarray):
    """Bounding box (inclusive low, high per axis) of the non-background voxels plus one voxel, or None.

    The one-voxel margin matters for linear interpolation: where all eight network
    voxels around a point are background winners, the blended scores are too.
    """
    foreground = winners > 0
    low, high = [], []
    for a in range(3):
        present = np.flatnonzero(foreground.any(axis=tuple(b for b in range(3) if b != a)))
        if present.size == 0:
            return None
        low.append(max(int(present[0]) - 1, 0))
        high.append(min(int(present[-1]) + 1, winners.shape[a] - 1))
    return low, high


def _aligned_axes(grid: NetworkGrid, reference: Volume):
    """For each network axis, the parallel reference axis and its sense; None if the grids are not aligned."""
    relation = reference.direction.T @ grid.direction  # [n, a]: cosine of reference axis n and network axis a
    axes = [int(n) for n in np.argmax(np.abs(relation), axis=0)]
    if sorted(axes) != [0, 1, 2] or not np.allclose(np.abs(relation[axes, range(3)]), 1.0, atol=1e-6):
        return None
    return axes, [1.0 if relation[axes[a], a] > 0 else -1.0 for a in range(3)]


def _axis_taps(grid: NetworkGrid, reference: Volume, a: int, n: int, sign: float, low: int, high: int):
    """Where the reference voxels along axis ``n`` fall on network axis ``a`` (between low and high).

    Returns ``(indices, first, second, weight)``: the reference indices (ascending,
    contiguous) inside the network grid's extent, and for each the two neighbouring
    network indices (relative to ``low``) and the weight of the second; None if no
    reference voxel falls there.
    """
    offset = float(reference.direction[:, n] @ (grid.origin - reference.origin))  # mm along reference axis n
    network = (np.arange(reference.shape[n]) * reference.spacing[n] - offset) / (sign * grid.spacing[a])
    # Half a voxel beyond the outer centres still belongs to the grid (as in ITK).
    inside = (network >= max(low - 0.5, -0.5)) & (network <= min(high + 0.5, grid.shape[a] - 0.5))
    indices = np.flatnonzero(inside)
    if indices.size == 0:
        return None
    local = np.clip(network[indices] - low, 0.0, high - low)
    first = np.minimum(np.floor(local).astype(np.int64), high - low)
    second = np.minimum(first + 1, high - low)
    return indices, first, second, (local - first).astype(np.float32)


def _interpolated_winners(scores: np.ndarray, winners: np.ndarray, crop: tuple, taps: list) -> np.ndarray:
    """Separable linear interpolation of the relevant class scores, then argmax; labels in network axis order."""
    classes = np.union1d([0], np.unique(winners[crop]))  # background first: it wins ties
    values = np.ascontiguousarray(scores[(slice(None),) + crop][classes], dtype=np.float32)  # (K, d, h, w)
    # Shrinking axes first keeps the intermediate arrays small.
    for a in sorted(range(3), key=lambda a: taps[a][0].size / values.shape[a + 1]):
        _, first, second, weight = taps[a]
        shape = [1, 1, 1, 1]
        shape[a + 1] = weight.size
        lower = np.take(values, first, axis=a + 1)
        values = np.take(values, second, axis=a + 1)
        values -= lower
        values *= weight.reshape(shape)
        values += lower
    return classes.astype(np.uint8)[_argmax_first_axis(values)]


def _argmax_first_axis(values: np.ndarray) -> np.ndarray:
    """``np.argmax(values, axis=0)`` (first maximum wins), several times faster than numpy's strided one."""
    best = values[0].copy()
    winner = np.zeros(best.shape, dtype=np.intp)
    for k in range(1, values.shape[0]):
        better = values[k] > best
        np.copyto(best, values[k], where=better)
        winner[better] = k
    return winner


def _restore_by_resampling(winners: np.ndarray, grid: NetworkGrid, reference: Volume) -> Volume:
    """Nearest-neighbour resampling of the label map onto any reference grid."""
    source = grid.as_volume(winners.astype(np.uint8), is_label=True).to_sitk()
    restored = resample_onto(
        source, reference.shape, reference.spacing, reference.origin, reference.direction,
        interpolator=sitk.sitkNearestNeighbor, pixel_type=sitk.sitkUInt8,
    )
    return reference.with_array(array_ijk(restored), is_label=True)
