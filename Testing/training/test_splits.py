"""Seeded splits: stratified hold-out, the paper's k folds, written once and reused."""

from __future__ import annotations

import json

import pytest

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training.splits import case_group, holdout_split, kfold_splits, load_or_write_splits

REAL_LIKE = [f"myo_{i:02d}" for i in range(1, 51)] + [f"chu_{i:02d}" for i in range(1, 10)] + \
    [f"ivd_{i:02d}" for i in range(1, 6)]


def test_case_groups():
    assert [case_group(c) for c in ("myo_01", "chu_12", "Case7", "phantom_0003", "x")] == \
        ["myo", "chu", "Case", "phantom", "x"]


def test_holdout_takes_a_share_of_every_group_and_is_seeded():
    train, val = holdout_split(REAL_LIKE, 0.1, seed=0)
    assert sorted(train + val) == sorted(REAL_LIKE) and not set(train) & set(val)
    groups = [case_group(c) for c in val]
    assert groups.count("myo") == 5 and groups.count("chu") == 1 and groups.count("ivd") == 1
    assert holdout_split(list(reversed(REAL_LIKE)), 0.1, seed=0) == (train, val)
    assert holdout_split(REAL_LIKE, 0.1, seed=1)[1] != val
    assert holdout_split(REAL_LIKE, 0.0)[1] == []
    with pytest.raises(SpineInputError, match="fraction"):
        holdout_split(REAL_LIKE, 1.0)


def test_kfold_tests_every_case_once_with_disjoint_parts():
    folds = kfold_splits(REAL_LIKE, folds=5, n_val=4, seed=0)
    assert len(folds) == 5
    tested = [c for f in folds for c in f["test"]]
    assert sorted(tested) == sorted(REAL_LIKE)
    for fold in folds:
        parts = [set(fold["train"]), set(fold["val"]), set(fold["test"])]
        assert len(fold["val"]) == 4
        assert sum(map(len, parts)) == len(REAL_LIKE) == len(set().union(*parts))
        # stratified: the five disc cases are spread, one per test fold
        assert sum(c.startswith("ivd") for c in fold["test"]) == 1
    assert kfold_splits(REAL_LIKE, 5, 4, 0) == folds
    assert kfold_splits(REAL_LIKE, 5, 4, 1) != folds


def test_kfold_bad_inputs():
    with pytest.raises(SpineInputError, match="3 cases are fewer than the 5 folds"):
        kfold_splits(["a1", "a2", "a3"], folds=5)
    with pytest.raises(SpineInputError, match="at least 2 folds"):
        kfold_splits(["a1", "a2", "a3"], folds=1)
    with pytest.raises(SpineInputError, match="cannot give 4 validation cases"):
        kfold_splits([f"a{i}" for i in range(6)], folds=3, n_val=4)


def test_splits_are_written_once_and_reused(tmp_path):
    path = tmp_path / "splits.json"
    first = load_or_write_splits(path, lambda: kfold_splits(REAL_LIKE, 5, 4, 0), REAL_LIKE)
    again = load_or_write_splits(path, lambda: kfold_splits(REAL_LIKE, 5, 4, 99), REAL_LIKE)
    assert again == first == json.loads(path.read_text())
    with pytest.raises(SpineInputError, match="splits name cases not found"):
        load_or_write_splits(path, lambda: None, REAL_LIKE[:10])
