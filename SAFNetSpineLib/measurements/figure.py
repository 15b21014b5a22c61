"""``NAME_measurements.png``: the mid-sagittal plane with endplates, heights and the lordosis angle drawn.

The plane is the measurement frame's sagittal plane through the measured bodies,
sampled from the native grid (image: linear, labels: nearest), anterior to the left
and superior up, 0.5 mm per pixel. :func:`write_measurement_figure` runs one function
per part of the figure: the plane (:func:`_plane`), its background (:func:`_background`),
the bodies, the discs and the title with the lordosis angle.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.labels import STRUCTURES, structure_by_name
from SAFNetSpineLib.measurements.section import SpineFrame, voxel_centres_mm
from SAFNetSpineLib.volume import Volume

_PIXEL_MM = 0.5
_MARGIN_MM = 25.0
_HEIGHT_COLOURS = {"anterior": "#00e5ff", "middle": "#ffffff", "posterior": "#ff4dd2"}
_LABEL_BOX = {"facecolor": "black", "alpha": 0.55, "pad": 1.5, "lw": 0}

#: An LPS point (mm) -> its in-plane (a, s) position (mm) in the figure.
ToPlane = Callable[[object], tuple[float, float]]


@dataclass(frozen=True)
class _Plane:
    """The drawn part of the measurement frame's sagittal plane.

    Attributes:
        frame: The measurement frame, its reference at the centre of what is drawn.
        lo: Lowest in-plane (a, s) shown (mm), shape (2,).
        hi: Highest in-plane (a, s) shown (mm), shape (2,).
    """

    frame: SpineFrame
    lo: np.ndarray
    hi: np.ndarray

    @property
    def a_axis(self) -> np.ndarray:
        """In-plane anterior coordinate (mm) of each pixel column, decreasing (anterior on the left), shape (W,)."""
        return np.arange(self.hi[0], self.lo[0], -_PIXEL_MM)

    @property
    def s_axis(self) -> np.ndarray:
        """In-plane superior coordinate (mm) of each pixel row, decreasing (superior on top), shape (H,)."""
        return np.arange(self.hi[1], self.lo[1], -_PIXEL_MM)

    def xy(self, point) -> tuple[float, float]:
        """One LPS point (mm), shape (3,) -> its (a, s) position in the plane (mm)."""
        a, s, _ = self.frame.to_plane(np.asarray(point, np.float64)[None, :])[0]
        return a, s

    def pixels_lps(self) -> np.ndarray:
        """LPS position (mm) of every pixel, row by row, shape (H * W, 3)."""
        a_grid, s_grid = np.meshgrid(self.a_axis, self.s_axis)
        return self.frame.to_lps(np.stack([a_grid.ravel(), s_grid.ravel()], axis=1), 0.0)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) pixels."""
        return len(self.s_axis), len(self.a_axis)


def _frame_of(measurements: dict, centre: np.ndarray) -> SpineFrame:
    axes = measurements["frame_lps"]
    return SpineFrame(np.array(axes["lateral"]), np.array(axes["superior"]), np.array(axes["anterior"]), centre)


def _sample(volume: Volume, points: np.ndarray, order: int) -> np.ndarray:
    from scipy import ndimage

    index = (points - volume.origin[None, :]) @ (volume.direction / volume.spacing[None, :])
    return ndimage.map_coordinates(np.asarray(volume.array, np.float32), index.T, order=order, mode="constant",
                                   cval=0.0)


def _what_to_frame(measurements: dict, labels: Volume) -> np.ndarray:
    """LPS points (mm) the figure must show, shape (N, 3): the landmarks, else the labels, else the grid centre."""
    points = [np.array(p) for entry in (*measurements["vertebrae"].values(), *measurements["discs"].values())
              for seg in entry.get("landmarks_lps_mm", {}).values() for p in seg]
    if points:
        return np.array(points)
    present = np.argwhere(np.asarray(labels.array) > 0)
    if len(present):
        return voxel_centres_mm(labels, present[:: max(1, len(present) // 5000)])
    centre = labels.origin[None, :] + labels.direction @ (labels.spacing * (np.array(labels.shape) - 1) / 2)
    return centre.reshape(1, 3)


def _plane(measurements: dict, labels: Volume) -> _Plane:
    """The sagittal plane around what is to be shown, with a margin, anterior left and superior up."""
    cloud = _what_to_frame(measurements, labels)
    frame = _frame_of(measurements, cloud.mean(axis=0))
    plane = frame.to_plane(cloud)
    return _Plane(frame, plane[:, :2].min(axis=0) - _MARGIN_MM, plane[:, :2].max(axis=0) + _MARGIN_MM)


def _background(plane: _Plane, labels: Volume, image: Volume | None) -> np.ndarray:
    """The image (1-99.5 percentile window, or black) with the labels in their colours, shape (H, W, 3) in [0, 1]."""
    lps = plane.pixels_lps()
    lab = _sample(labels, lps, 0).astype(np.int64).reshape(plane.shape)
    if image is not None:
        gray = _sample(image, lps, 1).reshape(plane.shape)
        low, high = np.percentile(gray, [1, 99.5])
        gray = np.clip((gray - low) / max(high - low, 1e-6), 0, 1)
    else:
        gray = np.zeros(plane.shape)
    colours = np.array([s.color for s in STRUCTURES], dtype=np.float32) / 255.0
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    mask = (lab > 0) & (lab < len(STRUCTURES))
    alpha = 0.35 if image is not None else 0.8
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colours[lab[mask]]
    return rgb


def _segment(ax, xy: ToPlane, ends: list, **style) -> None:
    """Draw the segment between two LPS points (mm)."""
    (a0, s0), (a1, s1) = xy(ends[0]), xy(ends[1])
    ax.plot([a0, a1], [s0, s1], **style)


def _heights_text(entry: dict) -> str:
    return f"{entry['anterior_height_mm']:.1f}/{entry['middle_height_mm']:.1f}/{entry['posterior_height_mm']:.1f}"


def _draw_vertebrae(ax, xy: ToPlane, vertebrae: dict) -> None:
    """Each body's endplates, heights and a label with its heights (mm) and Genant grade."""
    for name, entry in vertebrae.items():
        marks = entry.get("landmarks_lps_mm", {})
        for side in ("superior_endplate", "inferior_endplate"):
            if side in marks:
                _segment(ax, xy, marks[side], color="#ffd400", lw=1.6)
        for kind, colour in _HEIGHT_COLOURS.items():
            if f"{kind}_height" in marks:
                _segment(ax, xy, marks[f"{kind}_height"], color=colour, lw=1.2)
        if "anterior_height_mm" in entry:
            a_text, s_text = xy(marks["posterior_height"][1])
            grade = f"  G{entry['genant_grade']}" if entry["genant_grade"] else ""
            ax.text(a_text - 4, s_text - 6, f"{name} {_heights_text(entry)}{grade}", color="white", fontsize=7,
                    ha="left", bbox=_LABEL_BOX)
        elif structure_by_name(name) is not None and ("superior_endplate" in marks or "inferior_endplate" in marks):
            a_text, s_text = xy(marks.get("superior_endplate", marks.get("inferior_endplate"))[0])
            ax.text(a_text - 4, s_text - 8, name, color="white", fontsize=7, bbox=_LABEL_BOX)


def _draw_discs(ax, xy: ToPlane, discs: dict) -> None:
    """Each disc's heights, dotted, and a label with them (mm)."""
    for name, entry in discs.items():
        marks = entry.get("landmarks_lps_mm", {})
        for kind, colour in _HEIGHT_COLOURS.items():
            if f"{kind}_height" in marks:
                _segment(ax, xy, marks[f"{kind}_height"], color=colour, lw=0.9, ls=":")
        if "posterior_height" in marks:
            a_text, s_text = xy(marks["posterior_height"][0])
            ax.text(a_text - 30, s_text, f"{name} {_heights_text(entry)}", color="#9fe8ff", fontsize=6, ha="left",
                    va="center", bbox={**_LABEL_BOX, "pad": 1.0})


def _draw_lordosis(ax, xy: ToPlane, measurements: dict) -> list[str]:
    """The L1-S1 lordosis angle drawn and written in a corner; returns the title lines that give the lordosis."""
    angle = measurements["landmarks_lps_mm"].get("lumbar_lordosis_L1_S1")
    if angle is not None:
        p1, vertex, p2 = (xy(p) for p in angle)
        ax.plot([p1[0], vertex[0], p2[0]], [p1[1], vertex[1], p2[1]], color="#7CFC00", lw=1.0, ls="--")
        value = measurements["angles_deg"]["lumbar_lordosis_L1_S1"]
        ax.text(0.02, 0.02, f"L1-S1 lordosis {value:.1f}\u00b0", color="#7CFC00", fontsize=9, transform=ax.transAxes,
                bbox=_LABEL_BOX)
        return [f"L1-S1 lordosis {value:.1f}\u00b0"]
    if "lumbar_lordosis_L1_L5" in measurements["angles_deg"]:
        return [f"L1-L5 lordosis {measurements['angles_deg']['lumbar_lordosis_L1_L5']:.1f}\u00b0"]
    return []


def _slip_lines(listhesis: dict, width_chars: int) -> list[str]:
    """Title lines listing the slips of Meyerding grade 1 or more, wrapped at ``width_chars``."""
    slips = [f"{name} {slip['slip_mm']:.1f} mm {slip['direction']}" for name, slip in listhesis.items()
             if slip["meyerding_grade"] >= 1]
    return textwrap.wrap("slip " + ", ".join(slips), width=width_chars) if slips else []


def write_measurement_figure(measurements: dict, labels: Volume, path: str | Path, image: Volume | None = None,
                             ) -> Path:
    """Draw the measurements over the mid-sagittal plane and write a PNG atomically.

    Args:
        measurements: Output of :func:`~SAFNetSpineLib.measurements.spine.measure_spine`.
        labels: The measured label map.
        path: Destination .png.
        image: Image to draw under the labels (any grid covering the spine), or None.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from SAFNetSpineLib.atomic import write_file_atomic

    plane = _plane(measurements, labels)
    a_axis, s_axis = plane.a_axis, plane.s_axis
    height_in = 8.0
    width_in = height_in * (plane.hi[0] - plane.lo[0]) / (plane.hi[1] - plane.lo[1]) + 3.0
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=110)
    ax.imshow(_background(plane, labels, image), extent=(a_axis[0], a_axis[-1], s_axis[-1], s_axis[0]),
              interpolation="nearest")
    _draw_vertebrae(ax, plane.xy, measurements["vertebrae"])
    _draw_discs(ax, plane.xy, measurements["discs"])
    title = ["heights anterior/middle/posterior (mm)", *_draw_lordosis(ax, plane.xy, measurements),
             *_slip_lines(measurements["listhesis"], int(12 * width_in))]
    ax.set_xlim(a_axis[0], a_axis[-1])
    ax.set_ylim(s_axis[-1], s_axis[0])
    ax.set_title("\n".join(title), fontsize=9)
    ax.set_xlabel("anterior  \u2192  posterior (mm)")
    ax.set_ylabel("inferior  \u2192  superior (mm)")
    ax.set_aspect("equal")
    try:
        return write_file_atomic(Path(path), lambda temp: fig.savefig(temp, format="png", bbox_inches="tight"),
                                 suffix=".png")
    finally:
        plt.close(fig)
