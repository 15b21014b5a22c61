"""The one cross-validation driver: deal the folds, train each on one progress bar, score what it held out.

Both kinds of cross-validation run their folds through :func:`run_folds`:

* ``cv`` (:func:`SAFNetSpineLib.training.cv.cross_validate`): the paper's k folds of a fixed
  dataset (:func:`~SAFNetSpineLib.data.splits.kfold_splits`, :func:`folds_from_splits`), each
  training from scratch and tested on its test cases;
* fine-tuning (:func:`SAFNetSpineLib.finetune.crossval.score_by_folds`): the patients of a small
  case store dealt into folds (:func:`deal_folds`), each fold fine-tuned on the others and scoring
  its own cases.

The callers say how a fold trains and how it is scored; the driver walks the folds, gives each
training a relay (:func:`part_progress`) that maps its fractions into the whole run, stops when a
training was cancelled, and collects the per-fold results. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from SAFNetSpineLib.data.cases import Case

if TYPE_CHECKING:
    from SAFNetSpineLib.training.loop import TrainResult

T = TypeVar("T")

#: ``progress(stage, fraction, message, **extra)``, as :class:`SAFNetSpineLib.progress.Progress` takes it.
ProgressFn = Callable[..., None]


@dataclass(frozen=True)
class Fold:
    """One fold: the cases its version trains and validates on, and those it held out.

    Attributes:
        index: 0-based position among the folds.
        count: Number of folds.
        train: Cases the fold's version trains on.
        val: Cases it validates on while training (choice of epoch; may be empty).
        held_out: Cases scored by the fold's version (never trained or validated on).
    """

    index: int
    count: int
    train: list[Case]
    val: list[Case]
    held_out: list[Case]

    @property
    def number(self) -> int:
        """1-based fold number, as reports and folder names give it."""
        return self.index + 1

    @property
    def label(self) -> str:
        """"fold K/N" for progress messages."""
        return f"fold {self.number}/{self.count}"


def folds_from_splits(cases: Sequence[Case], splits: Sequence[Mapping[str, Sequence[str]]]) -> list[Fold]:
    """The folds of stored k-fold splits (one ``{"train", "val", "test"}`` id lists per fold, ``splits.json``).

    Raises:
        KeyError: a split naming a case that is not in ``cases`` (check with
            :func:`~SAFNetSpineLib.data.splits.load_or_write_splits` first).
    """
    by_id = {case.case_id: case for case in cases}
    return [Fold(index, len(splits), [by_id[c] for c in split["train"]], [by_id[c] for c in split["val"]],
                 [by_id[c] for c in split["test"]]) for index, split in enumerate(splits)]


def deal_folds(cases: Sequence[Case], fold_of: Mapping[str, int], count: int) -> list[Fold]:
    """The folds of a case-to-fold assignment: each fold holds out its own cases and trains on the rest.

    Args:
        cases: Every case, in the order the held-out lists keep.
        fold_of: {case id: 0-based fold}, e.g. :func:`SAFNetSpineLib.data.splits.assign_folds`.
        count: Number of folds.
    """
    return [Fold(index, count, [c for c in cases if fold_of[c.case_id] != index], [],
                 [c for c in cases if fold_of[c.case_id] == index]) for index in range(count)]


def part_progress(progress: ProgressFn | None, index: int, count: int, label: str, *, stage: str | None = None,
                  **fixed) -> ProgressFn | None:
    """A relay for part ``index`` (0-based) of ``count`` equal parts of one run's progress bar.

    A fraction ``f`` reported by the part becomes ``(index + f) / count``, its message is
    prefixed with ``label`` and the inner stage ("fold 2/3 train: epoch 4/10 ...").

    Args:
        progress: The run's ``progress(stage, fraction, message, **extra)``, or None (then None).
        index: The part's 0-based position.
        count: Parts on the bar.
        label: The part's name in messages.
        stage: Report every inner stage under this name (None keeps the inner stage).
        **fixed: Extra fields added to every report (``fold=2``).
    """
    if progress is None:
        return None

    def forward(inner: str, fraction: float, message: str = "", **extra) -> None:
        progress(stage or inner, (index + fraction) / count, f"{label} {inner}: {message}", **fixed, **extra)

    return forward


@dataclass
class FoldRun(Generic[T]):
    """Outcome of :func:`run_folds`.

    Attributes:
        results: {fold index: the caller's score} of every fold that trained to the end, in fold order.
        cancelled: True when a fold's training was cancelled (the folds after it did not run).
    """

    results: dict[int, T] = field(default_factory=dict)
    cancelled: bool = False


def run_folds(
    folds: Sequence[Fold],
    train_fold: Callable[[Fold, ProgressFn | None], TrainResult],
    score: Callable[[Fold, TrainResult, ProgressFn | None], T],
    progress: ProgressFn | None = None,
    *,
    parts: int | None = None,
    stage: str | None = None,
) -> FoldRun[T]:
    """Train each fold, then score it; stop at the first cancelled training.

    Args:
        folds: The folds to run now (e.g. the unfinished ones).
        train_fold: ``train_fold(fold, relay) -> TrainResult`` trains the fold's version (the
            caller's recipe, folder and cancel event); a result with ``cancelled`` set stops the run.
        score: ``score(fold, train_result, relay) -> T`` scores the fold's held-out cases.
        progress: The run's progress callable, or None.
        parts: Parts of the progress bar (default the folds' count; more when the caller trains
            further versions on the same bar).
        stage: Report every stage of a fold under this name (None keeps the inner stages).

    Returns:
        The per-fold scores and whether the run was cancelled.
    """
    run: FoldRun[T] = FoldRun()
    for fold in folds:
        relay = part_progress(progress, fold.index, parts or fold.count, fold.label, stage=stage, fold=fold.number)
        result = train_fold(fold, relay)
        if result.cancelled:
            run.cancelled = True
            break
        run.results[fold.index] = score(fold, result, relay)
    return run
