"""The one cross-validation driver: folds dealt and read from splits, one progress bar, stop on cancel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.training.crossval import deal_folds, folds_from_splits, part_progress, run_folds

CASES = [Case(f"c{i}", Path(f"c{i}.nii.gz"), Path(f"c{i}_label.nii.gz"), (1,)) for i in range(5)]


@dataclass
class Trained:
    """What the driver reads of a training's result."""

    cancelled: bool
    cases: tuple[str, ...]


def test_dealt_folds_hold_out_each_case_once_and_train_on_the_rest():
    fold_of = {"c0": 0, "c1": 1, "c2": 0, "c3": 2, "c4": 1}
    folds = deal_folds(CASES, fold_of, 3)
    assert [[c.case_id for c in f.held_out] for f in folds] == [["c0", "c2"], ["c1", "c4"], ["c3"]]
    for fold in folds:
        assert {c.case_id for c in fold.train} == {c.case_id for c in CASES} - {c.case_id for c in fold.held_out}
        assert fold.val == [] and fold.count == 3
    assert [f.label for f in folds] == ["fold 1/3", "fold 2/3", "fold 3/3"]


def test_folds_from_splits_keep_train_val_and_test():
    splits = [{"train": ["c0", "c1"], "val": ["c2"], "test": ["c3", "c4"]},
              {"train": ["c3", "c4"], "val": ["c0"], "test": ["c1", "c2"]}]
    folds = folds_from_splits(CASES, splits)
    assert [(f.number, [c.case_id for c in f.val], [c.case_id for c in f.held_out]) for f in folds] == \
        [(1, ["c2"], ["c3", "c4"]), (2, ["c0"], ["c1", "c2"])]


def test_part_progress_maps_a_part_into_the_whole_bar():
    seen = []
    relay = part_progress(lambda *args, **extra: seen.append((*args, extra)), 1, 4, "fold 2/4", stage="cv", fold=2)
    relay("train", 0.5, "epoch 1/2", epoch=1)
    relay("evaluate", 1.0, "c3 (1/1)")
    assert seen == [("cv", 1.5 / 4, "fold 2/4 train: epoch 1/2", {"fold": 2, "epoch": 1}),
                    ("cv", 2 / 4, "fold 2/4 evaluate: c3 (1/1)", {"fold": 2})]
    kept = []
    part_progress(lambda stage, fraction, message, **extra: kept.append(stage), 0, 2, "final")("train", 0.0)
    assert kept == ["train"]
    assert part_progress(None, 0, 2, "x") is None


def test_run_folds_scores_each_fold_on_one_bar_and_stops_at_a_cancelled_training():
    folds = deal_folds(CASES, {"c0": 0, "c1": 1, "c2": 2, "c3": 0, "c4": 1}, 3)
    fractions, scored = [], []

    def train_fold(fold, relay):
        relay("train", 1.0, "done")
        return Trained(cancelled=False, cases=tuple(c.case_id for c in fold.train))

    def score(fold, result, relay):
        scored.append(fold.index)
        return sorted(result.cases)

    run = run_folds(folds, train_fold, score, lambda stage, fraction, message, **extra: fractions.append(fraction),
                    parts=4)
    assert not run.cancelled and scored == [0, 1, 2]
    assert run.results[0] == ["c1", "c2", "c4"]  # fold 0 trained on the other folds' cases
    assert fractions == [1 / 4, 2 / 4, 3 / 4]  # the fourth part is left to the caller

    def cancelled_at_second(fold, relay):
        return Trained(cancelled=fold.index == 1, cases=())

    scored.clear()
    run = run_folds(folds, cancelled_at_second, score)
    assert run.cancelled and scored == [0] and list(run.results) == [0]
