"""Measure what is in view: a sacrum cut by the lower image edge still gives S1's endplate.

The spines are drawn on oblique grids with 0.5-1.2 mm voxels whose lower edge runs
through the sacrum, as in almost every lumbar MRI. Expected values come from the
polygons' corners (spine_model.py). Tolerances: angles 2 degrees, slips 1.5 mm.
"""

import numpy as np
import pytest
from spine_model import FINE_OBLIQUE_GRIDS, lumbar_spine, rasterise

from SAFNetSpineLib.measurements import measure_spine

#: Sacral slope 30 degrees; L1-S1 lordosis 30 - (-2) = 32 degrees; L5 slipped 5 mm on S1, L4 4 mm on L5.
TILTS = {"L5": 20.0, "L4": 14.0, "L3": 8.0, "L2": 3.0, "L1": -2.0}
SHIFTS = {"L5": 5.0, "L4": 4.0}


def _on_grid_faces(labels, label_id: int) -> bool:
    array = labels.array
    return any(label_id in np.take(array, end, axis=axis) for axis in range(3) for end in (0, -1))


@pytest.fixture(scope="module")
def spine():
    return lumbar_spine(TILTS, sacrum_tilt=30.0, depth=38.0, shifts=SHIFTS)


@pytest.fixture(scope="module", params=list(FINE_OBLIQUE_GRIDS))
def cut_sacrum(request, spine):
    """The spine with the field of view's lower edge 20 mm under the middle of S1's endplate."""
    labels = rasterise(spine, *FINE_OBLIQUE_GRIDS[request.param], half_width=8.0, margin=6.0, crop_inferior=-20.0)
    assert _on_grid_faces(labels, 1)  # the premise: the sacrum is cut by the image edge
    return measure_spine(labels)


def test_lordosis_and_l5_s_angle_with_the_sacrum_cut(spine, cut_sacrum):
    angles = cut_sacrum["angles_deg"]
    expected = spine.tilt("S", "sup") - spine.tilt("L1", "sup")
    assert expected == pytest.approx(32.0)
    assert angles["lumbar_lordosis_L1_S1"] == pytest.approx(expected, abs=2.0)
    assert angles["segmental"]["L5/S"] == pytest.approx(spine.tilt("S", "sup") - spine.tilt("L5", "inf"), abs=2.0)
    assert cut_sacrum["vertebrae"]["S"]["superior_endplate_tilt_deg"] == pytest.approx(30.0, abs=2.0)
    assert len(cut_sacrum["landmarks_lps_mm"]["lumbar_lordosis_L1_S1"]) == 3


def test_l5_s_slip_with_the_sacrum_cut(spine, cut_sacrum):
    slip = cut_sacrum["listhesis"]["L5/S"]
    assert spine.slip("L5", "S") > 3.0
    assert slip["direction"] == "anterior"
    assert slip["slip_mm"] == pytest.approx(spine.slip("L5", "S"), abs=1.5)
    assert cut_sacrum["listhesis"]["L4/L5"]["slip_mm"] == pytest.approx(spine.slip("L4", "L5"), abs=1.5)


def test_only_what_needs_the_cut_part_is_left_out(cut_sacrum):
    """The sacrum never has heights; nothing else is missing, and no reason blames the field of view."""
    nm = cut_sacrum["not_measured"]
    assert nm["vertebrae.S.heights"] == "the sacrum has no inferior endplate: only S1's superior endplate"
    assert not [k for k in nm if k.startswith(("vertebrae.L", "discs.", "angles_deg.lumbar"))]
    assert not [k for k in nm if k.endswith("L5/S")]
    assert not [r for r in nm.values() if "field of view" in r]


def test_a_sacrum_cut_through_its_endplate_is_not_measured_and_says_so(spine):
    """The edge 3 mm under the middle of S1's endplate (tilted 30 degrees) cuts its anterior half off."""
    labels = rasterise(spine, *FINE_OBLIQUE_GRIDS["skew_sagittal"], half_width=8.0, margin=6.0, crop_inferior=-3.0)
    result = measure_spine(labels)
    nm = result["not_measured"]
    why = nm.get("vertebrae.S.superior_endplate", nm.get("vertebrae.S", ""))
    assert why.startswith("cut by the field of view (touches its inferior")
    assert "lumbar_lordosis_L1_S1" not in result["angles_deg"] and "L5/S" not in result["listhesis"]
    assert "S" in nm["angles_deg.lumbar_lordosis_L1_S1"] and "S" in nm["listhesis.L5/S"]
    assert "lumbar_lordosis_L1_L5" in result["angles_deg"]  # what does not need S is still measured
