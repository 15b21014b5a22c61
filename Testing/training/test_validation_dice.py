"""Validation Dice in network space is the evaluation Dice, laid out one row per case, one column per class."""

import contextlib

import numpy as np
import torch

from SAFNetSpineLib.evaluation.metrics import dice_per_structure
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.training.cache import PreprocessedCase
from SAFNetSpineLib.training.dataset import validation_dice


class _Predicts(torch.nn.Module):
    """A network whose logits pick a fixed label map, whatever the image."""

    def __init__(self, prediction: np.ndarray):
        super().__init__()
        one_hot = torch.nn.functional.one_hot(torch.from_numpy(prediction), NUM_CLASSES)
        self.register_buffer("logits", one_hot.permute(3, 0, 1, 2)[None].float())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(image.shape[0], -1, -1, -1, -1)


def _case(label: np.ndarray, annotated_ids) -> PreprocessedCase:
    annotated = np.zeros(NUM_CLASSES, bool)
    annotated[[0, *annotated_ids]] = True
    return PreprocessedCase("c", np.zeros(label.shape, np.float32), label.astype(np.uint8), annotated)


def test_rows_are_the_evaluation_dice_with_nan_where_undefined():
    reference = np.zeros((4, 6, 6), np.int64)
    reference[:, :3, :3] = 1
    reference[:, 3:, 3:] = 2
    reference[:, :3, 3:] = 3  # in the map but not annotated
    prediction = reference.copy()
    prediction[:, :3, 2] = 2  # some of 1 called 2
    prediction[0, 0, 0] = 4  # annotated, absent from the reference
    case = _case(reference, [1, 2, 4, 5])  # 5: annotated, in neither map
    model = _Predicts(prediction)
    model.train()

    rows = validation_dice(model, [case], torch.device("cpu"), contextlib.nullcontext)

    assert rows.shape == (1, NUM_CLASSES) and model.training
    expected = dice_per_structure(prediction, reference, [1, 2, 4, 5])
    assert rows[0, 1] == expected[1] and 0.5 < rows[0, 1] < 1.0
    assert rows[0, 2] == expected[2] and 0.5 < rows[0, 2] < 1.0
    assert rows[0, 4] == 0.0
    nan = [i for i in range(NUM_CLASSES) if np.isnan(rows[0, i])]
    assert nan == [0, 3, *range(5, NUM_CLASSES)]


def test_empty_prediction_and_reference_give_no_score():
    empty = np.zeros((2, 4, 4), np.int64)
    rows = validation_dice(_Predicts(empty), [_case(empty, [1, 2]), _case(empty, [])], torch.device("cpu"),
                           contextlib.nullcontext)
    assert rows.shape == (2, NUM_CLASSES) and np.isnan(rows).all()
