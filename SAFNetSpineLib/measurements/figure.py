"""``NAME_measurements.png``: the mid-sagittal plane with endplates, heights and the lordosis angle drawn.

The plane is the measurement frame's sagittal plane through the measured bodies,
sampled from the native grid (image: linear, labels: nearest), anterior to the left
and superior up, 0.5 mm per pixel.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from SAFNetSpineLib.labels import STRUCTURES, structure_by_name
from SAFNetSpineLib.measurements.section import SpineFrame
from SAFNetSpineLib.volume import Volume

_PIXEL_MM = 0.5
_MARGIN_MM = 25.0
_HEIGHT_COLOURS = {"anterior": "#00e5ff", "middle": "#ffffff", "posterior": "#ff4dd2"}


def _frame_of(measurements: dict, centre: np.ndarray) -> SpineFrame:
    axes = measurements["frame_lps"]
    return SpineFrame(np.array(axes["lateral"]), np.array(axes["superior"]), np.array(axes["anterior"]), centre)


def _sample(volume: Volume, points: np.ndarray, order: int) -> np.ndarray:
    from scipy import ndimage

    index = (points - volume.origin[None, :]) @ (volume.direction / volume.spacing[None, :])
    return ndimage.map_coordinates(np.asarray(volume.array, np.float32), index.T, order=order, mode="constant",
                                   cval=0.0)


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

    points = [np.array(p) for entry in (*measurements["vertebrae"].values(), *measurements["discs"].values())
              for seg in entry.get("landmarks_lps_mm", {}).values() for p in seg]
    present = np.argwhere(np.asarray(labels.array) > 0)
    if points:
        cloud = np.array(points)
    elif len(present):
        cloud = labels.origin[None, :] + (present[:: max(1, len(present) // 5000)] * labels.spacing) @ labels.direction.T
    else:
        cloud = labels.origin[None, :] + labels.direction @ (labels.spacing * (np.array(labels.shape) - 1) / 2)
        cloud = cloud.reshape(1, 3)
    frame = _frame_of(measurements, cloud.mean(axis=0))
    plane = frame.to_plane(cloud)
    lo = plane[:, :2].min(axis=0) - _MARGIN_MM
    hi = plane[:, :2].max(axis=0) + _MARGIN_MM
    a_axis = np.arange(hi[0], lo[0], -_PIXEL_MM)  # anterior on the left
    s_axis = np.arange(hi[1], lo[1], -_PIXEL_MM)  # superior on top
    a_grid, s_grid = np.meshgrid(a_axis, s_axis)
    lps = frame.to_lps(np.stack([a_grid.ravel(), s_grid.ravel()], axis=1), 0.0)
    lab = _sample(labels, lps, 0).astype(np.int64).reshape(a_grid.shape)
    if image is not None:
        gray = _sample(image, lps, 1).reshape(a_grid.shape)
        low, high = np.percentile(gray, [1, 99.5])
        gray = np.clip((gray - low) / max(high - low, 1e-6), 0, 1)
    else:
        gray = np.zeros(a_grid.shape)
    colours = np.array([s.color for s in STRUCTURES], dtype=np.float32) / 255.0
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    mask = (lab > 0) & (lab < len(STRUCTURES))
    alpha = 0.35 if image is not None else 0.8
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colours[lab[mask]]

    def xy(point) -> tuple[float, float]:
        a, s, _ = frame.to_plane(np.asarray(point, np.float64)[None, :])[0]
        return a, s

    height_in = 8.0
    width_in = height_in * (hi[0] - lo[0]) / (hi[1] - lo[1]) + 3.0
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=110)
    ax.imshow(rgb, extent=(a_axis[0], a_axis[-1], s_axis[-1], s_axis[0]), interpolation="nearest")
    for name, entry in measurements["vertebrae"].items():
        marks = entry.get("landmarks_lps_mm", {})
        for side in ("superior_endplate", "inferior_endplate"):
            if side in marks:
                (a0, s0), (a1, s1) = xy(marks[side][0]), xy(marks[side][1])
                ax.plot([a0, a1], [s0, s1], color="#ffd400", lw=1.6)
        for kind, colour in _HEIGHT_COLOURS.items():
            if f"{kind}_height" in marks:
                (a0, s0), (a1, s1) = xy(marks[f"{kind}_height"][0]), xy(marks[f"{kind}_height"][1])
                ax.plot([a0, a1], [s0, s1], color=colour, lw=1.2)
        if "anterior_height_mm" in entry:
            a_text, s_text = xy(marks["posterior_height"][1])
            grade = f"  G{entry['genant_grade']}" if entry["genant_grade"] else ""
            ax.text(a_text - 4, s_text - 6, f"{name} {entry['anterior_height_mm']:.1f}/{entry['middle_height_mm']:.1f}/"
                    f"{entry['posterior_height_mm']:.1f}{grade}", color="white", fontsize=7, ha="left",
                    bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "lw": 0})
        elif structure_by_name(name) is not None and ("superior_endplate" in marks or "inferior_endplate" in marks):
            a_text, s_text = xy(marks.get("superior_endplate", marks.get("inferior_endplate"))[0])
            ax.text(a_text - 4, s_text - 8, name, color="white", fontsize=7,
                    bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "lw": 0})
    for name, entry in measurements["discs"].items():
        marks = entry.get("landmarks_lps_mm", {})
        for kind, colour in _HEIGHT_COLOURS.items():
            if f"{kind}_height" in marks:
                (a0, s0), (a1, s1) = xy(marks[f"{kind}_height"][0]), xy(marks[f"{kind}_height"][1])
                ax.plot([a0, a1], [s0, s1], color=colour, lw=0.9, ls=":")
        if "posterior_height" in marks:
            a_text, s_text = xy(marks["posterior_height"][0])
            ax.text(a_text - 30, s_text, f"{name} {entry['anterior_height_mm']:.1f}/{entry['middle_height_mm']:.1f}/"
                    f"{entry['posterior_height_mm']:.1f}", color="#9fe8ff", fontsize=6, ha="left", va="center",
                    bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.0, "lw": 0})
    angle = measurements["landmarks_lps_mm"].get("lumbar_lordosis_L1_S1")
    title = ["heights anterior/middle/posterior (mm)"]
    if angle is not None:
        p1, vertex, p2 = (xy(p) for p in angle)
        ax.plot([p1[0], vertex[0], p2[0]], [p1[1], vertex[1], p2[1]], color="#7CFC00", lw=1.0, ls="--")
        value = measurements["angles_deg"]["lumbar_lordosis_L1_S1"]
        ax.text(0.02, 0.02, f"L1-S1 lordosis {value:.1f}\u00b0", color="#7CFC00", fontsize=9, transform=ax.transAxes,
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "lw": 0})
        title.append(f"L1-S1 lordosis {value:.1f}\u00b0")
    elif "lumbar_lordosis_L1_L5" in measurements["angles_deg"]:
        title.append(f"L1-L5 lordosis {measurements['angles_deg']['lumbar_lordosis_L1_L5']:.1f}\u00b0")
    slips = [f"{name} {slip['slip_mm']:.1f} mm {slip['direction']}" for name, slip in measurements["listhesis"].items()
             if slip["meyerding_grade"] >= 1]
    if slips:
        title += textwrap.wrap("slip " + ", ".join(slips), width=int(12 * width_in))
    ax.set_xlim(a_axis[0], a_axis[-1])
    ax.set_ylim(s_axis[-1], s_axis[0])
    ax.set_title("\n".join(title), fontsize=9)
    ax.set_xlabel("anterior  \u2192  posterior (mm)")
    ax.set_ylabel("inferior  \u2192  superior (mm)")
    ax.set_aspect("equal")
    try:
        return write_file_atomic(Path(path), lambda temp: fig.savefig(temp, format="png", bbox_inches="tight"), suffix=".png")
    finally:
        plt.close(fig)
