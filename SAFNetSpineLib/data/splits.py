"""Case splits, all in one place: which cases train, which validate, which test.

Two kinds of case set, each with its rules:

* A fixed dataset (``train``, ``cv``): :func:`holdout_split` and :func:`kfold_splits`,
  seeded and stratified by case *group* (the case-id prefix: "myo", "chu", "ivd",
  "phantom", "Case"), so that a small source, e.g. the five disc-annotated cases, is spread
  over validation and test sets instead of landing in one of them by chance. They depend
  only on the sorted case ids and the seed, and :func:`load_or_write_splits` writes them to
  JSON once and reuses them, so a resumed or repeated run evaluates exactly the same cases.
* A growing case store (fine-tuning): :func:`split_cases`, where a case's role depends only
  on its own id and on the cases added before it, so adding cases never moves one from
  validation into training (a later comparison would otherwise score the model on cases it
  was trained on):

  - a case is for validation iff ``int(sha256(case_id)) % 100 < val_percent``
    (:func:`hash_bucket`);
  - except that the second case (in the store's order, oldest first) is forced into
    whichever role the first case does not have, so that a store of two or more cases
    always has at least one validation and one training case;

  and, for its cross-validation, :func:`assign_folds`: every patient's cases in one fold.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.errors import SpineInputError


def case_group(case_id: str) -> str:
    """The source group of a case id: text before the first '_' or '-', trailing digits removed."""
    head = re.split(r"[_-]", case_id, maxsplit=1)[0]
    return re.sub(r"\d+$", "", head) or head


def _by_group(case_ids: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(group, its ids sorted), groups sorted by name."""
    groups: dict[str, list[str]] = {}
    for case_id in sorted(case_ids):
        groups.setdefault(case_group(case_id), []).append(case_id)
    return sorted(groups.items())


def _round_robin(case_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Ids shuffled within each group, then dealt group by group (first of each group first)."""
    shuffled = {g: [ids[i] for i in rng.permutation(len(ids))] for g, ids in _by_group(case_ids)}
    order: list[str] = []
    depth = max((len(ids) for ids in shuffled.values()), default=0)
    for level in range(depth):
        # Within one round, larger groups first, then by name: fixed given the ids.
        for g in sorted(shuffled, key=lambda g: (-len(shuffled[g]), g)):
            if level < len(shuffled[g]):
                order.append(shuffled[g][level])
    return order


def holdout_split(case_ids: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split the ids of a fixed dataset into (train, validation), seeded and stratified by group.

    Each group with at least two cases gives max(1, round(fraction * n)) cases to
    validation; a single-case group stays in training.

    Raises:
        SpineInputError: fraction outside [0, 1) or nothing left to train on.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SpineInputError(None, f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val: list[str] = []
    for _, ids in _by_group(case_ids):
        order = [ids[i] for i in rng.permutation(len(ids))]
        take = 0 if (val_fraction == 0 or len(ids) < 2) else max(1, round(val_fraction * len(ids)))
        val.extend(order[:take])
    train = [c for c in sorted(case_ids) if c not in set(val)]
    if not train:
        raise SpineInputError(None, "the validation split leaves no training cases")
    return train, sorted(val)


def kfold_splits(case_ids: Sequence[str], folds: int = 5, n_val: int = 4, seed: int = 0) -> list[dict[str, list[str]]]:
    """The paper's cross-validation: k test folds; the rest of each fold is train + validation.

    Args:
        case_ids: All case ids.
        folds: Number of folds k (each case is a test case exactly once).
        n_val: Validation cases per fold, taken from the non-test cases.
        seed: Split seed.

    Returns:
        One {"train": [...], "val": [...], "test": [...]} per fold, ids sorted.

    Raises:
        SpineInputError: fewer cases than folds, k < 2, or too few cases left to train.
    """
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise SpineInputError(None, "case ids are not unique")
    if folds < 2:
        raise SpineInputError(None, f"cross-validation needs at least 2 folds, got {folds}")
    if len(ids) < folds:
        raise SpineInputError(None, f"{len(ids)} cases are fewer than the {folds} folds")
    rng = np.random.default_rng(seed)
    order = _round_robin(ids, rng)
    test_sets = [sorted(order[i::folds]) for i in range(folds)]
    result = []
    for index, test in enumerate(test_sets):
        rest = [c for c in ids if c not in set(test)]
        if len(rest) - n_val < 1:
            raise SpineInputError(None, f"fold {index + 1}: {len(rest)} non-test cases cannot give {n_val} "
                                        "validation cases and still leave training cases")
        val = sorted(_round_robin(rest, np.random.default_rng([seed, index]))[:n_val])
        result.append({"train": [c for c in rest if c not in set(val)], "val": val, "test": test})
    return result


def load_or_write_splits(path: Path, make: Callable[[], dict | list], case_ids: Sequence[str]) -> dict | list:
    """Read splits from ``path`` if it exists (checking they name known cases), else make and write them.

    Args:
        path: JSON file (``split.json``, ``splits.json``: docs/INTERFACES.md).
        make: Zero-argument callable producing the JSON-able splits: one
            ``{"train": [...], "val": [...], ...}`` or a list of them.
        case_ids: The ids available now.

    Raises:
        SpineInputError: the stored splits are unreadable or name cases that are not in the data.
    """
    path = Path(path)
    if path.is_file():
        try:
            splits = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise SpineInputError(path, f"unreadable splits file ({error})") from None
        named = set()
        for part in (splits if isinstance(splits, list) else [splits]):
            for key in ("train", "val", "test"):
                named.update(part.get(key, []))
        unknown = sorted(named - set(case_ids))
        if unknown:
            raise SpineInputError(path, f"splits name cases not found in the data: {unknown[:5]}")
        return splits
    splits = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(splits, path)
    return splits


def hash_bucket(case_id: str) -> int:
    """The case's bucket in 0..99: ``int(sha256(case_id)) % 100``."""
    return int(hashlib.sha256(case_id.encode("utf-8")).hexdigest(), 16) % 100


def split_roles(case_ids: Sequence[str], val_percent: int) -> dict[str, str]:
    """Assign "train" or "validation" to each case of a growing store (the hash rule above).

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
    """(train ids, validation ids) of a growing store, each in the given order; see :func:`split_roles`."""
    roles = split_roles(case_ids, val_percent)
    return (
        [c for c in case_ids if roles[c] == "train"],
        [c for c in case_ids if roles[c] == "validation"],
    )


def assign_folds(case_ids: Sequence[str], folds: int, patient_of: dict[str, str] | None = None) -> dict[str, int]:
    """{case id: fold}, every patient's cases in one fold (a deterministic GroupKFold).

    Patients are taken largest first (ties by the hash bucket of the patient key, then the
    key) and each goes to the fold holding the fewest cases so far (ties: the lowest fold).

    Args:
        case_ids: The cases.
        folds: Number of folds, 2..number of patients.
        patient_of: {case id: patient key}; None makes every case its own patient.
    """
    patient_of = patient_of or {case_id: case_id for case_id in case_ids}
    members: dict[str, list[str]] = {}
    for case_id in case_ids:
        members.setdefault(patient_of[case_id], []).append(case_id)
    if not 2 <= folds <= len(members):
        raise ValueError(f"folds must be in 2..{len(members)} (the number of patients), got {folds}")
    sizes = [0] * folds
    fold_of: dict[str, int] = {}
    for patient in sorted(members, key=lambda key: (-len(members[key]), hash_bucket(key), key)):
        fold = min(range(folds), key=lambda f: (sizes[f], f))
        sizes[fold] += len(members[patient])
        fold_of.update({case_id: fold for case_id in members[patient]})
    return fold_of
