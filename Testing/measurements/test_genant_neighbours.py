"""A Genant grade is confirmed against the neighbouring bodies (McCloskey-Kanis's second criterion).

Two analytic spines on an oblique grid, bodies 35 mm deep. In both, L3 has a 20 mm anterior
and a 26 mm posterior wall (ratio 0.77, Genant 1 by its ratios alone):
- between neighbours with 26 mm posterior walls it is a wedge (anterior 23 % short of them): graded;
- between neighbours with 20 mm walls its anterior wall is theirs, and only its posterior
  wall is taller (as when an endplate is traced tilted): not graded.
"""

import pytest
from spine_model import FINE_OBLIQUE_GRIDS, GENTLE_LORDOSIS_TILTS, lumbar_spine, rasterise

from SAFNetSpineLib.measurements import measure_spine, summary_line

TILTS = GENTLE_LORDOSIS_TILTS


def _measured(neighbour_mm: float) -> dict:
    heights = {name: (neighbour_mm, neighbour_mm) for name in TILTS} | {"L3": (20.0, 26.0)}
    spine = lumbar_spine(TILTS, heights=heights)
    return measure_spine(rasterise(spine, *FINE_OBLIQUE_GRIDS["skew_sagittal"], half_width=8.0, margin=6.0))


@pytest.fixture(scope="module")
def wedge():
    return _measured(26.0)


@pytest.fixture(scope="module")
def tall_wall():
    return _measured(20.0)


def test_a_wedge_short_against_its_neighbours_is_graded(wedge):
    l3 = wedge["vertebrae"]["L3"]
    assert l3["height_ratio_anterior_posterior"] == pytest.approx(20 / 26, abs=0.02)
    assert l3["height_ratio_neighbours"] == pytest.approx(20 / 26, abs=0.03)
    assert l3["genant_grade"] == 1
    assert "L3 Genant grade 1" in summary_line(wedge)


def test_a_body_as_tall_as_its_neighbours_in_front_is_not_graded(tall_wall):
    l3 = tall_wall["vertebrae"]["L3"]
    assert l3["height_ratio_anterior_posterior"] == pytest.approx(20 / 26, abs=0.02)  # the same ratio
    assert l3["height_ratio_neighbours"] == pytest.approx(1.0, abs=0.05)
    assert l3["genant_grade"] == 0
    assert summary_line(tall_wall).startswith("No body with Genant grade")


def test_an_end_of_the_chain_is_confirmed_by_its_one_neighbour(wedge):
    # L1 has no measured body above it (none drawn): L2 alone is its neighbour, so the field is present.
    assert wedge["vertebrae"]["L1"]["height_ratio_neighbours"] == pytest.approx(1.0, abs=0.05)
