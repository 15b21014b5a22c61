"""Anterior and posterior heights at the walls: wedges get the Genant grade of their construction.

Bodies 38 mm deep with a 26 mm posterior wall; a wedge of loss w has a (1 - w) * 26 mm
anterior wall. Drawn on oblique grids with 0.5-1.2 mm voxels, with sharp and with
rounded (3 mm) corners. Genant limits: loss 20 % grade 1, 25 % grade 2, over 40 % grade 3.
"""

import pytest
from spine_model import FINE_OBLIQUE_GRIDS, height_errors, lumbar_spine, rasterise

from SAFNetSpineLib.measurements import measure_spine

POSTERIOR_MM = 26.0
DEPTH_MM = 38.0
#: Body -> (height loss of its anterior wall, Genant grade of that construction).
WEDGES = {"L4": (0.45, 3), "L2": (0.15, 0), "L1": (0.22, 1), "T12": (0.30, 2)}
RECTANGLES = ("L5", "L3")
TILTS = {"L5": 20.0, "L4": 14.0, "L3": 8.0, "L2": 3.0, "L1": -2.0, "T12": -6.0}


@pytest.fixture(scope="module", params=[(grid, radius) for grid in FINE_OBLIQUE_GRIDS for radius in (0.0, 3.0)],
                ids=lambda p: f"{p[0]}-corners{p[1]:g}mm")
def wedged(request):
    grid, radius = request.param
    heights = {name: ((1 - loss) * POSTERIOR_MM, POSTERIOR_MM) for name, (loss, _) in WEDGES.items()}
    spine = lumbar_spine(TILTS, sacrum_tilt=None, depth=DEPTH_MM, heights=heights, corner_radius=radius)
    return spine, measure_spine(rasterise(spine, *FINE_OBLIQUE_GRIDS[grid], half_width=8.0, margin=6.0))


def test_wedges_get_the_grade_of_their_construction(wedged):
    _, result = wedged
    for name, (loss, grade) in WEDGES.items():
        body = result["vertebrae"][name]
        assert body["height_ratio_anterior_posterior"] == pytest.approx(1 - loss, abs=0.015), name
        assert body["genant_grade"] == grade, (name, body["height_ratio_anterior_posterior"])


def test_heights_at_the_walls_within_1_mm(wedged):
    spine, result = wedged
    errors = height_errors(spine, result["vertebrae"])
    assert len(errors) == 4 * len(TILTS) and max(abs(e) for e in errors.values()) <= 1.0, errors
    for name in RECTANGLES:
        assert result["vertebrae"][name]["genant_grade"] == 0
        assert result["vertebrae"][name]["height_ratio_anterior_posterior"] == pytest.approx(1.0, abs=0.02)


def test_height_landmarks_stand_on_the_corners(wedged):
    """The anterior (posterior) height's ends are the corners of the endplate lines on that wall."""
    _, result = wedged
    for name in WEDGES:
        marks = result["vertebrae"][name]["landmarks_lps_mm"]
        for wall, index in (("anterior", 1), ("posterior", 0)):
            bottom, top = marks[f"{wall}_height"]
            for point, plate in ((bottom, "inferior_endplate"), (top, "superior_endplate")):
                corner = marks[plate][index]
                assert sum((a - b) ** 2 for a, b in zip(point, corner, strict=True)) ** 0.5 < 1.0, (name, wall, plate)
