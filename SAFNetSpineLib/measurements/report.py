"""The measurement files: ``NAME_measurements.json``, ``.csv`` and ``.png``, the table rows and the summary.

The CSV holds one row per level (superior to inferior, bodies and discs
interleaved) and one per spine angle, with exactly the JSON's rounded values, so the
two always agree. The Slicer module shows the same rows in its table node.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES, SUPERIOR_TO_INFERIOR_IDS, structure
from SAFNetSpineLib.measurements.definitions import SLIP_FLAG_MM

#: CSV columns (and Slicer table columns), in order.
ROW_COLUMNS = ("level", "kind", "anterior_height_mm", "middle_height_mm", "posterior_height_mm", "ap_depth_mm",
               "volume_ml", "height_ratio_anterior_posterior", "height_ratio_middle_posterior",
               "height_ratio_neighbours", "genant_grade",
               "angle_deg", "slip_mm", "slip_percent", "direction", "meyerding_grade", "not_measured")
#: Spine angles given one row each: JSON key under "angles_deg" -> row level name.
ANGLE_ROWS = {"lumbar_lordosis_L1_S1": "L1-S1", "lumbar_lordosis_L1_L5": "L1-L5"}


def measurement_stem(path: str | Path) -> str:
    """``case_seg.nii.gz`` -> ``case``; ``case.seg.nrrd`` -> ``case``; ``mask.nrrd`` -> ``mask``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len("_seg")] if name.endswith("_seg") and len(name) > 4 else name


def _reasons(measurements: dict, level: str) -> str:
    parts = []
    for path, reason in measurements["not_measured"].items():
        section, _, rest = path.partition(".")
        if section == "angles_deg" and rest.startswith("segmental."):
            section, rest = "segmental", rest[len("segmental."):]
        if section == "angles_deg":
            if ANGLE_ROWS.get(rest) == level:
                parts.append(reason)
            continue
        key, _, what = rest.partition(".")
        if key == level:
            parts.append(f"{section}{'.' + what if what else ''}: {reason}")
    return "; ".join(parts)


def measurement_rows(measurements: dict) -> list[dict]:
    """Table rows (dicts keyed by :data:`ROW_COLUMNS`; missing values are "")."""
    rows = []
    angles = measurements["angles_deg"]
    for label_id in SUPERIOR_TO_INFERIOR_IDS:
        s = structure(label_id)
        level = s.short_name
        row = dict.fromkeys(ROW_COLUMNS, "")
        row.update(level=level, kind=s.kind)
        source = measurements["vertebrae" if s.kind == "vertebra" else "discs"].get(level, {})
        row.update({k: v for k, v in source.items() if k in ROW_COLUMNS})
        if s.kind == "disc":
            if level in angles["segmental"]:
                row["angle_deg"] = angles["segmental"][level]
            row.update(measurements["listhesis"].get(level, {}))
        row["not_measured"] = _reasons(measurements, level)
        if any(row[k] != "" for k in ROW_COLUMNS[2:]):
            rows.append(row)
    for key, level in ANGLE_ROWS.items():
        row = dict.fromkeys(ROW_COLUMNS, "")
        row.update(level=level, kind="lumbar_lordosis", angle_deg=angles.get(key, ""),
                   not_measured=_reasons(measurements, level))
        rows.append(row)
    return rows


def rows_csv(measurements: dict) -> str:
    """The rows as CSV text (header first)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(measurement_rows(measurements))
    return buffer.getvalue()


def summary_line(measurements: dict) -> str:
    """One line for a reader: bodies with Genant grade >= 1 and slips >= 3 mm, then the lordosis."""
    flags = []
    for name, body in measurements["vertebrae"].items():
        if body.get("genant_grade", 0) >= 1:
            ratio = min(body["height_ratio_anterior_posterior"], body["height_ratio_middle_posterior"])
            flags.append(f"{name} Genant grade {body['genant_grade']} (height ratio {ratio:.2f})")
    for name, slip in measurements["listhesis"].items():
        if slip["slip_mm"] >= SLIP_FLAG_MM:
            kind = "anterolisthesis" if slip["direction"] == "anterior" else "retrolisthesis"
            flags.append(f"{name} {kind} {slip['slip_mm']:.1f} mm ({slip['slip_percent']:.0f} %, "
                         f"Meyerding {slip['meyerding_grade']})")
    measured = sum("genant_grade" in b for b in measurements["vertebrae"].values())
    text = ("Flagged: " + "; ".join(flags)) if flags else (
        f"No body with Genant grade >= 1 and no slip >= {SLIP_FLAG_MM:g} mm ({measured} bodies measured)")
    lordosis = measurements["angles_deg"].get("lumbar_lordosis_L1_S1")
    if lordosis is not None:
        text += f"; L1-S1 lordosis {lordosis:.1f} deg"
    return text + "."


def write_measurements(measurements: dict, out_dir: str | Path, name: str, image=None, labels=None) -> list[Path]:
    """Write ``NAME_measurements.json`` and ``.csv`` (and ``.png`` when ``labels`` is given), atomically.

    Args:
        measurements: Output of :func:`~SAFNetSpineLib.measurements.spine.measure_spine`.
        out_dir: Existing, writable folder.
        name: File name stem.
        image: Optional image Volume drawn under the figure.
        labels: The measured label map; without it no figure is drawn.

    Returns:
        The paths written.
    """
    from SAFNetSpineLib.atomic import write_file_atomic, write_json_atomic

    out_dir = Path(out_dir)
    json_path = out_dir / f"{name}_measurements.json"
    csv_path = out_dir / f"{name}_measurements.csv"
    write_json_atomic(measurements, json_path)
    text = rows_csv(measurements)
    write_file_atomic(csv_path, lambda temp: temp.write_text(text, encoding="utf-8"))
    written = [json_path, csv_path]
    if labels is not None:
        from SAFNetSpineLib.measurements.figure import write_measurement_figure

        written.append(write_measurement_figure(measurements, labels, out_dir / f"{name}_measurements.png", image))
    return written


def check_label_values(labels, path: str | Path) -> None:
    """Refuse a label map with values outside the label table (one-line SpineInputError)."""
    values = np.unique(np.asarray(labels.array))
    bad = [v for v in values.tolist() if not (float(v).is_integer() and 0 <= v < NUM_CLASSES)]
    if bad:
        raise SpineInputError(path, f"label values {bad[:8]} are not spine label ids (0..{NUM_CLASSES - 1})")


def measure_label_file(label_path: str | Path, out_dir: str | Path, image_path: str | Path | None = None,
                       name: str | None = None) -> tuple[dict, list[Path]]:
    """Read a label map (and optionally its image), measure it and write the three files.

    Args:
        label_path: Label map file (.nii.gz, .nrrd, .seg.nrrd, ...), ids of the label table.
        out_dir: Output folder (created if needed).
        image_path: Image to draw the figure over (any grid covering the spine).
        name: File name stem (default: the label map's stem without ``_seg``).

    Returns:
        (measurements, paths written).

    Raises:
        SpineInputError: unreadable files or label values outside the table.
    """
    from SAFNetSpineLib.io import check_writable_dir, read_volume

    labels = read_volume(label_path, is_label=True)
    check_label_values(labels, label_path)
    image = read_volume(image_path) if image_path is not None else None
    out = check_writable_dir(out_dir)
    return measure_and_write(labels, out, name or measurement_stem(label_path), label_path=label_path,
                             image=image, image_path=image_path)


def measure_and_write(labels, out_dir: Path, name: str, *, label_path, image=None,
                      image_path=None) -> tuple[dict, list[Path]]:
    """Measure a label map already in memory and write the three files (``segment --measure``, ``measure``).

    Args:
        labels: Label Volume (ids of the label table), on its native grid.
        out_dir: Existing, writable folder.
        name: File name stem.
        label_path: Where the label map is (or was written), recorded in the JSON.
        image: The image Volume to draw the figure over, or None.
        image_path: Where the image is, recorded in the JSON, or None.

    Returns:
        (measurements, paths written).
    """
    from SAFNetSpineLib.measurements.spine import measure_spine

    measurements = {"label_map": str(label_path), "image": None if image_path is None else str(image_path),
                    **measure_spine(labels)}
    return measurements, write_measurements(measurements, out_dir, name, image, labels)
