"""Grading rules: Genant limits and Meyerding steps, at and around their boundaries."""

import pytest

from SAFNetSpineLib.measurements.definitions import genant_grade, meyerding_grade


@pytest.mark.parametrize(("ratio_ap", "ratio_mp", "grade"), [
    (1.0, 1.0, 0), (0.81, 0.95, 0), (1.1, 0.79, 1), (0.76, 0.9, 1), (0.74, 0.9, 2), (0.95, 0.61, 2),
    (0.60, 0.9, 2), (0.59, 0.9, 3), (0.3, 0.3, 3),
])
def test_genant_grade_uses_the_worse_ratio(ratio_ap, ratio_mp, grade):
    assert genant_grade(ratio_ap, ratio_mp) == grade


@pytest.mark.parametrize(("ratios", "neighbours", "grade"), [
    ((0.77, 0.9), 0.79, 1),   # short against its neighbours too: the ratio's grade stands
    ((0.77, 0.9), 0.81, 0),   # within 20 % of the neighbours' posterior walls: not a deformity
    ((0.55, 0.9), 0.55, 3),   # a confirmed grade is the ratio's, whatever the neighbours' figure
    ((0.55, 0.9), 0.95, 0),
    ((0.95, 0.95), 0.5, 0),   # the neighbours alone never grade (a crush is out of reach, as before)
    ((0.70, 0.9), None, 2),   # no neighbour measured: the ratios alone grade
])
def test_genant_grade_stands_only_when_the_neighbours_confirm_it(ratios, neighbours, grade):
    assert genant_grade(*ratios, neighbours) == grade


@pytest.mark.parametrize(("slip_mm", "percent", "grade"), [
    (1.0, 3.0, 0), (2.9, 9.0, 0), (3.0, 9.0, 1), (8.0, 25.0, 1), (9.0, 26.0, 2), (20.0, 55.0, 3),
    (30.0, 90.0, 4), (40.0, 120.0, 5),
])
def test_meyerding_grade_steps_of_25_percent(slip_mm, percent, grade):
    assert meyerding_grade(slip_mm, percent) == grade
