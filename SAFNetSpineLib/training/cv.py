"""Cross-validation as in the SAFNet paper: k folds of train / validation / test, then a report.

``OUT/splits.json`` is written once (seeded) and reused, so a re-run or a run split over
several machines (``only_folds``) tests exactly the same cases. Each fold trains in
``OUT/fold_K/`` (resumable), and its test scores are kept in ``OUT/fold_K/test_metrics.json``;
a fold with that file is done and is not retrained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.evaluation import evaluate_model
from SAFNetSpineLib.evaluation.report import write_report
from SAFNetSpineLib.runtime import resolve_device
from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.distributed import is_main_process
from SAFNetSpineLib.training.loop import train
from SAFNetSpineLib.training.splits import kfold_splits, load_or_write_splits
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


def _fold_progress(progress, fold: int, folds: int):
    if progress is None:
        return None

    def report(stage: str, fraction: float, message: str = "", **extra) -> None:
        progress("cv", ((fold - 1) + fraction) / folds, f"fold {fold}/{folds} {stage}: {message}", fold=fold, **extra)

    return report


def _finite(row: dict) -> dict:
    """JSON-safe row (NaN as null)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _read_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
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
    by_id = {c.case_id: c for c in cases}
    cache = Path(cache_dir) if cache_dir else out / "cache"
    cancelled = False
    # Under torchrun every process trains; only rank 0 scores and writes.
    is_main = is_main_process()
    for fold in wanted:
        fold_dir = out / f"fold_{fold}"
        if (fold_dir / FOLD_METRICS_FILE).is_file():
            continue
        split = splits[fold - 1]
        report = _fold_progress(progress, fold, folds)
        result = train(config, [by_id[c] for c in split["train"]], [by_id[c] for c in split["val"]], fold_dir,
                       progress=report, cancel=cancel, resume=True, cache_dir=cache, version=f"cv-fold-{fold}",
                       trained_on=f"cross-validation fold {fold}/{folds}: {len(split['train'])} training cases")
        if result.cancelled:
            cancelled = True
            break
        if not is_main:
            continue
        model, manifest = load_model(result.weights_dir, "cpu")
        device = resolve_device(config.device)
        rows = evaluate_model(model, manifest, [by_id[c] for c in split["test"]], device, surface=surface,
                              progress=report)
        write_json_atomic([_finite({"fold": fold, **r}) for r in rows], fold_dir / FOLD_METRICS_FILE)
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
