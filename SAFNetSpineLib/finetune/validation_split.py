"""Train/validation split of a growing case store that never moves a case.

Fine-tuning compares validation Dice before and after; if a case could drift from
validation into training as the store grows, a later comparison would score the model
on cases it was trained on. So a case's role depends only on its own id and on the
cases added before it:

* the rule: a case is for validation iff ``int(sha256(case_id)) % 100 < val_percent``;
* except that the second case (in the store's order, oldest first) is forced into
  whichever role the first case does not have, so that a store of two or more cases
  always has at least one validation and one training case.

Adding cases therefore never changes the role of a case already in the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def hash_bucket(case_id: str) -> int:
    """The case's bucket in 0..99: ``int(sha256(case_id)) % 100``."""
    return int(hashlib.sha256(case_id.encode("utf-8")).hexdigest(), 16) % 100


def split_roles(case_ids: Sequence[str], val_percent: int) -> dict[str, str]:
    """Assign "train" or "validation" to each case.

    Args:
        case_ids: Case ids in the store's order (oldest first); the order matters only
            for the first two cases.
        val_percent: Percentage of cases (0 < p < 100) that the hash rule sends to validation.

    Returns:
        {case_id: "train" | "validation"}.

    Raises:
        ValueError: for a percentage outside 1..99 or duplicate ids.
    """
    if not 0 < val_percent < 100:
        raise ValueError(f"validation percentage must be in 1..99, got {val_percent}")
    if len(set(case_ids)) != len(case_ids):
        raise ValueError("case ids must be unique")
    roles: dict[str, str] = {}
    for index, case_id in enumerate(case_ids):
        by_hash = "validation" if hash_bucket(case_id) < val_percent else "train"
        if index == 1:
            first = roles[case_ids[0]]
            by_hash = "train" if first == "validation" else "validation"
        roles[case_id] = by_hash
    return roles


def split_cases(case_ids: Sequence[str], val_percent: int) -> tuple[list[str], list[str]]:
    """(train ids, validation ids), each in the given order; see :func:`split_roles`."""
    roles = split_roles(case_ids, val_percent)
    return (
        [c for c in case_ids if roles[c] == "train"],
        [c for c in case_ids if roles[c] == "validation"],
    )
