"""Fine-tune the current model on the corrected-case store, and promote it only when the evidence says it helps.

One run:

1. group the cases by patient (:mod:`.patients`: the recorded patient id, else identical
   image grids taken as one exam) and choose how to judge the new version
   (``FinetuneConfig.promotion``): for a store of up to 30 cases, cross-validation
   (:mod:`.crossval`): the *patients* are dealt into folds, a version is fine-tuned on all
   folds but one and scores the cases of that fold, so every stored case is scored by a
   version that never trained on it nor on another series of its patient, and by the parent;
   for larger stores a hash-chosen share of patients (:mod:`.validation_split`);
2. train from the starting weights with the training loop, as long as the store's number of
   patients asks (:func:`.crossval.auto_schedule`), in a temporary folder inside the models
   folder; with cross-validation, the version that is published is trained last, on every case;
3. compare the paired Dice per patient (:mod:`.promotion`): mean change, bootstrap interval
   and confidence, sign test; the version is promoted when there are at least 3 patients and
   the confidence that it helps reaches ``min_confidence``, so no single patient decides;
4. publish it as the next ``NAME-vN`` version folder (atomic rename) with a ``finetune.json``
   summary that says how sure the decision is, and activate it only if it was promoted;
   otherwise it stays a candidate and the summary says why.

Every path is checked before the long work (the models folder must be writable). A cancel
(the ``cancel`` event, set by the CLI's SIGINT/SIGTERM handler) or a crash at any point
before step 4's rename leaves the case store, the version folders and the active model
exactly as they were; a kill during step 4 is completed or undone by the next command that
opens the models folder (:class:`.model_store.ModelStore`).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.cancel import is_cancelled
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune.case_store import CaseStore
from SAFNetSpineLib.finetune.config import FinetuneConfig
from SAFNetSpineLib.finetune.crossval import (
    CROSS_VALIDATION_MAX_CASES,
    CaseScore,
    auto_folds,
    auto_schedule,
    case_means,
    per_case_rows,
    score_by_folds,
    structure_means,
)
from SAFNetSpineLib.finetune.model_store import SUMMARY_FILE, ModelStore, Promotion
from SAFNetSpineLib.finetune.patients import PatientGroups, group_by_patient
from SAFNetSpineLib.finetune.promotion import (
    Decision,
    decide,
    paired_evidence,
    patient_pairs,
    too_few_patients,
)
from SAFNetSpineLib.finetune.validation_split import split_cases
from SAFNetSpineLib.labels import structure

#: Validation Dice may not fall by more than this (absorbs float round-off only).
DICE_TOLERANCE = 1e-9


class FinetuneCancelled(Exception):
    """Raised when the cancel event is set; nothing was changed."""


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of one fine-tuning run (also written as the version's ``finetune.json``).

    Attributes:
        version: Name of the new version folder ("safnet-v3").
        folder: The new weights folder.
        promoted: True if it became the active model.
        status: "promoted" or "candidate".
        reason: One sentence saying why it was (not) promoted.
        dice_before: Mean over the validation cases of the starting weights' Dice per case (each
            case's mean over its reviewed structures; 0..1).
        dice_after: The same for the fine-tuned weights; with cross-validation each case is
            scored by the fold version that did not train on its patient. None when a store
            of one patient leaves no case to score.
        dice_per_structure_before: {label id: mean Dice} over validation cases annotating it.
        dice_per_structure_after: Same for the fine-tuned weights.
        parent: Version name of the starting weights.
        parent_folder: The starting weights folder.
        train_cases: Case ids the published version was trained on.
        val_cases: Case ids scored before and after (with cross-validation: every case).
        epochs_run: Epochs the training loop ran for the published version.
        seconds: Wall time of the whole run.
        config: The FinetuneConfig as a dict.
        promotion: "cross-validation", "holdout" or "none" (one patient: nothing scored): how
            ``dice_after`` was measured.
        folds: Cross-validation folds (0 for holdout).
        confidence: Bootstrap confidence (0..1) that the per-case Dice change is positive.
        evidence: :class:`~.promotion.PairedEvidence` as a dict (patients, cases, improvement,
            ci90, confidence, sign_test_p, wins, losses, ties), taken over patients; {} when
            nothing was scored.
        per_case: One dict per scored case: case_id, patient, fold (-1 for holdout), before, after,
            difference.
        schedule: {"trainings": models trained, "epochs": of the published version's training,
            "steps": its optimiser steps}.
        decision: The :class:`~.promotion.Verdict` value: "promoted", "dice-dropped",
            "low-confidence" or "too-few-patients" (before the models folder's final say,
            which ``status`` records).
        patients: Distinct patients in the store.
        patient_grouping: One sentence on the grouping, saying when it was guessed.
        patient_grouping_guessed: True when some case had no patient id (grouped by image grid).
    """

    version: str
    folder: Path
    promoted: bool
    status: str
    reason: str
    dice_before: float
    dice_after: float | None
    dice_per_structure_before: dict[int, float]
    dice_per_structure_after: dict[int, float]
    parent: str
    parent_folder: Path
    train_cases: list[str]
    val_cases: list[str]
    epochs_run: int
    seconds: float
    config: dict = field(default_factory=dict)
    promotion: str = "holdout"
    folds: int = 0
    confidence: float = 0.0
    evidence: dict = field(default_factory=dict)
    per_case: list = field(default_factory=list)
    schedule: dict = field(default_factory=dict)
    decision: str = ""
    patients: int = 0
    patient_grouping: str = ""
    patient_grouping_guessed: bool = False

    def to_dict(self) -> dict:
        """JSON-able summary (paths as text, per-structure keys as short names: "L4", "L4/L5")."""
        data = asdict(self)
        data["folder"] = str(self.folder)
        data["parent_folder"] = str(self.parent_folder)
        for key in ("dice_per_structure_before", "dice_per_structure_after"):
            data[key] = {structure(k).short_name: v for k, v in getattr(self, key).items()}
        return data


def _check_cancel(cancel) -> None:
    if is_cancelled(cancel):
        raise FinetuneCancelled("fine-tuning cancelled; the case store and the active model are unchanged")


def validation_scores(
    weights_dir: Path, cases: list, device: str, cache_dir: Path | None, progress=None
) -> tuple[float, dict]:
    """Mean Dice of a weights folder on cases, in network space, over each case's annotated structures.

    Args:
        weights_dir: Weights folder (its manifest's preprocessing is applied to the cases).
        cases: :class:`~SAFNetSpineLib.data.cases.Case` entries.
        device: Torch device string (see :func:`SAFNetSpineLib.runtime.resolve_device`).
        cache_dir: Preprocessed-case cache folder, or None.
        progress: Optional ``progress(stage, fraction, message)`` for the preprocessing.

    Returns:
        (mean Dice over every (case, annotated structure) pair with a defined Dice,
        {label id: mean Dice over the cases where it is defined}). A reviewed structure
        absent from both the label map and the prediction has no Dice and is left out
        (as in the training loop's validation); if that leaves nothing, the score is
        1.0: the model drew none of the structures the annotator confirmed absent.
    """
    # torch-heavy: this package is imported by the Slicer GUI process, which must not load torch.
    from SAFNetSpineLib.runtime import resolve_device
    from SAFNetSpineLib.training.cache import preprocess_cases
    from SAFNetSpineLib.training.dataset import validation_dice
    from SAFNetSpineLib.weights import load_model

    torch_device = resolve_device(device)
    model, manifest = load_model(weights_dir, device=torch_device)
    prepared = preprocess_cases(cases, manifest.preprocess, cache_dir, progress)
    dice = validation_dice(model, prepared, torch_device, contextlib.nullcontext)  # (N, C), NaN = undefined
    if not np.isfinite(dice).any():
        return 1.0, {}
    per_structure = {
        int(c): float(np.nanmean(dice[:, c])) for c in range(dice.shape[1]) if np.isfinite(dice[:, c]).any()
    }
    return float(np.nanmean(dice)), per_structure


def _promotion(scores: list[CaseScore], parent_version: str, config: FinetuneConfig,
               groups: PatientGroups) -> tuple[Decision, str, dict]:
    """(the decision, the sentence before it, the evidence as a dict) from paired per-case scores."""
    if not scores:
        return (too_few_patients(len(groups.patients)),
                f"no case could be scored by a version that did not train on its patient "
                f"({groups.describe()})", {})
    before_p, after_p, _ = patient_pairs(scores)
    evidence = paired_evidence(before_p, after_p, seed=config.seed, cases=len(scores))
    decision = decide(evidence, float(config.min_confidence))
    before, after = np.mean([s.before for s in scores]), np.mean([s.after for s in scores])
    if after < before - DICE_TOLERANCE:
        head = f"validation Dice dropped from {before:.4f} ({parent_version}) to {after:.4f}"
    else:
        head = f"validation Dice {after:.4f} >= {before:.4f} of {parent_version}"
    return decision, f"{head} ({groups.describe()})", evidence.to_dict()


@dataclass(frozen=True)
class _Plan:
    """How one run judges its version: the rule, the folds and which cases train and score."""

    rule: str
    folds: int
    train_ids: list[str]
    val_ids: list[str]

    @property
    def trainings(self) -> int:
        return self.folds + 1


def _plan(ids: list[str], config: FinetuneConfig, store_folder: Path, groups: PatientGroups) -> _Plan:
    """Cross-validation by patient for small stores (every case trains and is scored), else a
    hash-chosen holdout of patients; a store of one patient is only trained on ("none": nothing
    can be scored by a version that did not see the patient)."""
    patients = groups.patients
    rule = config.promotion
    if rule == "auto":
        rule = "cross-validation" if len(ids) <= CROSS_VALIDATION_MAX_CASES else "holdout"
    if len(patients) < 2:
        return _Plan("none", 0, list(ids), [])
    if rule != "cross-validation":
        # Hash the patient's own id ("exam:<case id>" hashes the case id: a store without patient
        # ids keeps the split it had before patients were recorded).
        _, val_patients = split_cases(list(dict.fromkeys(key.split(":", 1)[1] for key in patients)),
                                      config.val_percent)
        val = {key for key in patients if key.split(":", 1)[1] in set(val_patients)}
        return _Plan(rule, 0, [i for i in ids if groups.patient_of[i] not in val],
                     [i for i in ids if groups.patient_of[i] in val])
    folds = int(config.folds) or auto_folds(len(patients))
    if folds > len(patients):
        raise SpineInputError(store_folder, f"{folds} cross-validation folds need at least {folds} "
                                            f"patients; the store has {len(patients)} ({groups.describe()})")
    return _Plan(rule, folds, list(ids), list(ids))


class _Trainer:
    """Runs a run's trainings in its work folder, from the parent weights, as one progress bar over all."""

    def __init__(self, config: FinetuneConfig, n_store: int, parent_folder: Path, base: str, work: Path,
                 trainings: int, progress, cancel):
        self.config, self.n_store, self.parent_folder, self.base = config, n_store, parent_folder, base
        self.work, self.trainings, self.progress, self.cancel = work, trainings, progress, cancel

    @property
    def cache_dir(self) -> Path:
        """Preprocessed-case cache shared by every training and scoring of the run."""
        return self.work / "cache"

    def _relay(self, index: int, label: str):
        if self.progress is None:
            return None

        def forward(stage, fraction, message="", **extra):
            if stage == "train":
                self.progress(stage, (index + fraction) / self.trainings, f"{label}: {message}", **extra)
            else:
                self.progress(stage, fraction, message, **extra)

        return forward

    def __call__(self, cases: list, folder: str, index: int, label: str):
        """Train one version on ``cases`` into ``work/folder``; returns the training's result."""
        from SAFNetSpineLib.training import TrainConfig, train

        config = self.config
        # Architecture, width and preprocessing come from the starting weights' manifest; no
        # validation cases, so the last epoch is kept (choosing an epoch on the cases that
        # then judge promotion would flatter it).
        epochs, _ = auto_schedule(self.n_store, len(cases), config.batch_size, config.epochs, config.steps)
        train_config = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                                   dice_loss_weight=config.dice_loss_weight,
                                   below_lumbar_weight=config.below_lumbar_weight,
                                   augment=config.augment, device=config.device, seed=config.seed,
                                   precision=config.precision)
        result = train(train_config, cases, [], self.work / folder, init_weights=self.parent_folder,
                       progress=self._relay(index, label), cancel=self.cancel, cache_dir=self.cache_dir,
                       version=f"{self.base}-candidate")
        _check_cancel(self.cancel)
        if result.cancelled or result.weights_dir is None:
            raise FinetuneCancelled("fine-tuning stopped before an epoch completed; nothing was changed")
        return result


def _train_and_score(plan: _Plan, by_id: dict, parent_version: str, trainer: _Trainer, report,
                     groups: PatientGroups):
    """Train the version (and, with cross-validation, the fold versions) and score before/after.

    Returns:
        (per-case scores, per-structure rows before, rows after, the published version's training result).
    """
    parent_folder, cache_dir, device = trainer.parent_folder, trainer.cache_dir, trainer.config.device
    if plan.rule == "cross-validation":
        def train_fold(cases, fold, count):
            return Path(trainer(cases, f"fold-{fold}", fold, f"fold {fold + 1}/{count}").weights_dir)

        report("evaluate", 0.0, f"Dice of {parent_version} on every stored case (before)")
        scores, rows_before, rows_after = score_by_folds(
            [by_id[i] for i in plan.val_ids], parent_folder, plan.folds, train_fold, device, cache_dir,
            lambda: _check_cancel(trainer.cancel), groups.patient_of)
        result = trainer([by_id[i] for i in plan.train_ids], "train", plan.folds, "final version, all cases")
        return scores, rows_before, rows_after, result
    if plan.rule == "none":
        report("evaluate", 0.0, f"Dice of {parent_version} on every stored case")
        rows_before = per_case_rows(parent_folder, [by_id[i] for i in plan.train_ids], device, cache_dir)
        _check_cancel(trainer.cancel)
        result = trainer([by_id[i] for i in plan.train_ids], "train", 0, "training")
        return [], rows_before, np.full_like(rows_before, np.nan), result
    val_cases = [by_id[i] for i in plan.val_ids]
    report("evaluate", 0.0, f"validation Dice of {parent_version} (before)")
    rows_before = per_case_rows(parent_folder, val_cases, device, cache_dir)
    _check_cancel(trainer.cancel)
    result = trainer([by_id[i] for i in plan.train_ids], "train", 0, "training")
    report("evaluate", 0.0, "validation Dice of the fine-tuned weights (after)")
    rows_after = per_case_rows(Path(result.weights_dir), val_cases, device, cache_dir)
    scores = [CaseScore(i, -1, b, a, groups.patient_of[i]) for i, b, a in
              zip(plan.val_ids, case_means(rows_before), case_means(rows_after), strict=True)]
    return scores, rows_before, rows_after, result


def _outcome(plan: _Plan, scores: list[CaseScore], rows_before: np.ndarray, rows_after: np.ndarray,
             epochs_run: int, parent_version: str, parent_folder: Path, config: FinetuneConfig,
             groups: PatientGroups) -> tuple[FinetuneResult, Decision, str]:
    """The run's result before it has a version name, the promotion decision, and the sentence before it."""
    decision, head, evidence = _promotion(scores, parent_version, config, groups)
    before = [c.before for c in scores] or case_means(rows_before)
    result = FinetuneResult(
        version="", folder=Path(), promoted=decision.promote, status="promoted" if decision.promote else "candidate",
        reason=f"{head}: {decision.sentence}", dice_before=float(np.mean(before)),
        dice_after=float(np.mean([c.after for c in scores])) if scores else None,
        dice_per_structure_before=structure_means(rows_before), dice_per_structure_after=structure_means(rows_after),
        parent=parent_version, parent_folder=parent_folder.resolve(), train_cases=plan.train_ids,
        val_cases=plan.val_ids, epochs_run=epochs_run, seconds=0.0, config=config.to_dict(), promotion=plan.rule,
        folds=plan.folds, confidence=float(evidence.get("confidence", 0.0)), evidence=evidence,
        per_case=[c.to_dict() for c in scores],
        schedule={"trainings": plan.trainings, "epochs": epochs_run,
                  "steps": epochs_run * -(-len(plan.train_ids) // int(config.batch_size))},
        decision=decision.verdict.value, patients=len(groups.patients), patient_grouping=groups.describe(),
        patient_grouping_guessed=bool(groups.guessed),
    )
    return result, decision, head


def _named(outcome: FinetuneResult, evidence: Decision, head: str, version_name: str, decision: Promotion,
           models_dir: Path, started: float) -> FinetuneResult:
    """The run's result under its published name, with the models folder's final say on promotion."""
    lost = outcome.promoted and not decision.promoted  # better than its start, but the active model changed
    reason = f"{head}: {evidence.figures}; it helped, but {decision.reason}" if lost else outcome.reason
    return replace(outcome, version=version_name, folder=models_dir / version_name,
                   seconds=round(time.perf_counter() - started, 2), promoted=decision.promoted,
                   status="promoted" if decision.promoted else "candidate", reason=reason)


def finetune(
    store: CaseStore | str | Path,
    from_weights: str | Path | None,
    models_dir: str | Path,
    config: FinetuneConfig | None = None,
    *,
    bundled_dir: str | Path | None = None,
    progress=None,
    cancel=None,
    **changes,
) -> FinetuneResult:
    """Fine-tune from ``from_weights`` on the store's cases; promote only if the per-case evidence says it helps.

    Args:
        store: The corrected-case store (or its folder).
        from_weights: Starting weights folder; None uses the models folder's active
            version (the bundled default when none is active).
        models_dir: Folder of model versions; the new ``NAME-vN`` folder goes here.
        config: The recipe (default ``FinetuneConfig()``).
        bundled_dir: Bundled default weights (defaults to the package's).
        progress: ``progress(stage, fraction, message)`` callable, e.g. a Progress.
        cancel: ``threading.Event`` (or callable returning bool) checked between steps and,
            by the training loop, between batches.
        **changes: :class:`FinetuneConfig` fields replacing those of ``config``
            (``finetune(store, None, models, epochs=5)``).

    Returns:
        The run's :class:`FinetuneResult`.

    Raises:
        SpineInputError: fewer than 2 cases, unusable weights (e.g. another label table),
            bad settings or device, or a stored case whose files changed.
        FinetuneCancelled: when ``cancel`` was set; nothing was changed.
    """
    # torch-heavy: this package is imported by the Slicer GUI process, which must not load torch.
    from SAFNetSpineLib.runtime import resolve_device
    from SAFNetSpineLib.weights import load_model, read_manifest, save_weights

    started = time.perf_counter()
    config = replace(config or FinetuneConfig(), **changes)
    resolve_device(config.device)  # refuse a device this machine lacks before any work
    report = progress or (lambda *args, **kwargs: None)
    case_store = store if isinstance(store, CaseStore) else CaseStore(store)
    model_store = ModelStore(models_dir, bundled_dir=bundled_dir)
    model_store.check_writable()  # a read-only or impossible models folder fails now, not after the training
    case_store.clean_leftovers()

    stored = case_store.list()
    if len(stored) < 2:
        raise SpineInputError(
            case_store.folder,
            f"fine-tuning needs at least 2 corrected cases (1 to train, 1 to validate); "
            f"the store has {len(stored)}",
        )
    for case in stored:
        case.verify()
    # Promotion re-checks, under the models folder's lock, that this is still the active model.
    active_at_start = model_store.active_name()
    parent_folder = Path(from_weights) if from_weights is not None else model_store.active()
    parent = read_manifest(parent_folder)  # label table, files present: errors name the folder
    base = config.name or parent.architecture
    by_id = {case.case_id: case.to_case() for case in stored}
    groups = group_by_patient(stored)
    plan = _plan(list(by_id), config, case_store.folder, groups)
    if plan.rule == "cross-validation":
        report("finetune", 0.0, f"{groups.describe()}, {plan.folds}-fold cross-validation by patient, "
                                "then one version on all cases")
    elif plan.rule == "none":
        report("finetune", 0.0, f"{groups.describe()}: no patient left to score; training one candidate")
    else:
        report("finetune", 0.0, f"{len(plan.train_ids)} training / {len(plan.val_ids)} validation cases")
    _check_cancel(cancel)

    model_store.remove_stale_work_folders()
    work = model_store.make_work_folder()
    try:
        trainer = _Trainer(config, len(groups.patients), parent_folder, base, work, plan.trainings, progress, cancel)
        scores, rows_before, rows_after, result = _train_and_score(plan, by_id, parent.version, trainer, report,
                                                                   groups)
        _check_cancel(cancel)
        outcome, verdict, head = _outcome(plan, scores, rows_before, rows_after, int(result.epochs_run),
                                          parent.version, parent_folder, config, groups)
        dice_before, dice_after, evidence = outcome.dice_before, outcome.dice_after, outcome.evidence
        after_text = "not scored" if dice_after is None else f"{dice_after:.4f}"
        report("evaluate", 1.0, f"mean Dice before {dice_before:.4f}, after {after_text}")
        trained, trained_manifest = load_model(Path(result.weights_dir))

        def write_version(folder: Path, version_name: str, decision: Promotion) -> None:
            manifest = replace(
                trained_manifest, version=version_name, parent_version=parent.version,
                trained_on=(f"fine-tuned from {parent.version} on {len(plan.train_ids)} corrected case(s) "
                            f"of {case_store.folder.resolve()}"),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                metrics={"val_dice_before": dice_before, "val_dice_after": dice_after,
                         "val_cases": len(plan.val_ids), "train_cases": len(plan.train_ids),
                         "promotion": plan.rule, "confidence": float(evidence.get("confidence", 0.0)),
                         "patients": len(groups.patients)},
                sha256="",
            )
            save_weights(trained, folder, manifest)
            summary = _named(outcome, verdict, head, version_name, decision, model_store.models_dir, started)
            write_json_atomic(summary.to_dict(), folder / SUMMARY_FILE)

        _check_cancel(cancel)
        report("finetune", 0.95, "writing the new version")
        # One hold of the models folder's lock: re-check the active model, publish, activate. A run
        # that started from a model another run has since replaced stays a candidate (scoring the
        # replacement on these cases would not be fair: it may have been trained on them).
        version_name, decision = model_store.publish_and_promote(
            base, write_version, dice_after, active_at_start, score_of_active=None, eligible=outcome.promoted)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    final = _named(outcome, verdict, head, version_name, decision, model_store.models_dir, started)
    report("finetune", 1.0, final.reason)
    return final
