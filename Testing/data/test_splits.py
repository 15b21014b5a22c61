"""Case splits: a fixed dataset's seeded hold-out and k folds (written once and reused), and a growing
store's hash rule (at least one case of each role, stable as the store grows)."""

from __future__ import annotations

import hashlib
import json

import pytest

from SAFNetSpineLib.data.splits import (
    case_group,
    hash_bucket,
    holdout_split,
    kfold_splits,
    load_or_write_splits,
    split_cases,
    split_roles,
)
from SAFNetSpineLib.errors import SpineInputError

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

# The growing store's hash rule (fine-tuning).


def test_hash_bucket_is_sha256_mod_100():
    digest = hashlib.sha256(b"case-0001").hexdigest()
    assert hash_bucket("case-0001") == int(digest, 16) % 100
    assert 0 <= hash_bucket("x") < 100


def test_roles_follow_the_hash_rule_from_the_third_case_on():
    ids = [f"case-{i:04d}" for i in range(200)]
    roles = split_roles(ids, 20)
    for case_id in ids[2:]:
        expected = "validation" if hash_bucket(case_id) < 20 else "train"
        assert roles[case_id] == expected
    n_val = sum(role == "validation" for role in roles.values())
    # 20 % of 200 cases, give or take the hash's randomness.
    assert 20 <= n_val <= 60


def test_two_cases_always_give_one_train_and_one_validation():
    ids = [f"c{i}" for i in range(60)]
    for first in ids[:30]:
        for second in ids[30:]:
            train, val = split_cases([first, second], 20)
            assert len(train) == 1 and len(val) == 1


def test_adding_cases_never_moves_an_existing_case():
    ids = [f"corrected-{i:03d}" for i in range(80)]
    for percent in (5, 20, 50):
        previous: dict[str, str] = {}
        for n in range(1, len(ids) + 1):
            roles = split_roles(ids[:n], percent)
            for case_id, role in previous.items():
                assert roles[case_id] == role, (percent, n, case_id)
            previous = roles
            if n >= 2:
                assert "validation" in roles.values() and "train" in roles.values()


def test_split_is_deterministic_and_checks_arguments():
    ids = [f"k{i}" for i in range(10)]
    assert split_cases(ids, 30) == split_cases(list(ids), 30)
    with pytest.raises(ValueError):
        split_roles(ids, 0)
    with pytest.raises(ValueError):
        split_roles(ids, 100)
    with pytest.raises(ValueError):
        split_roles(["a", "a"], 20)
