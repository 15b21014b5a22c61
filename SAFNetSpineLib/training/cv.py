"""Cross-validation as in the SAFNet paper: k folds of train / validation / test, then a report.

``OUT/splits.json`` is written once (seeded) and reused, so a re-run or a run split over
several machines (``only_folds``) tests exactly the same cases. Each fold trains in
``OUT/fold_K/`` (resumable), and its test scores are kept in ``OUT/fold_K/test_metrics.json``;
a fold with that file is done and is not retrained. The folds run through the one
cross-validation driver that fine-tuning uses too (:mod:`SAFNetSpineLib.training.crossval`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.data.splits import kfold_splits, load_or_write_splits
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.evaluation import evaluate_model
from SAFNetSpineLib.evaluation.report import write_report
from SAFNetSpineLib.runtime import resolve_device
from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.crossval import Fold, folds_from_splits, run_folds
from SAFNetSpineLib.training.distributed import is_main_process
from SAFNetSpineLib.training.loop import TrainResult, train
from SAFNetSpineLib.weights import load_model

SPLITS_FILE = "splits.json"
FOLD_METRICS_FILE = "test_metrics.json"


@dataclass
class CVSummary:
    """Outcome of :func:`cross_validate`.

    Attributes:
        report: report.md path (None if no fold has finished).
        rows: Test rows of every finished fold (see evaluate_model), with "fold".
        folds_done: 1-based numbers of the finished folds.
        cancelled: True if stopped through the cancel hook.
    """

    report: Path | None
    rows: list[dict] = field(default_factory=list)
    folds_done: list[int] = field(default_factory=list)
    cancelled: bool = False


def _finite(row: dict) -> dict:
    """JSON-safe row (NaN as null)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _read_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [{k: (float("nan") if v is None else v) for k, v in row.items()} for row in rows]


def cross_validate(
    config: TrainConfig,
    cases: Sequence[Case],
    out_dir: str | Path,
    *,
    folds: int = 5,
    n_val: int = 4,
    split_seed: int = 0,
    only_folds: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
    progress=None,
    cancel=None,
    surface: bool = True,
) -> CVSummary:
    """Train and test every fold, then write the report over all finished folds.

    Args:
        config: Training recipe used for every fold.
        cases: All cases (each is a test case in exactly one fold).
        out_dir: CV folder (splits.json, fold_K/, report.md, metrics.csv, dice_boxplot.png).
        folds: k.
        n_val: Validation cases per fold (paper: 4).
        split_seed: Seed of the splits (ignored once splits.json exists).
        only_folds: 1-based folds to run now (default all).
        cache_dir: Preprocessed-case cache shared by the folds (default OUT/cache).
        progress: Optional Progress-like callable.
        cancel: threading.Event or callable; stops between batches, keeping checkpoints.
        surface: Also compute MSD and HD95.

    Raises:
        SpineInputError: fewer cases than folds, a stored split naming unknown cases,
            or an unknown fold number.
    """
    out = Path(out_dir)
    ids = [c.case_id for c in cases]
    if len(set(ids)) < folds:
        raise SpineInputError(out, f"{len(set(ids))} cases are fewer than the {folds} folds")
    out.mkdir(parents=True, exist_ok=True)
    splits = load_or_write_splits(out / SPLITS_FILE, lambda: kfold_splits(ids, folds, n_val, split_seed), ids)
    if not isinstance(splits, list) or len(splits) != folds:
        raise SpineInputError(out / SPLITS_FILE, f"holds {len(splits)} folds, not {folds}; use another folder")
    wanted = list(range(1, folds + 1)) if only_folds is None else sorted(set(only_folds))
    bad = [k for k in wanted if not 1 <= k <= folds]
    if bad:
        raise SpineInputError(None, f"fold numbers {bad} are outside 1..{folds}")
    cache = Path(cache_dir) if cache_dir else out / "cache"
    # Under torchrun every process trains; only rank 0 scores and writes.
    is_main = is_main_process()

    def fold_dir(fold: Fold) -> Path:
        return out / f"fold_{fold.number}"

    def train_fold(fold: Fold, relay) -> TrainResult:
        return train(config, fold.train, fold.val, fold_dir(fold), progress=relay, cancel=cancel,
                     resume=True, cache_dir=cache, version=f"cv-fold-{fold.number}",
                     trained_on=f"cross-validation {fold.label}: {len(fold.train)} training cases")

    def score(fold: Fold, result: TrainResult, relay) -> None:
        if not is_main:
            return
        model, manifest = load_model(result.weights_dir, "cpu")
        rows = evaluate_model(model, manifest, fold.held_out, resolve_device(config.device), surface=surface,
                              progress=relay)
        write_json_atomic([_finite({"fold": fold.number, **r}) for r in rows], fold_dir(fold) / FOLD_METRICS_FILE)

    # A fold with its test scores is done and is not retrained.
    to_run = [fold for fold in folds_from_splits(cases, splits)
              if fold.number in wanted and not (fold_dir(fold) / FOLD_METRICS_FILE).is_file()]
    cancelled = run_folds(to_run, train_fold, score, progress, stage="cv").cancelled
    rows, done = [], []
    for fold in range(1, folds + 1):
        path = out / f"fold_{fold}" / FOLD_METRICS_FILE
        if path.is_file():
            rows.extend(_read_rows(path))
            done.append(fold)
    report_path = None
    if rows and is_main:
        notes = [f"Model {config.model}, width {config.width}, {config.epochs} epochs, batch {config.batch_size}, "
                 f"lr {config.lr}; folds finished: {done} of {folds}; splits: {SPLITS_FILE} (seed {split_seed})."]
        report_path = write_report(rows, out, title=f"{folds}-fold cross-validation", notes=notes)
    return CVSummary(report_path, rows, done, cancelled)
