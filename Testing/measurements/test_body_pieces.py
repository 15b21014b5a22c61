"""A piece of a body (the part of a vertebra that a label map holds) is not measured as a whole body.

Analytic L5-L1 spines on an oblique grid, bodies 35 mm deep; L1's label keeps only the posterior
part of its body, as a network's label does for the vertebra at the top of a field of view.
Under :data:`~SAFNetSpineLib.measurements.definitions.MIN_DEPTH_SHARE` (0.75) of L2's depth it is a
piece: no heights, grade, endplates, angle or slip come from it. A body 15 % shallower than its
neighbour is still measured.
"""

import numpy as np
import pytest
from spine_model import (
    FINE_OBLIQUE_GRIDS,
    GENTLE_LORDOSIS_TILTS,
    NAMES_TO_IDS,
    SAGITTAL,
    lumbar_spine,
    rasterise,
)

from SAFNetSpineLib.measurements import measure_spine

TILTS = GENTLE_LORDOSIS_TILTS


def _with_l1_kept_to(share: float) -> dict:
    spine = lumbar_spine(TILTS)
    c = spine.bodies["L1"].corners
    piece = np.array([c["post_inf"], c["post_inf"] + share * (c["ant_inf"] - c["post_inf"]),
                      c["post_sup"] + share * (c["ant_sup"] - c["post_sup"]), c["post_sup"]])
    spine.polygons = [(i, piece if i == NAMES_TO_IDS["L1"] else p) for i, p in spine.polygons]
    return measure_spine(rasterise(spine, *FINE_OBLIQUE_GRIDS["left_handed"], half_width=8.0, margin=6.0))


@pytest.fixture(scope="module")
def piece():
    return _with_l1_kept_to(0.55)


@pytest.fixture(scope="module")
def shallower():
    return _with_l1_kept_to(0.85)


def test_a_piece_of_a_body_gives_no_heights_grade_angle_or_slip(piece):
    l1 = piece["vertebrae"]["L1"]
    assert "volume_ml" in l1 and "anterior_height_mm" not in l1 and "genant_grade" not in l1
    assert "a piece of a body" in piece["not_measured"]["vertebrae.L1"]
    assert "L1/L2" not in piece["listhesis"] and "L1/L2" not in piece["angles_deg"]["segmental"]
    assert "L1 not measured" in piece["not_measured"]["listhesis.L1/L2"]
    assert "lumbar_lordosis_L1_S1" not in piece["angles_deg"]
    # Its neighbour is measured as before.
    assert piece["vertebrae"]["L2"]["ap_depth_mm"] == pytest.approx(35.0, abs=1.5)
    assert piece["vertebrae"]["L2"]["genant_grade"] == 0


def test_a_body_somewhat_shallower_than_its_neighbour_is_still_measured(shallower):
    l1 = shallower["vertebrae"]["L1"]
    assert l1["ap_depth_mm"] == pytest.approx(0.85 * 35.0, abs=1.5)
    assert l1["genant_grade"] == 0 and "L1/L2" in shallower["listhesis"]
    assert "vertebrae.L1" not in shallower["not_measured"]


def test_a_cut_piece_of_a_body_gives_no_slip():
    """L1 cut 8 mm under its top by the field of view, its label holding only the posterior 40 % of its body.

    Its inferior endplate, traced alone, spans 0.4 of L2's superior one: its corners are not the body's, so
    no L1/L2 slip or angle is taken from it. The same cut on the whole body gives them (test_not_measured.py).
    """
    spine = lumbar_spine(TILTS)
    c = spine.bodies["L1"].corners
    top = max(corner[1] for corner in c.values())
    piece = np.array([c["post_inf"], c["post_inf"] + 0.4 * (c["ant_inf"] - c["post_inf"]),
                      c["post_sup"] + 0.4 * (c["ant_sup"] - c["post_sup"]), c["post_sup"]])
    spine.polygons = [(i, piece if i == NAMES_TO_IDS["L1"] else p) for i, p in spine.polygons]
    result = measure_spine(rasterise(spine, SAGITTAL, (3.0, 1.0, 1.0), crop_superior=top - 8.0))
    nm = result["not_measured"]
    assert "L1/L2" not in result["listhesis"] and "L1/L2" not in result["angles_deg"]["segmental"]
    assert "a piece of a body" in nm.get("vertebrae.L1", nm.get("vertebrae.L1.inferior_endplate", ""))
    assert "anterior_height_mm" in result["vertebrae"]["L2"]
