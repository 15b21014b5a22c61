"""Seeded case splits: a train/validation hold-out and the paper's k-fold train/validation/test folds.

Splits are stratified by case *group* (the case-id prefix: "myo", "chu", "ivd",
"phantom", "Case"), so that a small source, e.g. the five disc-annotated cases, is
spread over validation and test sets instead of landing in one of them by chance.
Splits depend only on the sorted case ids and the seed, and are written to JSON once
and reused, so a resumed or repeated run evaluates exactly the same cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.data.cases import Case, select_cases
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training.distributed import is_main_process

#: The train run's split, in its run folder (``{"train": [...], "val": [...], "data": [...]}``).
SPLIT_FILE = "split.json"


def case_group(case_id: str) -> str:
    """The source group of a case id: text before the first '_' or '-', trailing digits removed."""
    head = re.split(r"[_-]", case_id, maxsplit=1)[0]
    return re.sub(r"\d+$", "", head) or head


def _round_robin(case_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Ids shuffled within each group, then dealt group by group (first of each group first)."""
    groups: dict[str, list[str]] = {}
    for case_id in sorted(case_ids):
        groups.setdefault(case_group(case_id), []).append(case_id)
    shuffled = {g: [ids[i] for i in rng.permutation(len(ids))] for g, ids in sorted(groups.items())}
    order: list[str] = []
    depth = max((len(ids) for ids in shuffled.values()), default=0)
    for level in range(depth):
        # Within one round, larger groups first, then by name: fixed given the ids.
        for g in sorted(shuffled, key=lambda g: (-len(shuffled[g]), g)):
            if level < len(shuffled[g]):
                order.append(shuffled[g][level])
    return order


def holdout_split(case_ids: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split ids into (train, validation), stratified by group.

    Each group with at least two cases gives max(1, round(fraction * n)) cases to
    validation; a single-case group stays in training.

    Raises:
        SpineInputError: fraction outside [0, 1) or nothing left to train on.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SpineInputError(None, f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for case_id in sorted(case_ids):
        groups.setdefault(case_group(case_id), []).append(case_id)
    val: list[str] = []
    for _, ids in sorted(groups.items()):
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


def load_or_write_splits(path: Path, make, case_ids: Sequence[str]):
    """Read splits from ``path`` if it exists (checking they name known cases), else make and write them.

    Args:
        path: JSON file.
        make: Zero-argument callable producing the JSON-able splits.
        case_ids: The ids available now.

    Raises:
        SpineInputError: the stored splits name cases that are not in the data.
    """
    path = Path(path)
    if path.is_file():
        try:
            splits = json.loads(path.read_text())
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


def train_validation_split(cases: Sequence[Case], origin: dict[str, Path], run_dir: Path, *,
                           val_ids: Sequence[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                           train_only: Sequence[Path] = (), resume: bool = False) -> tuple[list[Case], list[Case]]:
    """The (training, validation) cases of a ``train`` run, fixed in ``run_dir/split.json`` on first use.

    Args:
        cases: Every case of the run's dataset folders.
        origin: Case id -> its dataset folder (see :func:`~SAFNetSpineLib.data.cases.load_case_folders`).
        run_dir: The run folder.
        val_ids: Validation case ids; None holds out a seeded ``val_fraction`` of each case group.
        val_fraction: Share held out without ``val_ids``.
        seed: Seed of that hold-out.
        train_only: Dataset folders whose cases are never validation cases.
        resume: Continue a run: reuse its split.json (a new run refuses an existing one).

    Raises:
        SpineInputError: unknown ``val_ids``, or a split.json without ``resume``.
    """
    ids = [c.case_id for c in cases]
    excluded = {Path(p).resolve() for p in train_only}

    def make() -> dict:
        if val_ids:
            val = list(val_ids)
            select_cases(cases, val, "--val-cases")
        else:
            eligible = [c for c in ids if Path(origin[c]).resolve() not in excluded]
            _, val = holdout_split(eligible, val_fraction, seed)
        folders = list(dict.fromkeys(str(Path(p).resolve()) for p in origin.values()))
        return {"train": [c for c in ids if c not in set(val)], "val": sorted(val), "data": folders}

    split_file = Path(run_dir) / SPLIT_FILE
    if not is_main_process():
        # Under torchrun rank 0 writes split.json; the split is a pure function of ids and seed.
        split = json.loads(split_file.read_text()) if resume and split_file.exists() else make()
    elif split_file.exists() and not resume:
        raise SpineInputError(run_dir, "already holds a run (split.json); pass --resume or choose another folder")
    else:
        split = load_or_write_splits(split_file, make, ids)
    return select_cases(cases, split["train"], str(split_file)), select_cases(cases, split["val"], str(split_file))
