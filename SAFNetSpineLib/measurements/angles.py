"""Angles and slips between measured bodies: segmental angles, listhesis, lumbar lordosis.

Each takes the endplates the definitions name (:mod:`.definitions`); where one is missing
its reason goes into ``not_measured``.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, L1_ID, L5_ID, SACRUM_ID, SUPERIOR_TO_INFERIOR_IDS, disc_vertebrae
from SAFNetSpineLib.measurements.bodies import Endplate, Shape
from SAFNetSpineLib.measurements.definitions import (
    MAX_BODY_OVERLAP_MM,
    MAX_DISC_SPACE_MM,
    meyerding_grade,
    rounded,
)
from SAFNetSpineLib.measurements.outline import tilt_deg
from SAFNetSpineLib.measurements.section import SpineFrame
from SAFNetSpineLib.measurements.survey import LabelSurvey, landmark_points


def _two_endplates(survey: LabelSurvey, shapes: dict[int, Shape], first: tuple[int, str], second: tuple[int, str],
                   ) -> tuple[Endplate, Endplate] | str:
    """Two endplates, each (vertebra id, "superior" or "inferior"), or why they are not both measured."""
    ids = (first[0], second[0])
    missing = [survey.name(i) for i in ids if i not in survey.present]
    if missing:
        return f"{' and '.join(missing)} not in the label map"
    unmeasured = [survey.name(i) for i in ids if i not in shapes]
    if unmeasured:
        return f"{' and '.join(unmeasured)} not measured"
    plates = []
    for label_id, side in (first, second):
        plate = getattr(shapes[label_id], side)
        if plate is None:
            why = shapes[label_id].not_measured.get(f"{side}_endplate", "not measured")
            return f"{survey.name(label_id)}'s {side} endplate not measured: {why}"
        plates.append(plate)
    return plates[0], plates[1]


def _apart(top: Endplate, bottom: Endplate, names: tuple[str, str]) -> str | None:
    """Why two bodies (the upper one's inferior endplate, the lower one's superior) are not neighbours, or None."""
    space = float((top.centre - bottom.centre) @ bottom.normal)
    if space > MAX_DISC_SPACE_MM:
        return f"{names[0]} and {names[1]} are {space:.0f} mm apart (not neighbouring levels)"
    if space < -MAX_BODY_OVERLAP_MM:
        return f"{names[0]} and {names[1]} overlap by {-space:.0f} mm"
    return None


def segmental_and_listhesis(survey: LabelSurvey, shapes: dict[int, Shape], not_measured: dict[str, str],
                             ) -> tuple[dict, dict]:
    """The angle and the slip at every disc level with a body on either side.

    Args:
        survey: The label map's survey.
        shapes: Vertebra id -> measured shape.
        not_measured: Gets the reason for each angle and slip left out.

    Returns:
        (disc level -> segmental angle in degrees, disc level -> slip entry).
    """
    segmental, listhesis = {}, {}
    for disc_id in (i for i in SUPERIOR_TO_INFERIOR_IDS if i in DISC_IDS):
        name = survey.name(disc_id)
        upper, lower = disc_vertebrae(disc_id)
        if upper not in survey.present and lower not in survey.present:
            continue
        found = _two_endplates(survey, shapes, (upper, "inferior"), (lower, "superior"))
        if not isinstance(found, str):
            found = _apart(*found, (survey.name(upper), survey.name(lower))) or found
        if isinstance(found, str):
            not_measured[f"angles_deg.segmental.{name}"] = found
            not_measured[f"listhesis.{name}"] = found
            continue
        top, bottom = found
        segmental[name] = rounded("deg", tilt_deg(bottom.direction) - tilt_deg(top.direction))
        slip = float((top.posterior_corner - bottom.posterior_corner) @ bottom.direction)
        percent = 100.0 * abs(slip) / bottom.length_mm
        listhesis[name] = {
            "slip_mm": rounded("slip_mm", abs(slip)),
            "slip_percent": rounded("slip_percent", percent),
            "direction": "anterior" if slip >= 0 else "posterior",
            "meyerding_grade": meyerding_grade(abs(slip), percent),
        }
    return segmental, listhesis


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
            return landmark_points(frame, lateral, ends[0], vertex, ends[1])
    vertex = b.centre
    arm = b.anterior_corner - vertex
    return landmark_points(frame, lateral, vertex + a.direction * np.linalg.norm(arm), vertex, b.anterior_corner)


def lordosis(survey: LabelSurvey, shapes: dict[int, Shape], not_measured: dict[str, str]) -> tuple[dict, dict]:
    """L1-S1 and L1-L5 lordosis, and the L1-S1 angle markup's points.

    Args:
        survey: The label map's survey.
        shapes: Vertebra id -> measured shape.
        not_measured: Gets the reason for each lordosis left out.

    Returns:
        (angle key -> degrees, "lumbar_lordosis_L1_S1" -> three LPS points when measured).
    """
    angles, landmarks = {}, {}
    for key, lower, plate in (("lumbar_lordosis_L1_S1", SACRUM_ID, "superior"),
                              ("lumbar_lordosis_L1_L5", L5_ID, "inferior")):
        found = _two_endplates(survey, shapes, (L1_ID, "superior"), (lower, plate))
        if lower == SACRUM_ID and not isinstance(found, str) and L5_ID in shapes and shapes[L5_ID].inferior is not None:
            found = _apart(shapes[L5_ID].inferior, found[1], ("L5", "S")) or found
        if isinstance(found, str):
            not_measured[f"angles_deg.{key}"] = found
            continue
        angles[key] = rounded("deg", tilt_deg(found[1].direction) - tilt_deg(found[0].direction))
    if "lumbar_lordosis_L1_S1" in angles:
        landmarks["lumbar_lordosis_L1_S1"] = _lordosis_points(survey.frame, shapes[L1_ID], shapes[SACRUM_ID])
    return angles, landmarks
