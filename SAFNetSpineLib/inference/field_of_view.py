"""Is a scan's field of view like the training scans'? One warning where it is not.

The network grid fits each scan's in-plane field of view (``preprocessing.grid``), so a
vertebra's size in the grid depends on it: a scan whose field of view is far smaller or far
larger than every training scan's shows the network vertebrae of a size it never learnt, and
outlines and names get worse. The weights' manifest records the training scans' range
(``trained_fov_mm``); ``segment`` compares each scan with it and says so in ``NAME_seg.json``
(``field_of_view``) and one warning line.

The reach beyond the range was chosen on the bundled weights with cropped and zero-padded
development scans (``Testing/benchmarks/bench_field_of_view.py``, RESULTS.md "Field of view
against the training scans'"): the bodies' outlines held at 0.8 times the smallest training
field of view (179 mm: 0.84-0.89 Dice), fell at 0.7 times (157 mm: 0.63-0.84) and 0.6 times
(134 mm: 0.30-0.70); they held moderately at 1.36 times the largest (533 mm: 0.73-0.81) and fell at
1.56 times (610 mm: 0.57-0.68) and 1.76 times (686 mm: 0.19-0.23).

A field of view that small is not only warned about but fitted (:func:`fitted_preprocess`): the
grid is laid over the smallest trained field instead, the scan centred in it, so its vertebrae have
a size the network learnt (RESULTS.md, "A small field of view widened at inference"); one that large
is segmented in windows of the largest trained field (:mod:`~SAFNetSpineLib.inference.windows`).
Either way the check judges what the network saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.preprocessing.orientation import match_network_axes

#: A field of view this many times the smallest trained one, or less, is warned about.
SMALLER = 0.75
#: A field of view this many times the largest trained one, or more, is warned about.
LARGER = 1.4
#: An in-plane extent this many times the smallest trained field of view or less is widened to it
#: (:func:`fitted_preprocess`): where the scan would be warned about. Between this and the
#: smallest trained field, widening cost the outlines a little (0.8 times: 0.851 against 0.859).
FIT_BELOW = SMALLER
#: ``segment --fit-fov``'s default: fit a field of view that small or that large (see :mod:`.windows`).
DEFAULT_FIT_FOV = True


def in_plane_fov_mm(shape: Sequence[int], spacing: Sequence[float], direction: np.ndarray) -> tuple[float, float]:
    """(superior-inferior, anterior-posterior) extent in mm of an image's voxels.

    Args:
        shape: Array shape in index order (i, j, k).
        spacing: Voxel size (mm) per index axis.
        direction: (3, 3) LPS direction matrix.
    """
    axes, _ = match_network_axes(np.asarray(direction, dtype=np.float64).reshape(3, 3))
    return tuple(float(shape[axes[a]]) * float(spacing[axes[a]]) for a in (1, 2))


def fov_of_file(path: Path) -> tuple[float, float] | None:
    """:func:`in_plane_fov_mm` of an image file, from its header only; None when ITK cannot read it
    that way (a DICOM folder, a damaged file: reading the case itself says what is wrong)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    if reader.GetDimension() != 3:
        return None
    return in_plane_fov_mm(reader.GetSize(), reader.GetSpacing(), np.reshape(reader.GetDirection(), (3, 3)))


def trained_range(fields_mm: Iterable[Sequence[float]], parent: Sequence[float] | None = None) -> list[float] | None:
    """[smallest, largest] in-plane field of view (mm) over training scans, joined with a parent's range.

    Args:
        fields_mm: (superior-inferior, anterior-posterior) mm per training scan; None entries (not
            read) are left out.
        parent: The initial weights' ``trained_fov_mm`` (their network learnt those scans too), or None.

    Returns:
        [low, high] rounded to 0.1 mm, or None with no scan and no parent.
    """
    values = [float(v) for pair in fields_mm if pair is not None for v in pair]
    if parent:
        values += [float(parent[0]), float(parent[1])]
    return [round(min(values), 1), round(max(values), 1)] if values else None


def fitted_preprocess(volume, config: PreprocessConfig, trained_fov_mm: Sequence[float] | None) -> PreprocessConfig:
    """The preprocessing for one scan: the weights' own, widened when its field of view is small.

    Where either in-plane extent is at most :data:`FIT_BELOW` times the smallest trained field of
    view (and under the weights' own ``min_fov_mm``), the grid is laid over the smallest trained
    field instead (``min_fov_mm`` raised to it; an axis already that large is not changed). Weights
    that never widened in training get ``widen_fill="network_zero"`` (the scan z-scored alone, 0
    around it: what the network's convolutions pad with); weights that did keep their own fill.

    Args:
        volume: The input image (Volume).
        config: The weights' preprocessing.
        trained_fov_mm: The weights' [low, high] in mm, or None (nothing is fitted).

    Returns:
        ``config`` itself, or a copy with a larger ``min_fov_mm``.
    """
    if not trained_fov_mm:
        return config
    low = float(trained_fov_mm[0])
    si, ap = in_plane_fov_mm(volume.shape, volume.spacing, volume.direction)
    if min(si, ap) > FIT_BELOW * low or low <= config.min_fov_mm:
        return config
    fill = config.widen_fill if config.min_fov_mm > 0 else "network_zero"
    return dataclasses.replace(config, min_fov_mm=low, widen_fill=fill)


def field_of_view_check(volume, trained_fov_mm: Sequence[float] | None, min_fov_mm: float = 0.0,
                        window_mm: Sequence[float] | None = None) -> dict:
    """The ``field_of_view`` record of ``NAME_seg.json`` for one scan.

    Args:
        volume: The input image (Volume).
        trained_fov_mm: The weights' [low, high] in mm, or None when the manifest has none.
        min_fov_mm: The ``min_fov_mm`` this scan was segmented with (the weights' own, or the
            smallest trained field of view from :func:`fitted_preprocess`): a smaller field of view
            is widened to it before the grid is laid.

        window_mm: (superior-inferior, anterior-posterior) mm of the window of the scan that was
            segmented (inference.windows), or None for the whole scan.

    Returns:
        ``{"in_plane_mm": [si, ap], "trained_mm": [low, high] or None, "widened_to_mm": mm or None,
        "window_mm": [si, ap] or None, "warning": str or None}``; ``widened_to_mm`` is ``min_fov_mm``
        where an in-plane extent was under it. The warning judges what the network saw: the window, if any.
    """
    si, ap = in_plane_fov_mm(volume.shape, volume.spacing, volume.direction)
    widened = round(float(min_fov_mm), 1) if min_fov_mm > 0 and min(si, ap) < min_fov_mm else None
    record = {"in_plane_mm": [round(si, 1), round(ap, 1)],
              "trained_mm": [float(v) for v in trained_fov_mm] if trained_fov_mm else None,
              "widened_to_mm": widened, "window_mm": None if window_mm is None else [round(float(v), 1) for v in window_mm],
              "warning": None}
    if not trained_fov_mm:
        return record
    low, high = (max(float(v), min_fov_mm) for v in trained_fov_mm)
    seen_si, seen_ap = (si, ap) if window_mm is None else window_mm
    seen = [max(seen_si, min_fov_mm), max(seen_ap, min_fov_mm)]
    if min(seen) <= SMALLER * low or max(seen) >= LARGER * high:
        record["warning"] = (f"the in-plane field of view ({si:.0f} x {ap:.0f} mm) is far from the training scans' "
                             f"({trained_fov_mm[0]:.0f}-{trained_fov_mm[1]:.0f} mm), so vertebrae appear at a size "
                             "the network did not learn: check the outlines and the level names")
    return record


def ensemble_range(ranges: Sequence[Sequence[float] | None]) -> list[float] | None:
    """The range an ensemble trusts: what every member learnt (None if any member's is unknown)."""
    if not ranges or any(not r for r in ranges):
        return None
    return [max(float(r[0]) for r in ranges), min(float(r[1]) for r in ranges)]
