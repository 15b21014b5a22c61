"""Measurements of analytic spines (polygons of known size and angle) on oblique, anisotropic grids.

Tolerances: heights 1 mm, angles 2 degrees, slips 1.5 mm. The expected values come
from the polygons' exact corners, never from the code under test.
"""

import pytest
from spine_model import THICK_SLICE_GRIDS, height_errors, lumbar_spine, rasterise

from SAFNetSpineLib.measurements import measure_spine

GRIDS = THICK_SLICE_GRIDS
TILTS = {"L5": 22.0, "L4": 14.0, "L3": 7.0, "L2": 0.0, "L1": -6.0}
LEVELS = ["S", "L5", "L4", "L3", "L2", "L1"]


def _disc(upper: str, lower: str) -> str:
    return f"{upper}/{lower}"


@pytest.fixture(scope="module", params=list(GRIDS))
def lordotic(request):
    """A lordotic L1-S spine, L3 wedged (Genant 2), L4 slipped 6 mm forward on L5; measured."""
    spine = lumbar_spine(TILTS, heights={"L3": (16.0, 25.0), "L1": (12.0, 26.0)}, shifts={"L4": 6.0},
                         posterior_elements=True)
    direction, spacing = GRIDS[request.param]
    labels = rasterise(spine, direction, spacing)
    return spine, measure_spine(labels)


def test_body_heights_depth_and_genant_grade(lordotic):
    spine, result = lordotic
    errors = height_errors(spine, result["vertebrae"])
    assert max(abs(e) for e in errors.values()) <= 1.0, errors
    # L3: 16 mm anterior, 25 posterior, loss 36 %: grade 2.
    assert result["vertebrae"]["L3"]["genant_grade"] == 2
    assert result["vertebrae"]["L3"]["height_ratio_anterior_posterior"] == pytest.approx(16 / 25, abs=0.03)
    # L1: 12 / 26, loss 54 %: grade 3. Rectangles: grade 0.
    assert result["vertebrae"]["L1"]["genant_grade"] == 3
    assert all(result["vertebrae"][n]["genant_grade"] == 0 for n in ("L5", "L4", "L2"))


def test_lordosis_and_segmental_angles(lordotic):
    spine, result = lordotic
    angles = result["angles_deg"]
    expected = spine.tilt("S", "sup") - spine.tilt("L1", "sup")
    assert expected > 30
    assert angles["lumbar_lordosis_L1_S1"] == pytest.approx(expected, abs=2.0)
    assert angles["lumbar_lordosis_L1_L5"] == pytest.approx(spine.tilt("L5", "inf") - spine.tilt("L1", "sup"),
                                                             abs=2.0)
    for lower, upper in zip(LEVELS, LEVELS[1:], strict=False):
        name = "L5/S" if lower == "S" else _disc(upper, lower)
        assert angles["segmental"][name] == pytest.approx(spine.tilt(lower, "sup") - spine.tilt(upper, "inf"),
                                                          abs=2.0), name


def test_forward_slip_and_no_slip_elsewhere(lordotic):
    spine, result = lordotic
    for lower, upper in zip(LEVELS, LEVELS[1:], strict=False):
        name = "L5/S" if lower == "S" else _disc(upper, lower)
        entry = result["listhesis"][name]
        signed = entry["slip_mm"] * (1 if entry["direction"] == "anterior" else -1)
        assert signed == pytest.approx(spine.slip(upper, lower), abs=1.5), name
    slip = result["listhesis"]["L4/L5"]
    assert slip["direction"] == "anterior" and slip["slip_mm"] > 4.0
    assert slip["meyerding_grade"] == 1
    assert slip["slip_percent"] == pytest.approx(100 * spine.slip("L4", "L5") / 35.0, abs=5.0)
    assert all(result["listhesis"][n]["meyerding_grade"] == 0 for n in ("L5/S", "L3/L4", "L2/L3", "L1/L2"))


@pytest.mark.parametrize("grid", list(GRIDS))
def test_parallel_discs_heights_and_a_large_slip(grid):
    """A straight spine tilted 25 degrees: discs are 9 mm rectangles; L2 slips 14 mm (40 %): Meyerding 2.

    (Not tilted near a grid row: an endplate within a few degrees of the pixel rows
    crosses one or two pixel steps only, which fixes its angle to about
    atan(pixel / length), ~2 degrees for 1.2 mm pixels; see the README.)
    """
    spine = lumbar_spine({"L5": 25.0, "L4": 25.0, "L3": 25.0, "L2": 25.0}, sacrum_tilt=25.0, gap=9.0,
                         shifts={"L2": 14.0})
    result = measure_spine(rasterise(spine, *GRIDS[grid]))
    for name in ("L5/S", "L4/L5", "L3/L4"):
        for position in ("anterior", "middle", "posterior"):
            assert result["discs"][name][f"{position}_height_mm"] == pytest.approx(9.0, abs=1.0), (name, position)
        assert result["angles_deg"]["segmental"][name] == pytest.approx(0.0, abs=2.0)
    slip = result["listhesis"]["L2/L3"]
    assert slip["slip_mm"] == pytest.approx(14.0, abs=1.5) and slip["direction"] == "anterior"
    assert slip["meyerding_grade"] == 2
    assert result["angles_deg"]["segmental"]["L2/L3"] == pytest.approx(0.0, abs=2.0)


def test_same_spine_same_numbers_on_every_grid():
    """Grid independence: the lordosis of one spine differs by less than 1.5 degrees between grids."""
    spine = lumbar_spine(TILTS)
    values = [measure_spine(rasterise(spine, *grid))["angles_deg"]["lumbar_lordosis_L1_S1"] for grid in GRIDS.values()]
    assert max(values) - min(values) < 1.5
