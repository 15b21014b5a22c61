"""bench_whole_image_ceiling's figure: the whole-image Dice of a segmentation perfect on the labelled bodies."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loso import names_ignored_body_dice  # noqa: E402
from bench_whole_image_ceiling import whole_image_ceiling  # noqa: E402
from test_bench_loso import L4_L5, L5, T11, _spine  # noqa: E402  (T10 and S found but unlabelled)


def test_the_ceiling_is_what_a_perfect_segmentation_scores_on_the_whole_image():
    prediction, reference = _spine()
    annotated = [T11, L5]
    ceiling = whole_image_ceiling(prediction, reference, annotated, range_axis=1)
    assert np.isclose(ceiling, 2 * 160 / (2 * 160 + 128))  # R: 2 bodies x 80 voxels; U: T10 and S, 64 each
    # This prediction is perfect on the labelled bodies, so bench_loso's whole-image figure equals the ceiling.
    assert np.isclose(ceiling, names_ignored_body_dice(prediction, reference, annotated))
    aside = whole_image_ceiling(prediction, reference, annotated, range_axis=1, sacrum_aside=True)
    assert np.isclose(aside, names_ignored_body_dice(prediction, reference, annotated, sacrum_aside=True))


def test_errors_inside_the_annotated_range_do_not_move_the_ceiling():
    prediction, reference = _spine()
    before = whole_image_ceiling(prediction, reference, [T11, L5], range_axis=1)
    prediction[:, 40:45] = 0  # half of L5 missed
    prediction[:, 30:35] = T11  # a body where the expert has none
    assert whole_image_ceiling(prediction, reference, [T11, L5], range_axis=1) == before
    assert np.isnan(whole_image_ceiling(prediction, reference, [L4_L5], range_axis=1))
