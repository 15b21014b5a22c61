"""One structure's shape in its mid-sagittal section: its own axis, heights, depth and endplates.

Everything here is 2D, in the section's in-plane coordinates (a, s) in mm (see
:mod:`.section`); the definitions are those of :mod:`.definitions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from SAFNetSpineLib.measurements.definitions import (
    CORNER_INSET_FRACTION,
    ENDPLATE_COLUMNS,
    ENDPLATE_FIT_RANGE,
    HEIGHT_BAND_MM,
    HEIGHT_POSITIONS,
    LONE_ENDPLATE_INSET_MM,
)
from SAFNetSpineLib.measurements.outline import crossings, fit_line
from SAFNetSpineLib.measurements.section import Section

#: Frame refinements before giving up; each rotates the body axis onto its endplates' bisector.
_MAX_ITERATIONS = 8
#: Stop refining once the axis turns less than this (radians).
_CONVERGED_RAD = 2e-4
#: Largest turn (radians) of the sacrum's frame per refinement, so one bad fit cannot flip it.
_MAX_TURN_RAD = np.radians(10.0)
#: An endplate traced alone at more than this to the endplate it faces (S1's to L5's) is not that endplate.
_MAX_TO_FACING_DEG = 40.0
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
        ap_depth_mm: Depth through the centre along its anterior axis (an endplate measured
            alone, as S1's: that endplate's length).
        heights_mm: "anterior", "middle", "posterior" -> height (empty for the sacrum and a
            body cut by the image edge).
        height_segments: Same keys -> (bottom, top) points, each shape (2,).
        superior: The superior endplate (None for a disc, or when not measured).
        inferior: The inferior endplate (None for a disc and the sacrum, or when not measured).
        not_measured: What of it was left out -> why ("heights", "superior_endplate",
            "inferior_endplate").
    """

    lateral: float
    centre: np.ndarray
    up: np.ndarray
    ap_depth_mm: float
    heights_mm: dict[str, float] = field(default_factory=dict)
    height_segments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    superior: Endplate | None = None
    inferior: Endplate | None = None
    not_measured: dict[str, str] = field(default_factory=dict)


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


def _body_frame(section: Section, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict] | str:
    """The body's centre and superior axis (the bisector of its endplates' normals), and its trace there."""
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
    return centre, up, traced


def _outline_height(section: Section, centre: np.ndarray, up: np.ndarray, position: float,
                    ) -> tuple[float, tuple[np.ndarray, np.ndarray]] | None:
    """Outline-to-outline height along ``up`` at ``position`` mm along the frame's anterior axis.

    The mean over a band of +-:data:`HEIGHT_BAND_MM`; returns (height, (bottom, top) points)
    or None where fewer than 3 of its columns could be traced.
    """
    forward = _forward(up)
    band = position + np.linspace(-HEIGHT_BAND_MM, HEIGHT_BAND_MM, 5)
    found = [c for c in (crossings(section, centre + t * forward, up, section.extent_mm()) for t in band)
             if c is not None]
    if len(found) < 3:
        return None
    bottom, top = np.mean([c[0] for c in found]), np.mean([c[1] for c in found])
    base = centre + position * forward
    return float(top - bottom), (base + bottom * up, base + top * up)


def _wall_height(centre: np.ndarray, up: np.ndarray, traced: dict, corners: tuple[np.ndarray, np.ndarray],
                 ) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    """Height between the endplate lines at a wall: along ``up``, where the two corners on that wall are.

    Args:
        centre: The body frame's centre, shape (2,).
        up: Its superior axis, shape (2,).
        traced: The trace in that frame (its "top" and "bottom" endplate lines).
        corners: The wall's corner on the superior and on the inferior endplate, each (2,).

    Returns:
        (height mm, (point on the inferior line, point on the superior line)).
    """
    forward = _forward(up)
    t_wall = float(np.mean([(c - centre) @ forward for c in corners]))
    (m_top, b_top), (m_bot, b_bot) = traced["top"], traced["bottom"]
    bottom, top = m_bot * t_wall + b_bot, m_top * t_wall + b_top
    base = centre + t_wall * forward
    return float(top - bottom), (base + bottom * up, base + top * up)


def measure_body(section: Section, up: np.ndarray, with_endplates: bool = True) -> Shape | str:
    """Measure a vertebral body (or, with ``with_endplates=False``, a disc).

    A body's anterior and posterior heights are taken between its endplate lines at its
    anterior and posterior walls (where the corners are); a disc's, and every middle
    height, between the outlines at :data:`HEIGHT_POSITIONS` of the depth.

    Args:
        section: The structure's section (posterior elements already removed), not cut by the image edge.
        up: First guess of its superior axis (e.g. along the chain of centroids), shape (2,).
        with_endplates: Also fit the endplates and their corners.

    Returns:
        The shape, or a one-line reason why it cannot be measured.
    """
    framed = _body_frame(section, up)
    if isinstance(framed, str):
        return framed
    centre, up, traced = framed
    found = {}
    for name, fraction in HEIGHT_POSITIONS.items():
        if with_endplates and name != "middle":
            continue
        found[name] = _outline_height(section, centre, up, traced["t_post"] + fraction * traced["depth"])
        if found[name] is None:
            return f"its {name} height could not be traced"
    shape = Shape(section.lateral, centre, up, float(traced["depth"]))
    if with_endplates:
        inset = CORNER_INSET_FRACTION * found["middle"][0]
        shape.superior = _endplate(section, centre, up, traced["top"], -inset)
        shape.inferior = _endplate(section, centre, up, traced["bottom"], inset)
        if shape.superior is None or shape.inferior is None:
            return "its endplate corners could not be traced"
        for wall in ("anterior", "posterior"):
            corners = (getattr(shape.superior, f"{wall}_corner"), getattr(shape.inferior, f"{wall}_corner"))
            found[wall] = _wall_height(centre, up, traced, corners)
    for name in HEIGHT_POSITIONS:  # anterior, middle, posterior
        shape.heights_mm[name], shape.height_segments[name] = found[name]
    return shape


def _mirrored(section: Section) -> Section:
    """The section mirrored in its superior axis (s -> -s): an inferior endplate becomes a superior one."""
    n_s = section.values.shape[0]
    return replace(section, values=np.ascontiguousarray(section.values[::-1]),
                   s0=-(section.s0 + (n_s - 1) * section.step), cut=np.ascontiguousarray(section.cut[::-1]))


def _mirror(vector: np.ndarray) -> np.ndarray:
    return np.array([vector[0], -vector[1]])


def _mirrored_endplate(plate: Endplate) -> Endplate:
    return Endplate(_mirror(plate.centre), _mirror(plate.direction), _mirror(plate.posterior_corner),
                    _mirror(plate.anterior_corner))


def measure_endplate(section: Section, up: np.ndarray, side: str = "superior",
                     facing: Endplate | None = None) -> Endplate | str:
    """Measure one endplate of a structure on its own: S1's, or the one in view of a body cut by the image edge.

    The endplate is the top (``side="inferior"``: the bottom) of the outline, searched
    across from the endplate it faces (S1's: L5's inferior one), when measured, so that
    a surface that rises as high along a tilted axis (the posterior sacral surface) is
    not mistaken for it.

    Args:
        section: The structure's section.
        up: First guess of the endplate's superior normal (e.g. the facing endplate's normal), shape (2,).
        side: "superior" or "inferior".
        facing: The neighbour's endplate across the disc, or None.

    Returns:
        The endplate, or a one-line reason.
    """
    if side == "inferior":
        found = _top_endplate(_mirrored(section), _mirror(-np.asarray(up, np.float64)),
                              None if facing is None else _mirrored_endplate(facing), side)
        return found if isinstance(found, str) else _mirrored_endplate(found)
    return _top_endplate(section, up, facing, side)


def _top_endplate(section: Section, up: np.ndarray, facing: Endplate | None, side: str) -> Endplate | str:
    """:func:`measure_endplate` of the top of the outline (``up`` points towards it); ``side`` names it in reasons."""
    untraced = f"its {side} endplate could not be traced"
    rows, cols = np.nonzero(section.values >= 0.5)
    pixels = np.stack([section.a0 + cols * section.step, section.s0 + rows * section.step], axis=1)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    centre = section.centroid()
    reach = section.extent_mm()

    def across_facing(low: float, high: float, forward: np.ndarray) -> tuple[float, float]:
        """[low, high] (frame t) cut to the span across the facing endplate (+-5 mm), where they overlap."""
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
        tops = tops_over(*across_facing(along.min(), along.max(), forward), forward)
        if not len(tops):
            return untraced
        t_top, top = tops[np.argmax(tops[:, 1])]
        row = crossings(section, centre + t_top * forward + (top - LONE_ENDPLATE_INSET_MM) * up, forward, reach)
        if row is None:
            return untraced
        low, high = across_facing(row[0] + t_top, row[1] + t_top, forward)  # row's t runs from the top column
        span = high - low
        found = tops_over(low + ENDPLATE_FIT_RANGE[0] * span, low + ENDPLATE_FIT_RANGE[1] * span, forward,
                          ENDPLATE_COLUMNS)
        if len(found) < _MIN_COLUMN_SHARE * ENDPLATE_COLUMNS:
            return untraced
        slope, intercept = fit_line(*found.T)
        t_mid = 0.5 * (low + high)
        # Keep the frame's centre a little inside the structure, under the endplate's middle.
        centre = centre + t_mid * forward + (slope * t_mid + intercept - 2 * LONE_ENDPLATE_INSET_MM) * up
        line = (0.0, 2 * LONE_ENDPLATE_INSET_MM)
        turn = float(np.clip(np.arctan(slope), -_MAX_TURN_RAD, _MAX_TURN_RAD))
        up = _rotate(up, turn)
        if abs(turn) < _CONVERGED_RAD:
            break
    # Re-fit once in the final frame, where the endplate runs along the anterior axis.
    forward = _forward(up)
    row = crossings(section, centre + (line[1] - LONE_ENDPLATE_INSET_MM) * up, forward, reach)
    if row is None:
        return untraced
    low, high = across_facing(*row, forward)
    span = high - low
    found = tops_over(low + ENDPLATE_FIT_RANGE[0] * span, low + ENDPLATE_FIT_RANGE[1] * span, forward,
                      ENDPLATE_COLUMNS)
    if len(found) < _MIN_COLUMN_SHARE * ENDPLATE_COLUMNS:
        return untraced
    plate = _endplate(section, centre, up, fit_line(*found.T), -LONE_ENDPLATE_INSET_MM)
    if plate is None:
        return f"its {side} endplate corners could not be traced"
    if facing is not None:
        angle = float(np.degrees(np.arccos(np.clip(plate.direction @ facing.direction, -1.0, 1.0))))
        if angle > _MAX_TO_FACING_DEG:
            return f"its {side} endplate was traced at {angle:.0f} deg to the endplate it faces (implausible)"
    return plate
