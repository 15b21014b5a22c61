"""Tracing a section's outline along lines: where a line enters and leaves the structure.

Lines are given by a point and a direction in the in-plane coordinates (a, s) of a
:class:`~SAFNetSpineLib.measurements.section.Section`; positions along them are the
line parameter ``t`` (mm when the direction is a unit vector). Crossings are the 0.5
level of the bilinear mask, located to a fraction of a sample by linear interpolation.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.measurements.section import Section

#: Sampling step (mm) along traced lines.
TRACE_STEP_MM = 0.1


def crossings(section: Section, point: np.ndarray, direction: np.ndarray, half_length: float,
              run: str = "containing") -> tuple[float, float] | None:
    """Where the line ``point + t * direction`` enters and leaves the outline.

    With ``run="containing"`` the run of inside samples containing ``t = 0`` is used,
    or the longest run when ``point`` is outside the structure; with ``run="last"``
    the run furthest along the direction (the top of a column).

    Args:
        section: The structure's section.
        point: A point on the line, shape (2,).
        direction: The line's direction, shape (2,).
        half_length: Range of ``t`` searched: [-half_length, half_length].
        run: "containing" or "last".

    Returns:
        ``(t_low, t_high)``, or None when the line misses the structure or the run
        reaches the end of the searched range.
    """
    t = np.arange(-half_length, half_length + TRACE_STEP_MM / 2, TRACE_STEP_MM)
    values = section.sample(np.asarray(point)[None, :] + t[:, None] * np.asarray(direction)[None, :])
    inside = values >= 0.5
    if not inside.any():
        return None
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2] - 1  # inclusive inside runs
    centre = len(t) // 2
    hit = [n for n in range(len(starts)) if starts[n] <= centre <= ends[n]]
    if run == "last":
        chosen = len(starts) - 1
    else:
        chosen = hit[0] if hit else int(np.argmax(ends - starts))
    first, last = starts[chosen], ends[chosen]
    if first == 0 or last == len(t) - 1:
        return None

    def level(i_out: int, i_in: int) -> float:
        v_out, v_in = values[i_out], values[i_in]
        fraction = (0.5 - v_out) / (v_in - v_out) if v_in != v_out else 0.5
        return float(t[i_out] + fraction * (t[i_in] - t[i_out]))

    return level(first - 1, first), level(last + 1, last)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept``; returns (slope, intercept)."""
    slope, intercept = np.polyfit(np.asarray(x, np.float64), np.asarray(y, np.float64), 1)
    return float(slope), float(intercept)


def tilt_deg(direction: np.ndarray) -> float:
    """Endplate tilt (degrees) of an in-plane direction (a, s): positive when its anterior end is lower."""
    d = np.asarray(direction, np.float64)
    if d[0] < 0:
        d = -d
    return float(np.degrees(np.arctan2(-d[1], d[0])))
