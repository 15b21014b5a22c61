"""bench_loso's figure: body Dice with names ignored, with the sacrum aside and within the annotated range."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loso import names_ignored_body_dice, superior_axis  # noqa: E402

from SAFNetSpineLib.volume import Volume  # noqa: E402

T10, T11, L5, S, L4_L5 = 9, 8, 2, 1, 12


def _spine() -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference) along axis 1 (superior-inferior): T11..L5 labelled; T10 and S found but unlabelled."""
    reference = np.zeros((2, 60, 4), np.uint8)
    reference[:, 10:20] = T11
    reference[:, 40:50] = L5
    prediction = reference.copy()
    prediction[:, 0:8] = T10  # a vertebra in view that the expert left out
    prediction[:, 52:60] = S
    prediction[:, 20:22] = L4_L5  # a disc: not a body, never counted
    return prediction, reference


def test_unlabelled_vertebrae_cost_everywhere_but_not_within_the_annotated_range():
    prediction, reference = _spine()
    annotated = [T11, L5]
    everywhere = names_ignored_body_dice(prediction, reference, annotated)
    assert np.isclose(everywhere, 2 * 20 / (20 + 36))
    assert np.isclose(names_ignored_body_dice(prediction, reference, annotated, sacrum_aside=True), 2 * 20 / (20 + 28))
    assert names_ignored_body_dice(prediction, reference, annotated, range_axis=1) == 1.0
    # Within the range a miss or a wrong body still counts.
    prediction[:, 40:45] = 0
    prediction[:, 30:35] = L4_L5 - 10  # a body where the expert has none
    assert np.isclose(names_ignored_body_dice(prediction, reference, annotated, range_axis=1), 2 * 15 / (20 + 20))
    assert np.isnan(names_ignored_body_dice(prediction, reference, [L4_L5], range_axis=1))


def test_the_superior_axis_follows_the_direction_matrix():
    sagittal = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # i: A-P, j: I-S flipped, k: R-L
    assert superior_axis(Volume(np.zeros((2, 3, 4)), np.ones(3), np.zeros(3), sagittal)) == 1
    assert superior_axis(Volume(np.zeros((2, 3, 4)), np.ones(3), np.zeros(3), np.eye(3))) == 2
