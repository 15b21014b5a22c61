"""Cross-validation over a small case store: every stored case scored by a version that did not train on it.

Used by :func:`SAFNetSpineLib.finetune.finetune` when the store is small (up to 30 cases):
the *patients* (:mod:`SAFNetSpineLib.stores.patients`) are dealt into ``k`` folds, so the series of one patient
never straddle folds (a version scored on a case never trained on a sibling series of the
same spine); for each fold a version is fine-tuned on the other folds and scores the fold's
cases, while the parent scores every case too. The paired Dice, averaged per patient, go to
:mod:`.promotion`; the version finally published is trained on all cases with the same recipe.
The folds run through the one cross-validation driver that ``cv`` uses too
(:mod:`SAFNetSpineLib.training.crossval`).

Also the schedule rule: how long to train for a store of ``n`` cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from SAFNetSpineLib.data.splits import assign_folds
from SAFNetSpineLib.training.crossval import Fold, ProgressFn, deal_folds, run_folds

if TYPE_CHECKING:
    from SAFNetSpineLib.training.loop import TrainResult

#: Optimiser steps per stored patient, and the bounds, of the automatic schedule. A store of
#: 5 patients gets 125 steps (60 epochs of 2 batches at batch 2): the recipe that changed
#: a model on a new site where 40 steps changed nothing (issue 14). Counting patients, not
#: series, keeps an exam's extra series from adding steps that move the model away from its parent.
STEPS_PER_PATIENT = 25
MIN_STEPS, MAX_STEPS = 120, 500
MIN_EPOCHS, MAX_EPOCHS = 5, 200
#: Stores up to this size are cross-validated; larger ones hold out a validation share.
CROSS_VALIDATION_MAX_CASES = 30


@dataclass(frozen=True)
class CaseScore:
    """One stored case scored by the parent and by a version that did not train on it.

    Attributes:
        case_id: The stored case.
        fold: Its fold (0-based); -1 for a held-out validation case.
        patient: Its patient key (:class:`~SAFNetSpineLib.stores.patients.PatientGroups`).
        before: Mean Dice of the parent over the case's reviewed structures.
        after: Same for the fine-tuned version.
    """

    case_id: str
    fold: int
    before: float
    after: float
    patient: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["difference"] = self.after - self.before
        return data


def auto_folds(n_cases: int) -> int:
    """Folds for a store of ``n_cases`` patients (or cases): 3 (2 for 2).

    Every case is still scored by a version that did not train on its patient; more folds would
    only add trainings (each about 3 minutes for 5 cases on 2 CPU cores), and a default
    fine-tune of 5 cases with one fold per case took about 19 minutes.
    """
    if n_cases < 2:
        raise ValueError("cross-validation needs at least 2 cases")
    return min(n_cases, 3)


def auto_schedule(n_store: int, n_train: int, batch_size: int, epochs: int = 0, steps: int = 0) -> tuple[int, int]:
    """(epochs, optimiser steps) of one fine-tuning training.

    Args:
        n_store: Patients in the store (sets the step budget: a patient's second series adds
            little that is new, and every step more moves the model further from its parent).
        n_train: Cases this training learns from (sets the steps per epoch).
        batch_size: Cases per step.
        epochs: Explicit epochs (0: from the step budget).
        steps: Explicit step budget (0: ``STEPS_PER_PATIENT * n_store`` within the bounds).
    """
    per_epoch = max(1, math.ceil(n_train / batch_size))
    if epochs:
        return int(epochs), int(epochs) * per_epoch
    budget = int(steps) if steps else min(max(STEPS_PER_PATIENT * n_store, MIN_STEPS), MAX_STEPS)
    chosen = min(max(math.ceil(budget / per_epoch), MIN_EPOCHS), MAX_EPOCHS)
    return chosen, chosen * per_epoch


def per_case_rows(weights_dir: Path, cases: list, device: str, cache_dir: Path | None) -> np.ndarray:
    """(N, C) Dice of a weights folder per case and class in network space, NaN where undefined.

    Only each case's reviewed (annotated) structures have a value; see
    :func:`SAFNetSpineLib.training.dataset.validation_dice`.
    """
    import contextlib

    from SAFNetSpineLib.runtime import resolve_device
    from SAFNetSpineLib.training.cache import preprocess_cases
    from SAFNetSpineLib.training.dataset import validation_dice
    from SAFNetSpineLib.weights import load_model

    torch_device = resolve_device(device)
    model, manifest = load_model(weights_dir, device=torch_device)
    prepared = preprocess_cases(cases, manifest.preprocess, cache_dir)
    return validation_dice(model, prepared, torch_device, contextlib.nullcontext)


def case_means(rows: np.ndarray) -> list[float]:
    """Each case's mean Dice over its defined structures; 1.0 for a case with none (the model drew
    none of the structures the annotator confirmed absent)."""
    return [float(np.nanmean(row)) if np.isfinite(row).any() else 1.0 for row in rows]


def structure_means(rows: np.ndarray) -> dict[int, float]:
    """{label id: mean Dice over the cases where it is defined}."""
    return {int(c): float(np.nanmean(rows[:, c])) for c in range(rows.shape[1]) if np.isfinite(rows[:, c]).any()}


def score_by_folds(
    cases: list,
    parent_folder: Path,
    folds: int,
    train_fold: Callable[[Fold, ProgressFn | None], TrainResult],
    device: str,
    cache_dir: Path | None,
    check_cancel: Callable[[], None] = lambda: None,
    patient_of: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    parts: int | None = None,
) -> tuple[list[CaseScore], np.ndarray, np.ndarray]:
    """Score every case with the parent and with a version fine-tuned on the other folds.

    The folds run through the one cross-validation driver,
    :func:`SAFNetSpineLib.training.crossval.run_folds`.

    Args:
        cases: :class:`~SAFNetSpineLib.data.cases.Case` entries of the store.
        parent_folder: The starting weights.
        folds: Number of folds (see :func:`auto_folds`).
        train_fold: ``train_fold(fold, relay) -> TrainResult`` fine-tunes from the parent on
            ``fold.train`` (the caller's recipe, work folder and cancel event).
        device: Torch device string for scoring.
        cache_dir: Preprocessed-case cache.
        check_cancel: Called between steps; raises to stop.
        patient_of: {case id: patient key}; a patient's cases share a fold (None: each case alone).
        progress: The run's progress callable, or None.
        parts: Parts of the run's progress bar (default ``folds``; the caller trains more).

    Returns:
        (one CaseScore per case in the order of ``cases``, (N, C) Dice rows of the parent,
        (N, C) Dice rows of the fold versions), rows as :func:`per_case_rows`.
    """
    patient_of = patient_of or {case.case_id: case.case_id for case in cases}
    ids = [case.case_id for case in cases]
    fold_of = assign_folds(ids, folds, patient_of)
    before = per_case_rows(parent_folder, cases, device, cache_dir)

    def train(fold: Fold, relay: ProgressFn | None) -> TrainResult:
        check_cancel()
        return train_fold(fold, relay)

    def score(fold: Fold, result: TrainResult, relay: ProgressFn | None) -> np.ndarray:
        check_cancel()
        return per_case_rows(Path(result.weights_dir), fold.held_out, device, cache_dir)

    run = run_folds(deal_folds(cases, fold_of, folds), train, score, progress, parts=parts)
    after = np.full_like(before, np.nan)
    for fold, rows in run.results.items():
        after[[i for i, case_id in enumerate(ids) if fold_of[case_id] == fold]] = rows
    scores = [CaseScore(case_id, fold_of[case_id], b, a, patient_of[case_id])
              for case_id, b, a in zip(ids, case_means(before), case_means(after), strict=True)]
    return scores, before, after
