"""Fold assignment and the automatic fine-tuning schedule."""

from __future__ import annotations

import pytest

from SAFNetSpineLib.data.splits import assign_folds
from SAFNetSpineLib.finetune.crossval import auto_folds, auto_schedule


def test_folds_cover_every_case_once_and_are_balanced():
    ids = [f"case-{i}" for i in range(7)]
    folds = assign_folds(ids, 3)
    assert set(folds) == set(ids) and sorted(set(folds.values())) == [0, 1, 2]
    sizes = sorted(list(folds.values()).count(f) for f in range(3))
    assert sizes == [2, 2, 3]
    assert assign_folds(list(reversed(ids)), 3) == folds  # order of listing does not matter
    assert [auto_folds(n) for n in (2, 3, 5, 9, 10, 30)] == [2, 3, 3, 3, 3, 3]
    with pytest.raises(ValueError):
        assign_folds(ids, 8)


def test_schedule_scales_with_the_store():
    # 5 cases, folds of 4 at batch 2: 2 steps per epoch, 125-step budget -> 63 epochs.
    assert auto_schedule(5, 4, 2) == (63, 126)
    epochs, steps = auto_schedule(30, 24, 2)
    assert steps >= 500 and epochs == 42
    assert auto_schedule(3, 2, 2)[1] >= 120  # the floor
    assert auto_schedule(5, 4, 2, epochs=7) == (7, 14)  # explicit epochs win
    assert auto_schedule(5, 4, 2, steps=40) == (20, 40)
