"""The store's train/validation split: hash rule, at least one of each, stable as the store grows."""

from __future__ import annotations

import hashlib

import pytest

from SAFNetSpineLib.finetune.validation_split import hash_bucket, split_cases, split_roles


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
