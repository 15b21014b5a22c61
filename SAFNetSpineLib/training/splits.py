"""The ``train`` run's split: which cases train and which validate, fixed in ``split.json``.

The split rules themselves are in :mod:`SAFNetSpineLib.data.splits`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from SAFNetSpineLib.data.cases import Case, select_cases
from SAFNetSpineLib.data.splits import holdout_split, load_or_write_splits
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training.distributed import is_main_process

#: The train run's split, in its run folder (``{"train": [...], "val": [...], "data": [...]}``).
SPLIT_FILE = "split.json"


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
        split = json.loads(split_file.read_text(encoding="utf-8")) if resume and split_file.exists() else make()
    elif split_file.exists() and not resume:
        raise SpineInputError(run_dir, "already holds a run (split.json); pass --resume or choose another folder")
    else:
        split = load_or_write_splits(split_file, make, ids)
    return select_cases(cases, split["train"], str(split_file)), select_cases(cases, split["val"], str(split_file))
