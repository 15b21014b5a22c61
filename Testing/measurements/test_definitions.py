"""Grading rules: Genant limits and Meyerding steps, at and around their boundaries."""

import pytest

from SAFNetSpineLib.measurements.definitions import genant_grade, meyerding_grade


@pytest.mark.parametrize(("ratio_ap", "ratio_mp", "grade"), [
    (1.0, 1.0, 0), (0.81, 0.95, 0), (1.1, 0.79, 1), (0.76, 0.9, 1), (0.74, 0.9, 2), (0.95, 0.61, 2),
    (0.60, 0.9, 2), (0.59, 0.9, 3), (0.3, 0.3, 3),
])
def test_genant_grade_uses_the_worse_ratio(ratio_ap, ratio_mp, grade):
    assert genant_grade(ratio_ap, ratio_mp) == grade


@pytest.mark.parametrize(("slip_mm", "percent", "grade"), [
    (1.0, 3.0, 0), (2.9, 9.0, 0), (3.0, 9.0, 1), (8.0, 25.0, 1), (9.0, 26.0, 2), (20.0, 55.0, 3),
    (30.0, 90.0, 4), (40.0, 120.0, 5),
])
def test_meyerding_grade_steps_of_25_percent(slip_mm, percent, grade):
    assert meyerding_grade(slip_mm, percent) == grade
