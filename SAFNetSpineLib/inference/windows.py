"""A field of view far larger than the training scans': segment a window of a trained size.

The network grid fits the field of view it is given, so in a scan several times the height of
the training scans (a whole spine, a large thoracolumbar field) the vertebrae are drawn smaller
than any the network learnt, and outlines and names fall apart (RESULTS.md, "Field of view against
the training scans'"). Along each in-plane axis where the scan is at least
:data:`~SAFNetSpineLib.inference.field_of_view.LARGER` times the largest trained field, the scan
is cut into windows of the largest trained field: along superior-inferior overlapping by half, along
anterior-posterior one window about the centre. Each window is segmented; the one whose sacrum is
largest (the anchor the levels are counted from), else the one with most structure found, is
kept, and its labels are put back in the whole scan's grid, background elsewhere.

A window is a block of the scan's own voxels (:func:`sub_volume`), so putting it back
(:func:`paste`) is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from SAFNetSpineLib.inference.field_of_view import LARGER
from SAFNetSpineLib.labels import SACRUM_ID
from SAFNetSpineLib.preprocessing.orientation import match_network_axes
from SAFNetSpineLib.volume import Volume

#: A block of a volume's voxels: one slice per index axis (i, j, k).
Box = tuple[slice, slice, slice]


def sub_volume(volume: Volume, box: Box) -> Volume:
    """The voxels of ``box`` as a Volume placed where they lie in the patient.

    Args:
        volume: Any volume.
        box: One slice with step 1 per index axis, within the array.
    """
    starts = np.array([s.start or 0 for s in box], dtype=np.float64)
    origin = volume.origin + volume.direction @ (volume.spacing * starts)
    return Volume(np.asarray(volume.array[box]), volume.spacing, origin, volume.direction, volume.is_label)


def paste(window: Volume, box: Box, whole: Volume) -> Volume:
    """Inverse of :func:`sub_volume` for a label map: ``window`` put back on ``whole``'s grid, 0 elsewhere.

    Args:
        window: A label map on the grid of ``sub_volume(whole, box)``.
        box: The block it came from.
        whole: The volume whose grid the result takes.
    """
    array = np.zeros(whole.shape, dtype=np.asarray(window.array).dtype)
    array[box] = window.array
    return whole.with_array(array, is_label=True)


def window_boxes(volume: Volume, trained_fov_mm: Sequence[float] | None) -> list[Box] | None:
    """The windows to segment a scan far larger than the training scans in, or None when it is not.

    Args:
        volume: The input image.
        trained_fov_mm: The weights' [low, high] in mm, or None (nothing is cut).

    Returns:
        Boxes of at most ``high`` mm along each in-plane axis that was at least ``LARGER * high``,
        superior-inferior windows overlapping by half and covering the scan; None when no axis is
        that large.
    """
    if not trained_fov_mm:
        return None
    high = float(trained_fov_mm[1])
    axes, _ = match_network_axes(volume.direction)
    ranges: list[list[slice]] = [[slice(0, n)] for n in volume.shape]
    cut = False
    for network_axis in (1, 2):  # superior-inferior, anterior-posterior
        n = axes[network_axis]
        size = volume.shape[n]
        if size * volume.spacing[n] < LARGER * high:
            continue
        cut = True
        width = max(1, int(round(high / volume.spacing[n])))
        if network_axis == 2:  # one window about the centre
            start = (size - width) // 2
            ranges[n] = [slice(start, start + width)]
            continue
        starts = list(range(0, size - width, max(1, width // 2))) + [size - width]
        ranges[n] = [slice(s, s + width) for s in sorted(set(starts))]
    if not cut:
        return None
    return [(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]]


def windows_holding(boxes: Sequence[Box], volume: Volume, point_lps: np.ndarray) -> list[int]:
    """Indices of the boxes that hold a point (LPS mm) of ``volume``; every index when none does."""
    index = np.linalg.solve(volume.direction * volume.spacing, np.asarray(point_lps, float) - volume.origin)
    index = np.round(index).astype(int)
    holding = [i for i, box in enumerate(boxes)
               if all((s.start or 0) <= v < s.stop for s, v in zip(box, index, strict=True))]
    return holding or list(range(len(boxes)))


def choose_window(label_arrays: Sequence[np.ndarray], candidates: Sequence[int] | None = None) -> int:
    """Index of the window to keep: the largest sacrum, then the most structure found.

    Args:
        label_arrays: Each window's label map (after clean-up and naming), on one voxel size.
        candidates: The indices to choose among (default: all).
    """
    def score(i: int) -> tuple[int, int]:
        labels = np.asarray(label_arrays[i])
        return int(np.count_nonzero(labels == SACRUM_ID)), int(np.count_nonzero(labels))

    return max(range(len(label_arrays)) if candidates is None else candidates, key=score)


def box_extent_mm(volume: Volume, box: Box) -> tuple[float, float]:
    """(superior-inferior, anterior-posterior) extent in mm of a box of ``volume``."""
    axes, _ = match_network_axes(volume.direction)
    return tuple(float((box[axes[a]].stop - (box[axes[a]].start or 0)) * volume.spacing[axes[a]]) for a in (1, 2))
