"""Fine-tune the current model on the corrected-case store, and promote it only when the evidence says it helps.

One run:

1. group the cases by patient (:mod:`SAFNetSpineLib.stores.patients`: the recorded patient id, else identical
   image grids taken as one exam) and choose how to judge the new version
   (``FinetuneConfig.promotion``): for a store of up to 30 cases, cross-validation
   (:mod:`.crossval`): the *patients* are dealt into folds, a version is fine-tuned on all
   folds but one and scores the cases of that fold, so every stored case is scored by a
   version that never trained on it nor on another series of its patient, and by the parent;
   for larger stores a hash-chosen share of patients (:func:`SAFNetSpineLib.data.splits.split_cases`);
2. train from the starting weights with the training loop, as long as the store's number of
   patients asks (:func:`.crossval.auto_schedule`), in a temporary folder inside the models
   folder; with cross-validation, the version that is published is trained last, on every case;
3. compare the paired Dice per patient (:mod:`.promotion`): mean change, bootstrap interval
   and confidence, sign test; the version is promoted when there are at least 3 patients and
   the confidence that it helps reaches ``min_confidence``, so no single patient decides;
4. publish it as the next ``NAME-vN`` version folder (atomic rename) with a ``finetune.json``
   summary that says how sure the decision is, and activate it only if it was promoted and the
   model it was compared with is still the active one (:meth:`~SAFNetSpineLib.stores.ModelStore.publishing`, a
   compare-and-swap); otherwise it stays a candidate and the summary says why.

:func:`finetune` runs these as plain steps: :func:`plan_run`, :func:`train_and_score`,
:func:`judge`, then the publication.

Every path is checked before the long work (the models folder must be writable). A cancel
(the ``cancel`` event, set by the CLI's SIGINT/SIGTERM handler) or a crash at any point
before step 4's rename leaves the case store, the version folders and the active model
exactly as they were; a kill during step 4 is completed or undone by the next command that
opens the models folder (:class:`~SAFNetSpineLib.stores.ModelStore`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.cancel import is_cancelled
from SAFNetSpineLib.data.splits import split_cases
from SAFNetSpineLib.errors import SpineInputError
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
from SAFNetSpineLib.finetune.promotion import (
    Decision,
    decide,
    paired_evidence,
    patient_pairs,
    too_few_patients,
)
from SAFNetSpineLib.labels import structure
from SAFNetSpineLib.stores import CaseStore, ModelStore, Publication
from SAFNetSpineLib.stores.patients import PatientGroups, group_by_patient
from SAFNetSpineLib.stores.versions import SUMMARY_FILE
from SAFNetSpineLib.training.crossval import part_progress

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
        decision: The :class:`~.promotion.Verdict` value: "promoted", "dice-dropped", "small-gain",
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
        data["dice_per_structure_before"] = {structure(k).short_name: v
                                             for k, v in self.dice_per_structure_before.items()}
        data["dice_per_structure_after"] = {structure(k).short_name: v for k, v in self.dice_per_structure_after.items()}
        return data


def _check_cancel(cancel) -> None:
    if is_cancelled(cancel):
        raise FinetuneCancelled("fine-tuning cancelled; the case store and the active model are unchanged")


@dataclass(frozen=True)
class Plan:
    """How one run judges its version: the rule, the folds and which cases train and score.

    Attributes:
        rule: "cross-validation", "holdout" or "none" (one patient: nothing can be scored).
        folds: Cross-validation folds (0 otherwise).
        train_ids: Cases the published version trains on.
        val_ids: Cases scored before and after (with cross-validation: every case).
    """

    rule: str
    folds: int
    train_ids: list[str]
    val_ids: list[str]

    @property
    def trainings(self) -> int:
        """Trainings the run makes: one per fold, then the published version."""
        return self.folds + 1


def plan_run(ids: list[str], config: FinetuneConfig, store_folder: Path, groups: PatientGroups) -> Plan:
    """Step 1: cross-validation by patient for small stores (every case trains and is scored), else a
    hash-chosen holdout of patients; a store of one patient is only trained on ("none": nothing
    can be scored by a version that did not see the patient).

    Raises:
        SpineInputError: more folds asked than the store has patients.
    """
    patients = groups.patients
    rule = config.promotion
    if rule == "auto":
        rule = "cross-validation" if len(ids) <= CROSS_VALIDATION_MAX_CASES else "holdout"
    if len(patients) < 2:
        return Plan("none", 0, list(ids), [])
    if rule != "cross-validation":
        # Hash the patient's own id ("exam:<case id>" hashes the case id: a store without patient
        # ids keeps the split it had before patients were recorded).
        _, val_patients = split_cases(list(dict.fromkeys(key.split(":", 1)[1] for key in patients)),
                                      config.val_percent)
        val = {key for key in patients if key.split(":", 1)[1] in set(val_patients)}
        return Plan(rule, 0, [i for i in ids if groups.patient_of[i] not in val],
                    [i for i in ids if groups.patient_of[i] in val])
    folds = int(config.folds) or auto_folds(len(patients))
    if folds > len(patients):
        raise SpineInputError(store_folder, f"{folds} cross-validation folds need at least {folds} "
                                            f"patients; the store has {len(patients)} ({groups.describe()})")
    return Plan(rule, folds, list(ids), list(ids))


@dataclass(frozen=True)
class Trainings:
    """The run's trainings: each from the parent, in the work folder, on one progress bar.

    Attributes:
        config: The recipe.
        parent: The starting weights folder.
        work: The run's work folder (``.tmp-finetune-*`` in the models folder).
        patients: Patients in the store (they set the step budget, :func:`.crossval.auto_schedule`).
        count: Trainings in the run (the progress bar's share of each).
        progress: ``progress(stage, fraction, message, **extra)`` or None.
        cancel: The cancel event (see :func:`SAFNetSpineLib.cancel.is_cancelled`).
    """

    config: FinetuneConfig
    parent: Path
    work: Path
    patients: int
    count: int
    progress: object
    cancel: object

    @property
    def cache_dir(self) -> Path:
        """Preprocessed-case cache shared by every training and scoring of the run."""
        return self.work / "cache"

    def train(self, cases: list, folder: str, relay):
        """Train one version on ``cases`` into ``work/folder``; returns the training's TrainResult.

        Architecture, width and preprocessing come from the parent's manifest; no validation
        cases, so the last epoch is kept (choosing an epoch on the cases that then judge
        promotion would flatter it).

        Args:
            cases: The training cases.
            folder: Its run folder's name in the work folder.
            relay: Its share of the run's progress bar
                (:func:`~SAFNetSpineLib.training.crossval.part_progress`), or None.

        Raises:
            FinetuneCancelled: when the cancel event stopped it.
        """
        from SAFNetSpineLib.training import train

        config = self.config
        epochs, _ = auto_schedule(self.patients, len(cases), config.train.batch_size, config.epochs, config.steps)
        result = train(config.train_config(epochs), cases, [], self.work / folder, init_weights=self.parent,
                       progress=relay, cancel=self.cancel, cache_dir=self.cache_dir,
                       version="candidate")
        _check_cancel(self.cancel)
        if result.cancelled or result.weights_dir is None:
            raise FinetuneCancelled("fine-tuning stopped before an epoch completed; nothing was changed")
        return result

    def last(self, cases: list, label: str):
        """Train the version to publish, the last part of the progress bar, into ``work/train``."""
        return self.train(cases, "train", part_progress(self.progress, self.count - 1, self.count, label))


@dataclass(frozen=True)
class Scored:
    """Step 2's outcome.

    Attributes:
        scores: One :class:`~.crossval.CaseScore` per scored case.
        rows_before: (N, C) Dice of the parent per case and structure (NaN: not reviewed).
        rows_after: (N, C) the same for the versions that did not train on the case.
        weights: The weights folder of the version to publish (in the work folder).
        epochs_run: Epochs of its training.
    """

    scores: list[CaseScore]
    rows_before: np.ndarray
    rows_after: np.ndarray
    weights: Path
    epochs_run: int


def train_and_score(plan: Plan, by_id: dict, parent_version: str, trainings: Trainings, groups: PatientGroups,
                    report) -> Scored:
    """Step 2: train the version (and, with cross-validation, the fold versions) and score before/after."""
    parent, cache_dir, device = trainings.parent, trainings.cache_dir, trainings.config.train.device
    train_cases, val_cases = [by_id[i] for i in plan.train_ids], [by_id[i] for i in plan.val_ids]
    if plan.rule == "cross-validation":
        def train_fold(fold, relay):
            return trainings.train(fold.train, f"fold-{fold.index}", relay)

        report("evaluate", 0.0, f"Dice of {parent_version} on every stored case (before)")
        scores, rows_before, rows_after = score_by_folds(
            val_cases, parent, plan.folds, train_fold, device, cache_dir,
            lambda: _check_cancel(trainings.cancel), groups.patient_of, trainings.progress, plan.trainings)
        result = trainings.last(train_cases, "final version, all cases")
        return Scored(scores, rows_before, rows_after, Path(result.weights_dir), int(result.epochs_run))
    if plan.rule == "none":
        report("evaluate", 0.0, f"Dice of {parent_version} on every stored case")
        rows_before = per_case_rows(parent, train_cases, device, cache_dir)
        _check_cancel(trainings.cancel)
        result = trainings.last(train_cases, "training")
        return Scored([], rows_before, np.full_like(rows_before, np.nan), Path(result.weights_dir),
                      int(result.epochs_run))
    report("evaluate", 0.0, f"validation Dice of {parent_version} (before)")
    rows_before = per_case_rows(parent, val_cases, device, cache_dir)
    _check_cancel(trainings.cancel)
    result = trainings.last(train_cases, "training")
    report("evaluate", 0.0, "validation Dice of the fine-tuned weights (after)")
    rows_after = per_case_rows(Path(result.weights_dir), val_cases, device, cache_dir)
    scores = [CaseScore(i, -1, b, a, groups.patient_of[i]) for i, b, a in
              zip(plan.val_ids, case_means(rows_before), case_means(rows_after), strict=True)]
    return Scored(scores, rows_before, rows_after, Path(result.weights_dir), int(result.epochs_run))


@dataclass(frozen=True)
class Judgement:
    """Step 3's outcome: the promotion decision and what it rests on.

    Attributes:
        decision: The typed decision (:class:`~.promotion.Decision`).
        head: The Dice sentence before it ("validation Dice 0.81 >= 0.79 of safnet-v1 (...)").
        evidence: :class:`~.promotion.PairedEvidence` as a dict ({} when nothing was scored).
    """

    decision: Decision
    head: str
    evidence: dict

    def reason(self, publication: Publication, started_from: str) -> str:
        """The summary's one sentence, given whether the publication could activate the version."""
        if self.decision.promote and not publication.activates:
            return (f"{self.head}: {self.decision.figures}; it helped, but the active model is now "
                    f"{publication.active}, activated while this run trained from {started_from}; kept as candidate")
        return f"{self.head}: {self.decision.sentence}"


def judge(scores: list[CaseScore], parent_version: str, config: FinetuneConfig, groups: PatientGroups) -> Judgement:
    """Step 3: the decision from the paired per-case scores, averaged per patient (:mod:`.promotion`)."""
    if not scores:
        return Judgement(too_few_patients(len(groups.patients)),
                         f"no case could be scored by a version that did not train on its patient "
                         f"({groups.describe()})", {})
    before_p, after_p, _ = patient_pairs(scores)
    evidence = paired_evidence(before_p, after_p, seed=config.train.seed, cases=len(scores))
    before, after = np.mean([s.before for s in scores]), np.mean([s.after for s in scores])
    if after < before - DICE_TOLERANCE:
        head = f"validation Dice dropped from {before:.4f} ({parent_version}) to {after:.4f}"
    else:
        head = f"validation Dice {after:.4f} >= {before:.4f} of {parent_version}"
    decision = decide(evidence, float(config.min_confidence), min_gain=float(config.min_gain))
    return Judgement(decision, f"{head} ({groups.describe()})",
                     evidence.to_dict())


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
    """Fine-tune from ``from_weights`` on the store's cases; promote only if the per-patient evidence says it helps.

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
        **changes: Settings replacing those of ``config`` (:meth:`FinetuneConfig.replace`: its own
            fields or its training recipe's, ``finetune(store, None, models, epochs=5, lr=2e-4)``).

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
    config = (config or FinetuneConfig()).replace(**changes)
    resolve_device(config.train.device)  # refuse a device this machine lacks before any work
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
    # The publication activates the version only if this is still the active model then.
    active_at_start = model_store.active_name()
    parent_folder = Path(from_weights) if from_weights is not None else model_store.active()
    parent = read_manifest(parent_folder)  # label table, files present: errors name the folder
    by_id = {case.case_id: case.to_case() for case in stored}
    groups = group_by_patient(stored)
    plan = plan_run(list(by_id), config, case_store.folder, groups)
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
        trainings = Trainings(config, parent_folder, work, len(groups.patients), plan.trainings, progress, cancel)
        scored = train_and_score(plan, by_id, parent.version, trainings, groups, report)
        _check_cancel(cancel)
        judgement = judge(scored.scores, parent.version, config, groups)
        dice_before = float(np.mean([c.before for c in scored.scores] or case_means(scored.rows_before)))
        dice_after = float(np.mean([c.after for c in scored.scores])) if scored.scores else None
        report("evaluate", 1.0, f"mean Dice before {dice_before:.4f}, after "
                                f"{'not scored' if dice_after is None else f'{dice_after:.4f}'}")
        trained, trained_manifest = load_model(scored.weights)
        _check_cancel(cancel)
        report("finetune", 0.95, "writing the new version")
        # Step 4, in one hold of the models folder's lock: name, compare-and-swap, write, rename, activate.
        wanted = active_at_start if judgement.decision.promote else None
        with model_store.publishing(config.name or parent.architecture, activate_if_active=wanted) as publication:
            result = FinetuneResult(
                version=publication.name, folder=model_store.models_dir / publication.name,
                promoted=publication.activates, status="promoted" if publication.activates else "candidate",
                reason=judgement.reason(publication, active_at_start), dice_before=dice_before, dice_after=dice_after,
                dice_per_structure_before=structure_means(scored.rows_before),
                dice_per_structure_after=structure_means(scored.rows_after), parent=parent.version,
                parent_folder=parent_folder.resolve(), train_cases=plan.train_ids, val_cases=plan.val_ids,
                epochs_run=scored.epochs_run, seconds=round(time.perf_counter() - started, 2),
                config=config.to_dict(), promotion=plan.rule, folds=plan.folds,
                confidence=float(judgement.evidence.get("confidence", 0.0)), evidence=judgement.evidence,
                per_case=[c.to_dict() for c in scored.scores],
                schedule={"trainings": plan.trainings, "epochs": scored.epochs_run,
                          "steps": scored.epochs_run * -(-len(plan.train_ids) // int(config.train.batch_size))},
                decision=judgement.decision.verdict.value, patients=len(groups.patients),
                patient_grouping=groups.describe(), patient_grouping_guessed=bool(groups.guessed),
            )
            manifest = replace(
                trained_manifest, version=publication.name, parent_version=parent.version,
                trained_on=(f"fine-tuned from {parent.version} on {len(plan.train_ids)} corrected case(s) "
                            f"of {case_store.folder.resolve()}"),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                metrics={"val_dice_before": dice_before, "val_dice_after": dice_after,
                         "val_cases": len(plan.val_ids), "train_cases": len(plan.train_ids),
                         "promotion": plan.rule, "confidence": result.confidence,
                         "patients": len(groups.patients)},
                sha256="",
            )
            save_weights(trained, publication.folder, manifest)
            write_json_atomic(result.to_dict(), publication.folder / SUMMARY_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("finetune", 1.0, result.reason)
    return result
