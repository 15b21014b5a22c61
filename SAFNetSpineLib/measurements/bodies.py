"""One structure's shape in its mid-sagittal section: its own axis, heights, depth and endplates.

Everything here is 2D, in the section's in-plane coordinates (a, s) in mm (see
:mod:`.section`); the definitions are those of :mod:`.definitions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.measurements.definitions import (
    CORNER_INSET_FRACTION,
    ENDPLATE_COLUMNS,
    ENDPLATE_FIT_RANGE,
    HEIGHT_BAND_MM,
    HEIGHT_POSITIONS,
    SACRUM_INSET_MM,
)
from SAFNetSpineLib.measurements.outline import crossings, fit_line
from SAFNetSpineLib.measurements.section import Section

#: Frame refinements before giving up; each rotates the body axis onto its endplates' bisector.
_MAX_ITERATIONS = 8
#: Stop refining once the axis turns less than this (radians).
_CONVERGED_RAD = 2e-4
#: Largest turn (radians) of the sacrum's frame per refinement, so one bad fit cannot flip it.
_MAX_TURN_RAD = np.radians(10.0)
#: An S1 endplate traced at more than this to L5's inferior endplate is not S1's endplate.
_MAX_SACRUM_TO_L5_DEG = 40.0
#: Share of the endplate columns that must be traced for a fit.
_MIN_COLUMN_SHARE = 0.6


@dataclass
class Endplate:
    """A fitted endplate line (2D, in-plane mm).

    Attributes:
        centre: Point of the line above/below the body's centre, shape (2,).
        direction: Unit direction along the line, pointing anterior, shape (2,).
        posterior_corner: Posterior end, shape (2,).
        anterior_corner: Anterior end, shape (2,).
    """

    centre: np.ndarray
    direction: np.ndarray
    posterior_corner: np.ndarray
    anterior_corner: np.ndarray

    @property
    def length_mm(self) -> float:
        """Distance between the corners."""
        return float(np.linalg.norm(self.anterior_corner - self.posterior_corner))

    @property
    def normal(self) -> np.ndarray:
        """Unit normal pointing superior, shape (2,)."""
        return np.array([-self.direction[1], self.direction[0]])


@dataclass
class Shape:
    """What was measured of one structure.

    Attributes:
        lateral: Lateral position (mm) of its section plane.
        centre: Centre of the body in its own frame, shape (2,).
        up: Its superior axis (unit), shape (2,).
        ap_depth_mm: Depth through the centre along its anterior axis (sacrum: S1 endplate depth).
        heights_mm: "anterior", "middle", "posterior" -> height (empty for the sacrum).
        height_segments: Same keys -> (bottom, top) points, each shape (2,).
        superior: The superior endplate (None for a disc).
        inferior: The inferior endplate (None for a disc and the sacrum).
    """

    lateral: float
    centre: np.ndarray
    up: np.ndarray
    ap_depth_mm: float
    heights_mm: dict[str, float] = field(default_factory=dict)
    height_segments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    superior: Endplate | None = None
    inferior: Endplate | None = None


def _forward(up: np.ndarray) -> np.ndarray:
    """The anterior axis of a frame whose superior axis is ``up`` (``up`` turned clockwise)."""
    return np.array([up[1], -up[0]])


def _rotate(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1]])


def _trace(section: Section, centre: np.ndarray, up: np.ndarray) -> dict | None:
    """Depth through ``centre`` and the endplate lines, in the frame (centre, up)."""
    forward = _forward(up)
    reach = section.extent_mm()
    row = crossings(section, centre, forward, reach)
    if row is None:
        return None
    t_post, t_ant = row
    depth = t_ant - t_post
    ts = t_post + depth * np.linspace(*ENDPLATE_FIT_RANGE, ENDPLATE_COLUMNS)
    columns = [(t, crossings(section, centre + t * forward, up, reach)) for t in ts]
    traced = [(t, c) for t, c in columns if c is not None]
    if len(traced) < _MIN_COLUMN_SHARE * len(ts):
        return None
    t_ok = np.array([t for t, _ in traced])
    bottoms = np.array([c[0] for _, c in traced])
    tops = np.array([c[1] for _, c in traced])
    return {"t_post": t_post, "t_ant": t_ant, "depth": depth,
            "top": fit_line(t_ok, tops), "bottom": fit_line(t_ok, bottoms)}


def _endplate(section: Section, centre: np.ndarray, up: np.ndarray, line: tuple[float, float],
              inset: float) -> Endplate | None:
    """The endplate on ``line`` (s = slope * t + intercept in the frame) with its corners.

    The corners are where a line parallel to the endplate, ``inset`` mm inside the body
    (negative: below a superior endplate), crosses the walls.
    """
    slope, intercept = line
    forward = _forward(up)
    along = forward + slope * up
    walls = crossings(section, centre + (intercept + inset) * up, along, section.extent_mm())
    if walls is None:
        return None

    def on_line(t: float) -> np.ndarray:
        return centre + t * forward + (slope * t + intercept) * up

    return Endplate(on_line(0.0), along / np.linalg.norm(along), on_line(walls[0]), on_line(walls[1]))


def measure_body(section: Section, up: np.ndarray, with_endplates: bool = True) -> Shape | str:
    """Measure a vertebral body (or, with ``with_endplates=False``, a disc).

    Args:
        section: The structure's section (posterior elements already removed).
        up: First guess of its superior axis (e.g. along the chain of centroids), shape (2,).
        with_endplates: Also fit the endplates and their corners.

    Returns:
        The shape, or a one-line reason why it cannot be measured.
    """
    centre = section.centroid()
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    for _ in range(_MAX_ITERATIONS):
        traced = _trace(section, centre, up)
        if traced is None:
            return "its outline could not be traced in the mid-sagittal plane"
        forward = _forward(up)
        t_mid = 0.5 * (traced["t_post"] + traced["t_ant"])
        (m_top, b_top), (m_bot, b_bot) = traced["top"], traced["bottom"]
        s_mid = 0.5 * ((m_top + m_bot) * t_mid + b_top + b_bot)
        centre = centre + t_mid * forward + s_mid * up
        turn = 0.5 * (np.arctan(m_top) + np.arctan(m_bot))
        up = _rotate(up, turn)
        if abs(turn) < _CONVERGED_RAD:
            break
    traced = _trace(section, centre, up)
    if traced is None:
        return "its outline could not be traced in the mid-sagittal plane"
    forward = _forward(up)
    reach = section.extent_mm()
    heights, segments = {}, {}
    for name, fraction in HEIGHT_POSITIONS.items():
        position = traced["t_post"] + fraction * traced["depth"]
        band = position + np.linspace(-HEIGHT_BAND_MM, HEIGHT_BAND_MM, 5)
        found = [c for c in (crossings(section, centre + t * forward, up, reach) for t in band) if c is not None]
        if len(found) < 3:
            return f"its {name} height could not be traced"
        bottom, top = np.mean([c[0] for c in found]), np.mean([c[1] for c in found])
        heights[name] = float(top - bottom)
        base = centre + position * forward
        segments[name] = (base + bottom * up, base + top * up)
    shape = Shape(section.lateral, centre, up, float(traced["depth"]), heights, segments)
    if with_endplates:
        inset = CORNER_INSET_FRACTION * heights["middle"]
        shape.superior = _endplate(section, centre, up, traced["top"], -inset)
        shape.inferior = _endplate(section, centre, up, traced["bottom"], inset)
        if shape.superior is None or shape.inferior is None:
            return "its endplate corners could not be traced"
    return shape


def measure_sacrum(section: Section, up: np.ndarray, facing: Endplate | None = None) -> Shape | str:
    """Measure the sacrum's superior (S1) endplate.

    The endplate is the top of the sacrum's outline, searched under the endplate it faces
    (L5's inferior one, when measured) so that the posterior sacral surface, which can
    rise as high along a tilted axis, is not mistaken for it.

    Args:
        section: The sacrum's section.
        up: First guess of the S1 endplate normal (e.g. L5's inferior endplate normal), shape (2,).
        facing: L5's inferior endplate, or None.

    Returns:
        The shape (superior endplate and its depth only), or a reason.
    """
    rows, cols = np.nonzero(section.values >= 0.5)
    pixels = np.stack([section.a0 + cols * section.step, section.s0 + rows * section.step], axis=1)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    centre = section.centroid()
    reach = section.extent_mm()

    def under_facing(low: float, high: float, forward: np.ndarray) -> tuple[float, float]:
        """[low, high] (frame t) cut to the span under the facing endplate (+-5 mm), where they overlap."""
        if facing is None:
            return low, high
        ends = sorted(float((c - centre) @ forward) for c in (facing.posterior_corner, facing.anterior_corner))
        if max(low, ends[0] - 5.0) < min(high, ends[1] + 5.0):
            return max(low, ends[0] - 5.0), min(high, ends[1] + 5.0)
        return low, high

    def tops_over(low: float, high: float, forward: np.ndarray, count: int | None = None) -> np.ndarray:
        ts = np.linspace(low, high, count) if count else np.arange(low, high, 1.0)
        found = [(t, c[1]) for t, c in ((t, crossings(section, centre + t * forward, up, reach, run="last"))
                                        for t in ts) if c is not None]
        return np.array(found).reshape(-1, 2)

    line = None
    for _ in range(_MAX_ITERATIONS):
        forward = _forward(up)
        along = (pixels - centre) @ forward
        tops = tops_over(*under_facing(along.min(), along.max(), forward), forward)
        if not len(tops):
            return "its superior endplate could not be traced"
        t_top, top = tops[np.argmax(tops[:, 1])]
        row = crossings(section, centre + t_top * forward + (top - SACRUM_INSET_MM) * up, forward, reach)
        if row is None:
            return "its superior endplate could not be traced"
        low, high = under_facing(row[0] + t_top, row[1] + t_top, forward)  # row's t runs from the top column
        span = high - low
        found = tops_over(low + ENDPLATE_FIT_RANGE[0] * span, low + ENDPLATE_FIT_RANGE[1] * span, forward,
                          ENDPLATE_COLUMNS)
        if len(found) < _MIN_COLUMN_SHARE * ENDPLATE_COLUMNS:
            return "its superior endplate could not be traced"
        slope, intercept = fit_line(*found.T)
        t_mid = 0.5 * (low + high)
        # Keep the frame's centre a little below the endplate's middle, inside S1.
        centre = centre + t_mid * forward + (slope * t_mid + intercept - 2 * SACRUM_INSET_MM) * up
        line = (0.0, 2 * SACRUM_INSET_MM)
        turn = float(np.clip(np.arctan(slope), -_MAX_TURN_RAD, _MAX_TURN_RAD))
        up = _rotate(up, turn)
        if abs(turn) < _CONVERGED_RAD:
            break
    # Re-fit once in the final frame, where the endplate runs along the anterior axis.
    forward = _forward(up)
    row = crossings(section, centre + (line[1] - SACRUM_INSET_MM) * up, forward, reach)
    if row is None:
        return "its superior endplate could not be traced"
    low, high = under_facing(*row, forward)
    span = high - low
    found = tops_over(low + ENDPLATE_FIT_RANGE[0] * span, low + ENDPLATE_FIT_RANGE[1] * span, forward,
                      ENDPLATE_COLUMNS)
    if len(found) < _MIN_COLUMN_SHARE * ENDPLATE_COLUMNS:
        return "its superior endplate could not be traced"
    superior = _endplate(section, centre, up, fit_line(*found.T), -SACRUM_INSET_MM)
    if superior is None:
        return "its superior endplate corners could not be traced"
    if facing is not None:
        angle = float(np.degrees(np.arccos(np.clip(superior.direction @ facing.direction, -1.0, 1.0))))
        if angle > _MAX_SACRUM_TO_L5_DEG:
            return f"its superior endplate was traced at {angle:.0f} deg to L5's inferior endplate (implausible)"
    return Shape(section.lateral, superior.centre, superior.normal, superior.length_mm, superior=superior)
