"""A field of view far larger than the training scans': segment a window of a trained size.

The network grid fits the field of view it is given, so in a scan several times the height of
the training scans (a whole spine, a large thoracolumbar field) the vertebrae are drawn smaller
than any the network learnt, and outlines and names fall apart (RESULTS.md, "Field of view against
the training scans'"). Along each in-plane axis where the scan is at least :data:`WINDOW_AT` times
the largest trained field, the scan is cut into windows of the largest trained field: along
superior-inferior overlapping by half, along anterior-posterior one window about the centre. Each
window is segmented; the one whose sacrum is largest (the anchor the levels are counted from), else
the one with most structure found, is kept, placed again with its inferior edge just below that
sacrum (:func:`on_the_sacrum`) and segmented once more, and its labels are put back in the whole
scan's grid, background elsewhere.

A window is a block of the scan's own voxels (:func:`sub_volume`), so putting it back
(:func:`paste`) is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming.hint import hint_voxel
from SAFNetSpineLib.labels import SACRUM_ID
from SAFNetSpineLib.preprocessing.orientation import match_network_axes
from SAFNetSpineLib.volume import Volume

#: A block of a volume's voxels: one slice per index axis (i, j, k).
Box = tuple[slice, slice, slice]
#: Where the kept window is placed again: its inferior edge this far (mm) below the lowest sacrum voxel found
#: (:func:`on_the_sacrum`), so the window holds the sacrum and the levels above it up to its top.
SACRUM_MARGIN_MM = 20.0
#: An in-plane extent this many times the largest trained field of view or more is cut into windows
#: (449 mm for the bundled weights). 1.4 (:data:`~SAFNetSpineLib.inference.field_of_view.LARGER`, where
#: ``--fit-fov off`` warns) left 470-515 mm scans whole at 0.35-0.81; from 1.15 they scored 0.72-0.85
#: (RESULTS.md, "A large field of view segmented in windows").
WINDOW_AT = 1.15
#: Leave out, when choosing, a sacrum at a window's inferior edge inside the scan (:func:`choose_window`);
#: False counts it (a switch for ``bench_field_of_view.py --cut-sacrum count``).
SKIP_CUT_SACRUM = True
#: Place the kept window again on the sacrum it found (one more network pass); False keeps the
#: half-overlapping window as chosen (a switch for ``bench_field_of_view.py --window-placement``).
PLACE_ON_SACRUM = True


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
        Boxes of at most ``high`` mm along each in-plane axis that was at least ``WINDOW_AT * high``,
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
        if size * volume.spacing[n] < WINDOW_AT * high:
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


def _holds(box: Box, voxel: Sequence[int]) -> bool:
    return all((s.start or 0) <= v < s.stop for s, v in zip(box, voxel, strict=True))


def windows_holding(boxes: Sequence[Box], voxel: Sequence[int] | None) -> list[int]:
    """Indices of the boxes that hold a voxel (i, j, k) of the scan; every index when none does or
    ``voxel`` is None (a hint outside the image, which the naming reports)."""
    holding = [] if voxel is None else [i for i, box in enumerate(boxes) if _holds(box, voxel)]
    return holding or list(range(len(boxes)))


def _superior_inferior(volume: Volume) -> tuple[int, bool]:
    """(the superior-inferior index axis, whether its index grows towards inferior)."""
    axes, signs = match_network_axes(volume.direction)
    return axes[1], signs[1] > 0  # the network's rows run towards inferior


def cut_below(volume: Volume, box: Box) -> tuple[int, int] | None:
    """(index axis, window index of its inferior edge row) where ``box`` ends inferiorly inside the scan, else None."""
    n, towards_inferior = _superior_inferior(volume)
    start, stop = box[n].start or 0, box[n].stop
    if towards_inferior:
        return (n, stop - start - 1) if stop < volume.shape[n] else None
    return (n, 0) if start > 0 else None


def choose_window(label_arrays: Sequence[np.ndarray], candidates: Sequence[int] | None = None,
                  cuts: Sequence[tuple[int, int] | None] | None = None) -> int:
    """Index of the window to keep: the largest sacrum, then the most structure found.

    A sacrum touching a window's inferior edge where that edge lies inside the scan (``cuts``) does
    not count: the network takes the lowest body a window shows for a sacrum, and with windows
    overlapping by half the real one lies whole in a lower window, or reaches the scan's own edge.

    Args:
        label_arrays: Each window's label map (after clean-up and naming), on one voxel size.
        candidates: The indices to choose among (default: all).
        cuts: Per window, :func:`cut_below` (None: it ends at the scan's edge); default: none cut.
    """
    def score(i: int) -> tuple[int, int]:
        labels = np.asarray(label_arrays[i])
        sacrum = labels == SACRUM_ID
        cut = None if cuts is None else cuts[i]
        if cut is not None and np.take(sacrum, cut[1], axis=cut[0]).any():
            sacrum = np.zeros_like(sacrum)
        return int(np.count_nonzero(sacrum)), int(np.count_nonzero(labels))

    return max(range(len(label_arrays)) if candidates is None else candidates, key=score)


def on_the_sacrum(volume: Volume, box: Box, window_labels: np.ndarray) -> Box | None:
    """The window of ``box``'s size placed along superior-inferior with its inferior edge
    :data:`SACRUM_MARGIN_MM` below the lowest sacrum voxel of ``window_labels`` (clipped to the scan).

    Args:
        volume: The whole scan.
        box: The window the labels were found in.
        window_labels: Its label map, shape of ``volume.array[box]``.

    Returns:
        The new box, or None when the window holds no sacrum or the box would not move.
    """
    n, towards_inferior = _superior_inferior(volume)
    rows = np.flatnonzero(np.moveaxis(np.asarray(window_labels) == SACRUM_ID, n, 0).any(axis=(1, 2)))
    if rows.size == 0:
        return None
    size, start = volume.shape[n], box[n].start or 0
    width, margin = box[n].stop - start, int(round(SACRUM_MARGIN_MM / volume.spacing[n]))
    if towards_inferior:  # the sacrum's lowest voxel is its largest index
        stop = min(size, start + int(rows.max()) + 1 + margin)
        first = max(0, stop - width)
    else:
        first = max(0, min(size - width, start + int(rows.min()) - margin))
    if first == start:
        return None
    placed = list(box)
    placed[n] = slice(first, first + width)
    return tuple(placed)


def segment_in_windows(volume: Volume, boxes: Sequence[Box], segment_one: Callable, progress=None,
                       level_hint=None) -> tuple[object, Box, float]:
    """Segment each window, keep the one with the sacrum, and place it again on that sacrum.

    Args:
        volume: The whole scan.
        boxes: Its windows (:func:`window_boxes`).
        segment_one: ``segment_one(window_volume, progress) -> SegmentationResult`` (labels on the
            window's grid, cleaned up and named).
        progress: Optional callable(stage, fraction, message) for the whole scan.
        level_hint: A :class:`~SAFNetSpineLib.inference.naming.LevelHint` or None: only windows holding
            its point are kept, when any does.

    Returns:
        (the kept window's result, its box, seconds of network time over every window).
    """
    report = progress or (lambda *a, **k: None)
    voxel = None
    if level_hint is not None:
        try:
            voxel = hint_voxel(level_hint, volume)
        except SpineInputError:  # outside the image: the naming in the window says so
            voxel = None
    results = []
    for index, box in enumerate(boxes):
        def window_report(stage, fraction, message="", _i=index):
            report(stage, (_i + fraction) / len(boxes), f"window {_i + 1} of {len(boxes)}: {message}")

        results.append(segment_one(sub_volume(volume, box), window_report))
    candidates = None if voxel is None else windows_holding(boxes, voxel)
    cuts = [cut_below(volume, box) for box in boxes] if SKIP_CUT_SACRUM else None
    keep = choose_window([r.labels.array for r in results], candidates, cuts)
    result, box = results[keep], boxes[keep]
    placed = on_the_sacrum(volume, box, result.labels.array) if PLACE_ON_SACRUM else None
    if placed is not None and (voxel is None or _holds(placed, voxel)):
        again = segment_one(sub_volume(volume, placed), None)
        results.append(again)
        if np.any(np.asarray(again.labels.array) == SACRUM_ID):  # the sacrum found again there: keep it
            result, box = again, placed
    return result, box, sum(r.timings_s.get("network", 0.0) for r in results)
