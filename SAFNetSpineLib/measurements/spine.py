"""Measure a whole label map: every body and disc, the angles between them and the slips.

:func:`measure_spine` returns the measurements as the JSON-ready dictionary that
``NAME_measurements.json`` holds (field by field in docs/INTERFACES.md); the
definitions are in :mod:`.definitions`. It runs one function per part of the
document: the survey of the label map (:mod:`.survey`), the bodies
(:func:`_measure_vertebrae`, :func:`_vertebra_entry`), the discs (:func:`_measure_discs`,
:func:`_disc_entry`), the segmental angles and slips and the lordosis (:mod:`.angles`).
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, SACRUM_ID, SUPERIOR_TO_INFERIOR_IDS, disc_vertebrae, neighbour
from SAFNetSpineLib.measurements.angles import lordosis, segmental_and_listhesis
from SAFNetSpineLib.measurements.bodies import Endplate, Shape, measure_body, measure_endplate
from SAFNetSpineLib.measurements.definitions import (
    CUT_CLEARANCE_MM,
    LONE_ENDPLATE_INSET_MM,
    MIN_DEPTH_SHARE,
    SCHEMA,
    genant_grade,
    rounded,
)
from SAFNetSpineLib.measurements.outline import tilt_deg
from SAFNetSpineLib.measurements.section import Section, SpineFrame, structure_section
from SAFNetSpineLib.measurements.survey import (
    CHAIN_IDS,
    LabelSurvey,
    chain_up,
    landmark_points,
    survey_labels,
)
from SAFNetSpineLib.volume import Volume

#: Why the sacrum has no heights.
_SACRUM_HEIGHTS = "the sacrum has no inferior endplate: only S1's superior endplate"


def _section_or_reason(survey: LabelSurvey, label_id: int, keep: str) -> Section | str:
    section = structure_section(survey.labels, label_id, survey.frame, keep, survey.boxes[label_id - 1])
    return "too small in its mid-sagittal plane" if section is None else section


def _cut_reason(section: Section) -> str:
    return f"cut by the field of view (touches its {' and '.join(section.edges)} edge)"


def _lone_endplates(section: Section, label_id: int, sides: tuple[str, ...], shapes: dict[int, Shape],
                    survey: LabelSurvey) -> Shape | str:
    """A structure measured by its endplates alone: the sacrum (S1's), or a body cut by the image edge.

    Each endplate is traced on its own, across from the neighbour's endplate it faces
    when that is measured, and kept only when it is clear of the cut and, where it faces
    one, at least :data:`MIN_DEPTH_SHARE` of that endplate's length (shorter, it is the
    part of a body that the label map holds). A cut body loses its heights.

    Returns:
        A shape with the endplates kept and ``not_measured`` for the rest, or the reason
        when none is kept.
    """
    why_cut = _cut_reason(section) if section.edges else None
    reasons = {"heights": _SACRUM_HEIGHTS if label_id == SACRUM_ID else why_cut}
    plates: dict[str, Endplate] = {}
    for side in sides:
        other = neighbour(label_id, 2 if side == "superior" else -2)
        facing = getattr(shapes[other], "inferior" if side == "superior" else "superior") if other in shapes else None
        up = facing.normal if facing is not None else chain_up(survey.centroids, label_id)
        plate = measure_endplate(section, up, side, facing)
        if isinstance(plate, str):
            reasons[f"{side}_endplate"] = f"{why_cut}; {plate}" if why_cut else plate
        elif why_cut and section.cut_near(plate.posterior_corner, plate.anterior_corner,
                                          LONE_ENDPLATE_INSET_MM + CUT_CLEARANCE_MM):
            reasons[f"{side}_endplate"] = why_cut
        elif facing is not None and plate.length_mm < MIN_DEPTH_SHARE * facing.length_mm:
            reasons[f"{side}_endplate"] = (
                f"traced over {plate.length_mm:.1f} mm, {plate.length_mm / facing.length_mm:.2f} of the "
                f"{facing.length_mm:.1f} mm of {survey.name(other)}'s endplate it faces: a piece of a body, "
                "its corners not the body's")
        else:
            plates[side] = plate
    if not plates:
        return "; ".join(dict.fromkeys(part for side in sides for part in reasons[f"{side}_endplate"].split("; ")))
    first = next(iter(plates.values()))
    return Shape(section.lateral, first.centre, first.normal, first.length_mm, superior=plates.get("superior"),
                 inferior=plates.get("inferior"), not_measured=reasons)


def _measure_vertebrae(survey: LabelSurvey) -> tuple[dict[int, Shape], dict[str, str]]:
    """Every vertebra's shape: whole bodies first, then cut ones and the sacrum, which lean on their neighbours.

    Returns:
        (id -> shape, not_measured entries for what was left out).
    """
    shapes: dict[int, Shape] = {}
    not_measured: dict[str, str] = {}
    lone: list[tuple[int, Section]] = []
    for label_id in (i for i in CHAIN_IDS if i in survey.present):
        found = _section_or_reason(survey, label_id, "anterior")
        if not isinstance(found, str):
            if label_id == SACRUM_ID or found.edges:
                lone.append((label_id, found))
                continue
            found = measure_body(found, chain_up(survey.centroids, label_id))
        if isinstance(found, str):
            not_measured[f"vertebrae.{survey.name(label_id)}"] = found
        else:
            shapes[label_id] = found
    _leave_out_pieces(shapes, not_measured, survey)
    for label_id, section in lone:
        sides = ("superior",) if label_id == SACRUM_ID else ("superior", "inferior")
        found = _lone_endplates(section, label_id, sides, shapes, survey)
        if isinstance(found, str):
            not_measured[f"vertebrae.{survey.name(label_id)}"] = found
        else:
            shapes[label_id] = found
            not_measured.update({f"vertebrae.{survey.name(label_id)}.{k}": r for k, r in found.not_measured.items()})
    return shapes, not_measured


def _leave_out_pieces(shapes: dict[int, Shape], not_measured: dict[str, str], survey: LabelSurvey) -> None:
    """Drop from ``shapes`` every body far shallower than the whole bodies next to it (:data:`MIN_DEPTH_SHARE`).

    Args:
        shapes: Vertebra id -> shape of the bodies measured whole so far; changed in place.
        not_measured: Gets the reason for each body dropped.
        survey: The label map's survey (for names).
    """
    pieces = {}
    for label_id, shape in shapes.items():
        depths = [other.ap_depth_mm for other in _bodies_next_to(shapes, label_id)]
        share = shape.ap_depth_mm / np.mean(depths) if depths else 1.0
        if share < MIN_DEPTH_SHARE:
            pieces[label_id] = (f"its depth ({shape.ap_depth_mm:.1f} mm) is {share:.2f} of the bodies' next to it "
                                f"({np.mean(depths):.1f} mm): a piece of a body, not a whole one")
    for label_id, why in pieces.items():
        del shapes[label_id]
        not_measured[f"vertebrae.{survey.name(label_id)}"] = why


def _endplate_landmarks(shape: Shape, frame: SpineFrame) -> dict:
    """LPS points (mm) of a body's height segments and endplates (posterior, anterior corner)."""
    landmarks = {f"{k}_height": landmark_points(frame, shape.lateral, *seg) for k, seg in shape.height_segments.items()}
    for side, plate in (("superior", shape.superior), ("inferior", shape.inferior)):
        if plate is not None:
            landmarks[f"{side}_endplate"] = landmark_points(frame, shape.lateral, plate.posterior_corner,
                                                            plate.anterior_corner)
    return landmarks


def _bodies_next_to(shapes: dict[int, Shape], label_id: int) -> list[Shape]:
    """The measured shapes of the vertebrae one level above and below ``label_id`` (0-2 of them)."""
    return [shapes[other] for other in (neighbour(label_id, 2), neighbour(label_id, -2)) if other in shapes]


def _neighbours_posterior_mm(shapes: dict[int, Shape], label_id: int) -> float | None:
    """Mean posterior height (mm) of the whole bodies one level above and below ``label_id``; None without one."""
    heights = [other.heights_mm["posterior"] for other in _bodies_next_to(shapes, label_id) if other.heights_mm]
    return float(np.mean(heights)) if heights else None


def _vertebra_entry(shape: Shape | None, volume_ml: float, frame: SpineFrame,
                    neighbours_posterior_mm: float | None = None) -> dict:
    """One body's entry: heights, ratios and grade when measured, endplate tilt and landmarks.

    ``neighbours_posterior_mm`` (:func:`_neighbours_posterior_mm`) confirms the grade
    (:func:`~.definitions.genant_grade`).
    """
    entry: dict = {"volume_ml": rounded("volume_ml", volume_ml)}
    if shape is None:
        return entry
    if shape.heights_mm:
        h = shape.heights_mm
        ratio_ap, ratio_mp = h["anterior"] / h["posterior"], h["middle"] / h["posterior"]
        ratio_nb = None if neighbours_posterior_mm is None else min(h.values()) / neighbours_posterior_mm
        entry = {
            **_heights_entry(shape),
            **entry,
            "height_ratio_anterior_posterior": rounded("height_ratio", ratio_ap),
            "height_ratio_middle_posterior": rounded("height_ratio", ratio_mp),
            **({} if ratio_nb is None else {"height_ratio_neighbours": rounded("height_ratio", ratio_nb)}),
            "genant_grade": genant_grade(ratio_ap, ratio_mp, ratio_nb),
        }
    if shape.superior is not None:
        entry["superior_endplate_tilt_deg"] = rounded("deg", tilt_deg(shape.superior.direction))
    entry["landmarks_lps_mm"] = _endplate_landmarks(shape, frame)
    return entry


def _heights_entry(shape: Shape) -> dict:
    """The three heights and the depth of a measured body or disc (mm)."""
    h = shape.heights_mm
    return {
        "anterior_height_mm": rounded("_mm", h["anterior"]),
        "middle_height_mm": rounded("_mm", h["middle"]),
        "posterior_height_mm": rounded("_mm", h["posterior"]),
        "ap_depth_mm": rounded("_mm", shape.ap_depth_mm),
    }


def _disc_up(survey: LabelSurvey, shapes: dict[int, Shape], upper: int, lower: int) -> np.ndarray:
    """A first guess of a disc's superior direction (in-plane, unnormalised), shape (2,).

    The sum of the facing endplates' normals when both are measured, else the line
    between the neighbours' centroids, else the frame's superior axis.
    """
    top = shapes[upper].inferior if upper in shapes else None
    bottom = shapes[lower].superior if lower in shapes else None
    if top is not None and bottom is not None:
        return top.normal + bottom.normal
    if upper in survey.centroids and lower in survey.centroids:
        return survey.centroids[upper] - survey.centroids[lower]
    return np.array([0.0, 1.0])


def _measure_disc(survey: LabelSurvey, shapes: dict[int, Shape], disc_id: int) -> Shape | str:
    """One disc present in the label map: its shape, or why it is not measured."""
    found = _section_or_reason(survey, disc_id, "largest")
    if isinstance(found, str):
        return found
    if found.edges:
        return _cut_reason(found)
    return measure_body(found, _disc_up(survey, shapes, *disc_vertebrae(disc_id)), with_endplates=False)


def _disc_entry(shape: Shape, volume_ml: float, frame: SpineFrame) -> dict:
    """One disc's entry: heights, depth, volume and the heights' landmarks."""
    return {
        **_heights_entry(shape),
        "volume_ml": rounded("volume_ml", volume_ml),
        "landmarks_lps_mm": {f"{k}_height": landmark_points(frame, shape.lateral, *seg)
                             for k, seg in shape.height_segments.items()},
    }


def _measure_discs(survey: LabelSurvey, shapes: dict[int, Shape], not_measured: dict[str, str]) -> dict:
    """Every disc's entry; reasons go into ``not_measured`` (a missing disc only between two present bodies)."""
    discs = {}
    for disc_id in (i for i in SUPERIOR_TO_INFERIOR_IDS if i in DISC_IDS):
        name = survey.name(disc_id)
        if disc_id not in survey.present:
            if all(v in survey.present for v in disc_vertebrae(disc_id)):
                not_measured[f"discs.{name}"] = "not in the label map"
            continue
        found = _measure_disc(survey, shapes, disc_id)
        if isinstance(found, str):
            not_measured[f"discs.{name}"] = found
        else:
            discs[name] = _disc_entry(found, survey.volumes[disc_id], survey.frame)
    return discs


def _frame_entry(frame: SpineFrame) -> dict:
    """The measurement frame's three LPS unit vectors, rounded to 6 decimals."""
    return {"lateral": frame.lateral.round(6).tolist(), "superior": frame.superior.round(6).tolist(),
            "anterior": frame.anterior.round(6).tolist()}


def measure_spine(labels: Volume) -> dict:
    """All measurements of a label map (ids of the label table), on its own grid.

    Args:
        labels: The label map; any orientation, obliquity and spacing.

    Returns:
        The measurements document: ``schema``, ``frame_lps``, ``vertebrae``, ``discs``,
        ``angles_deg``, ``listhesis``, ``landmarks_lps_mm`` and ``not_measured``
        (path -> reason). Lengths mm, angles degrees, volumes mL, points LPS mm.
    """
    survey = survey_labels(labels)
    shapes, not_measured = _measure_vertebrae(survey)
    vertebrae = {survey.name(i): _vertebra_entry(shapes.get(i), survey.volumes[i], survey.frame,
                                                 _neighbours_posterior_mm(shapes, i))
                 for i in CHAIN_IDS if i in survey.present}
    discs = _measure_discs(survey, shapes, not_measured)
    segmental, listhesis = segmental_and_listhesis(survey, shapes, not_measured)
    angles, landmarks = lordosis(survey, shapes, not_measured)
    return {
        "schema": SCHEMA,
        "units": {"length": "mm", "angle": "deg", "volume": "mL", "points": "LPS mm"},
        "frame_lps": _frame_entry(survey.frame),
        "vertebrae": vertebrae,
        "discs": discs,
        "angles_deg": {**angles, "segmental": segmental},
        "listhesis": listhesis,
        "landmarks_lps_mm": landmarks,
        "not_measured": not_measured,
    }
