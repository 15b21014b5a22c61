"""Measure a whole label map: every body and disc, the angles between them and the slips.

:func:`measure_spine` returns the measurements as the JSON-ready dictionary that
``NAME_measurements.json`` holds (field by field in docs/INTERFACES.md); the
definitions are in :mod:`.definitions`.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, NUM_CLASSES, SUPERIOR_TO_INFERIOR_IDS, structure
from SAFNetSpineLib.measurements.bodies import Shape, measure_body, measure_sacrum
from SAFNetSpineLib.measurements.definitions import (
    MAX_BODY_OVERLAP_MM,
    MAX_DISC_SPACE_MM,
    SCHEMA,
    decimals_of,
    genant_grade,
    meyerding_grade,
)
from SAFNetSpineLib.measurements.outline import tilt_deg
from SAFNetSpineLib.measurements.section import (
    SpineFrame,
    cut_edges,
    grid_faces,
    spine_frame,
    structure_section,
    voxel_centres_mm,
)
from SAFNetSpineLib.volume import Volume

SACRUM_ID = 1
#: Vertebrae superior to inferior (T9 ... L5, S).
CHAIN_IDS = tuple(i for i in SUPERIOR_TO_INFERIOR_IDS if i not in DISC_IDS)


def disc_neighbours(disc_id: int) -> tuple[int, int]:
    """(upper vertebra id, lower vertebra id) of a disc, from the label table's numbering."""
    return disc_id - 9, disc_id - 10


def _round(field: str, value: float) -> float:
    return round(float(value), decimals_of(field))


def _points(frame: SpineFrame, lateral: float, *points: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 2) for v in p] for p in frame.to_lps(np.array(points), lateral)]


def _chain_up(centroids: dict[int, np.ndarray], label_id: int) -> np.ndarray:
    """First guess of a vertebra's superior axis (2D): along its neighbours' centroids."""
    order = [i for i in CHAIN_IDS if i in centroids]
    k = order.index(label_id)
    upper = centroids[order[k - 1]] if k > 0 else centroids[label_id]
    lower = centroids[order[k + 1]] if k + 1 < len(order) else centroids[label_id]
    step = upper - lower
    return step / np.linalg.norm(step) if np.linalg.norm(step) > 1.0 else np.array([0.0, 1.0])


def _section_or_reason(labels: Volume, label_id: int, frame: SpineFrame, keep: str, faces, boxes):
    edges = cut_edges(faces, label_id, frame)
    if edges:
        return f"cut by the field of view (touches its {' and '.join(edges)} edge)"
    section = structure_section(labels, label_id, frame, keep, boxes[label_id - 1])
    if section is None:
        return "too small in its mid-sagittal plane"
    return section


def _apart(upper: Shape, lower: Shape, names: tuple[str, str]) -> str | None:
    """Why two measured bodies are not neighbours, or None when they are."""
    space = float((upper.inferior.centre - lower.superior.centre) @ lower.superior.normal)
    if space > MAX_DISC_SPACE_MM:
        return f"{names[0]} and {names[1]} are {space:.0f} mm apart (not neighbouring levels)"
    if space < -MAX_BODY_OVERLAP_MM:
        return f"{names[0]} and {names[1]} overlap by {-space:.0f} mm"
    return None


def _lordosis_points(frame: SpineFrame, upper: Shape, lower: Shape) -> list[list[float]]:
    """Three points (LPS) of an angle markup between L1's and S1's superior endplates."""
    a, b = upper.superior, lower.superior
    lateral = 0.5 * (upper.lateral + lower.lateral)
    matrix = np.stack([a.direction, -b.direction], axis=1)
    if abs(np.linalg.det(matrix)) > np.sin(np.radians(3.0)):
        t = np.linalg.solve(matrix, b.centre - a.centre)
        vertex = a.centre + t[0] * a.direction
        if np.linalg.norm(vertex - a.centre) < 1000.0:
            ends = []
            for plate in (a, b):
                corners = (plate.anterior_corner, plate.posterior_corner)
                ends.append(max(corners, key=lambda c: np.linalg.norm(c - vertex)))
            return _points(frame, lateral, ends[0], vertex, ends[1])
    vertex = b.centre
    arm = b.anterior_corner - vertex
    return _points(frame, lateral, vertex + a.direction * np.linalg.norm(arm), vertex, b.anterior_corner)


def measure_spine(labels: Volume) -> dict:
    """All measurements of a label map (ids of the label table), on its own grid.

    Args:
        labels: The label map; any orientation, obliquity and spacing.

    Returns:
        The measurements document: ``schema``, ``frame_lps``, ``vertebrae``, ``discs``,
        ``angles_deg``, ``listhesis``, ``landmarks_lps_mm`` and ``not_measured``
        (path -> reason). Lengths mm, angles degrees, volumes mL, points LPS mm.
    """
    from scipy import ndimage

    array = np.asarray(labels.array)
    flat = np.flatnonzero(array)
    values = array.ravel()[flat].astype(np.int64)
    counts = np.bincount(values, minlength=NUM_CLASSES)
    sums = np.stack([np.bincount(values, weights=axis_index, minlength=NUM_CLASSES)
                     for axis_index in np.unravel_index(flat, array.shape)], axis=1)
    present = [i for i in range(1, NUM_CLASSES) if counts[i] > 0]
    centroids3 = {i: voxel_centres_mm(labels, sums[i][None, :] / counts[i])[0] for i in present}
    volumes = {i: float(counts[i]) * labels.voxel_volume_ml for i in present}
    frame = spine_frame(list(centroids3.values()) or [labels.origin])
    centroids = {i: frame.to_plane(p[None, :])[0, :2] for i, p in centroids3.items()}
    not_measured: dict[str, str] = {}
    shapes: dict[int, Shape] = {}
    faces = grid_faces(labels)
    boxes = ndimage.find_objects(np.where(array < NUM_CLASSES, array, 0).astype(np.int64), max_label=NUM_CLASSES - 1)

    for label_id in (i for i in CHAIN_IDS if i in present and i != SACRUM_ID):
        found = _section_or_reason(labels, label_id, frame, "anterior", faces, boxes)
        if not isinstance(found, str):
            found = measure_body(found, _chain_up(centroids, label_id))
        if isinstance(found, str):
            not_measured[f"vertebrae.{structure(label_id).short_name}"] = found
        else:
            shapes[label_id] = found
    if SACRUM_ID in present:
        found = _section_or_reason(labels, SACRUM_ID, frame, "anterior", faces, boxes)
        if not isinstance(found, str):
            up = shapes[2].inferior.normal if 2 in shapes else _chain_up(centroids, SACRUM_ID)
            found = measure_sacrum(found, up, shapes[2].inferior if 2 in shapes else None)
        if isinstance(found, str):
            not_measured["vertebrae.S"] = found
        else:
            shapes[SACRUM_ID] = found
            not_measured["vertebrae.S.heights"] = "the sacrum has no inferior endplate: only S1's superior endplate"

    vertebrae = {}
    for label_id in (i for i in CHAIN_IDS if i in present):
        name = structure(label_id).short_name
        entry: dict = {"volume_ml": _round("volume_ml", volumes[label_id])}
        shape = shapes.get(label_id)
        if shape is not None and shape.heights_mm:
            h = shape.heights_mm
            ratio_ap, ratio_mp = h["anterior"] / h["posterior"], h["middle"] / h["posterior"]
            entry = {
                "anterior_height_mm": _round("_mm", h["anterior"]),
                "middle_height_mm": _round("_mm", h["middle"]),
                "posterior_height_mm": _round("_mm", h["posterior"]),
                "ap_depth_mm": _round("_mm", shape.ap_depth_mm),
                **entry,
                "height_ratio_anterior_posterior": _round("height_ratio", ratio_ap),
                "height_ratio_middle_posterior": _round("height_ratio", ratio_mp),
                "genant_grade": genant_grade(ratio_ap, ratio_mp),
            }
        if shape is not None:
            entry["superior_endplate_tilt_deg"] = _round("deg", tilt_deg(shape.superior.direction))
            landmarks = {f"{k}_height": _points(frame, shape.lateral, *seg) for k, seg in shape.height_segments.items()}
            for side, plate in (("superior", shape.superior), ("inferior", shape.inferior)):
                if plate is not None:
                    landmarks[f"{side}_endplate"] = _points(frame, shape.lateral, plate.posterior_corner,
                                                            plate.anterior_corner)
            entry["landmarks_lps_mm"] = landmarks
        vertebrae[name] = entry

    discs = {}
    for disc_id in (i for i in SUPERIOR_TO_INFERIOR_IDS if i in DISC_IDS):
        name = structure(disc_id).short_name
        upper, lower = disc_neighbours(disc_id)
        if disc_id not in present:
            if upper in present and lower in present:
                not_measured[f"discs.{name}"] = "not in the label map"
            continue
        found = _section_or_reason(labels, disc_id, frame, "largest", faces, boxes)
        if not isinstance(found, str):
            if upper in shapes and lower in shapes:
                guess = shapes[upper].inferior.normal + shapes[lower].superior.normal
            elif upper in centroids and lower in centroids:
                guess = centroids[upper] - centroids[lower]
            else:
                guess = np.array([0.0, 1.0])
            found = measure_body(found, guess, with_endplates=False)
        if isinstance(found, str):
            not_measured[f"discs.{name}"] = found
            continue
        h = found.heights_mm
        discs[name] = {
            "anterior_height_mm": _round("_mm", h["anterior"]),
            "middle_height_mm": _round("_mm", h["middle"]),
            "posterior_height_mm": _round("_mm", h["posterior"]),
            "ap_depth_mm": _round("_mm", found.ap_depth_mm),
            "volume_ml": _round("volume_ml", volumes[disc_id]),
            "landmarks_lps_mm": {f"{k}_height": _points(frame, found.lateral, *seg)
                                 for k, seg in found.height_segments.items()},
        }

    segmental, listhesis = {}, {}
    for disc_id in (i for i in SUPERIOR_TO_INFERIOR_IDS if i in DISC_IDS):
        name = structure(disc_id).short_name
        upper, lower = disc_neighbours(disc_id)
        if upper not in present and lower not in present:
            continue
        missing = [structure(i).short_name for i in (upper, lower) if i not in present]
        unmeasured = [structure(i).short_name for i in (upper, lower) if i in present and i not in shapes]
        if missing or unmeasured:
            reason = (f"{' and '.join(missing)} not in the label map" if missing
                      else f"{' and '.join(unmeasured)} not measured")
            not_measured[f"angles_deg.segmental.{name}"] = reason
            not_measured[f"listhesis.{name}"] = reason
            continue
        reason = _apart(shapes[upper], shapes[lower], (structure(upper).short_name, structure(lower).short_name))
        if reason:
            not_measured[f"angles_deg.segmental.{name}"] = reason
            not_measured[f"listhesis.{name}"] = reason
            continue
        top, bottom = shapes[upper].inferior, shapes[lower].superior
        segmental[name] = _round("deg", tilt_deg(bottom.direction) - tilt_deg(top.direction))
        slip = float((top.posterior_corner - bottom.posterior_corner) @ bottom.direction)
        percent = 100.0 * abs(slip) / bottom.length_mm
        listhesis[name] = {
            "slip_mm": _round("slip_mm", abs(slip)),
            "slip_percent": _round("slip_percent", percent),
            "direction": "anterior" if slip >= 0 else "posterior",
            "meyerding_grade": meyerding_grade(abs(slip), percent),
        }

    angles: dict = {}
    landmarks: dict = {}
    l1, l5 = 6, 2
    for key, lower, plate in (("lumbar_lordosis_L1_S1", SACRUM_ID, "superior"),
                              ("lumbar_lordosis_L1_L5", l5, "inferior")):
        needed = [i for i in (l1, lower) if i not in shapes]
        if needed:
            names = " and ".join(structure(i).short_name for i in needed)
            why = "not in the label map" if all(i not in present for i in needed) else "not measured"
            not_measured[f"angles_deg.{key}"] = f"{names} {why}"
            continue
        if lower == SACRUM_ID and l5 in shapes and _apart(shapes[l5], shapes[SACRUM_ID], ("L5", "S")):
            not_measured[f"angles_deg.{key}"] = _apart(shapes[l5], shapes[SACRUM_ID], ("L5", "S"))
            continue
        angles[key] = _round("deg", tilt_deg(getattr(shapes[lower], plate).direction)
                             - tilt_deg(shapes[l1].superior.direction))
    if "lumbar_lordosis_L1_S1" in angles:
        landmarks["lumbar_lordosis_L1_S1"] = _lordosis_points(frame, shapes[l1], shapes[SACRUM_ID])
    angles["segmental"] = segmental

    return {
        "schema": SCHEMA,
        "units": {"length": "mm", "angle": "deg", "volume": "mL", "points": "LPS mm"},
        "frame_lps": {"lateral": frame.lateral.round(6).tolist(), "superior": frame.superior.round(6).tolist(),
                      "anterior": frame.anterior.round(6).tolist()},
        "vertebrae": vertebrae,
        "discs": discs,
        "angles_deg": angles,
        "listhesis": listhesis,
        "landmarks_lps_mm": landmarks,
        "not_measured": not_measured,
    }
