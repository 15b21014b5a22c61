"""Fine-tune the current model on the corrected-case store, and promote it only if it did not get worse.

One run:

1. split the store into training and validation cases (:mod:`.split`: stable as the
   store grows, so validation cases were never trained on by an earlier run);
2. score the starting weights on the validation cases (mean Dice over the reviewed
   structures, in network space);
3. train from the starting weights with the training loop (lower learning rate) in a
   temporary folder inside the models folder;
4. score the result on the same validation cases with the same code;
5. publish it as the next ``NAME-vN`` version folder (atomic rename) with a
   ``finetune.json`` summary, and activate it only if validation Dice did not drop;
   otherwise it stays a candidate and the summary says why.

A cancel (the ``cancel`` event, set by the CLI's SIGINT/SIGTERM handler) or a crash
at any point before step 5's rename leaves the case store, the version folders and
the active model exactly as they were.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune.case_store import CaseStore
from SAFNetSpineLib.finetune.model_store import SUMMARY_FILE, VERSION_NAME_PATTERN, ModelStore
from SAFNetSpineLib.finetune.split import split_cases

#: Validation Dice may not fall by more than this (absorbs float round-off only).
DICE_TOLERANCE = 1e-9


class FinetuneCancelled(Exception):
    """Raised when the cancel event is set; nothing was changed."""


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning recipe (saved in each version's ``finetune.json``).

    Attributes:
        epochs: Training epochs over the store's training cases.
        lr: Adam learning rate; lower than training from scratch (1e-3) so a few
            corrected cases adjust the model rather than overwrite it.
        batch_size: Cases per optimiser step.
        val_fraction: Share of cases the hash rule sends to validation (0 < f < 1).
        device: "auto", "cpu", "cuda" or a torch device string.
        augment: Random rotation / contrast / elastic augmentation of training cases.
        seed: Seed of shuffling and augmentation.
        name: Version family name; None uses the architecture ("safnet" -> safnet-v1, ...).
    """

    epochs: int = 20
    lr: float = 1e-4
    batch_size: int = 2
    val_fraction: float = 0.2
    device: str = "auto"
    augment: bool = True
    seed: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise SpineInputError("fine-tuning", f"epochs must be >= 1, got {self.epochs}")
        if not (float(self.lr) > 0 and math.isfinite(float(self.lr))):
            raise SpineInputError("fine-tuning", f"learning rate must be a positive number, got {self.lr}")
        if int(self.batch_size) < 1:
            raise SpineInputError("fine-tuning", f"batch size must be >= 1, got {self.batch_size}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise SpineInputError(
                "fine-tuning", f"validation fraction must be in (0, 1), got {self.val_fraction}"
            )
        if self.name is not None and not VERSION_NAME_PATTERN.fullmatch(self.name):
            raise SpineInputError(
                f"model name {self.name}", "use letters, digits, '.', '_' or '-' (at most 100)"
            )

    def check_device(self) -> None:
        """Refuse a device this machine does not have, before any work is done.

        Raises:
            SpineInputError: unknown device string, or CUDA/MPS requested but not available.
        """
        import torch

        if self.device == "auto":
            return
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise SpineInputError(
                f"device {self.device}", "unknown device (use auto, cpu, cuda, cuda:N or mps)"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SpineInputError(
                f"device {self.device}", "CUDA is not available here; use --device auto or cpu"
            )
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise SpineInputError(
                f"device {self.device}", f"only {torch.cuda.device_count()} CUDA device(s) here"
            )
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and not (mps is not None and mps.is_available()):
            raise SpineInputError(
                f"device {self.device}", "MPS is not available here; use --device auto or cpu"
            )

    @property
    def val_percent(self) -> int:
        """The validation fraction as a whole percentage in 1..99 (the hash rule's threshold)."""
        return min(max(round(float(self.val_fraction) * 100), 1), 99)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FinetuneConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of one fine-tuning run (also written as the version's ``finetune.json``).

    Attributes:
        version: Name of the new version folder ("safnet-v3").
        folder: The new weights folder.
        promoted: True if it became the active model.
        status: "promoted" or "candidate".
        reason: One sentence saying why it was (not) promoted.
        dice_before: Mean validation Dice of the starting weights (0..1).
        dice_after: Mean validation Dice of the fine-tuned weights (0..1).
        dice_per_structure_before: {label id: mean Dice} over validation cases annotating it.
        dice_per_structure_after: Same for the fine-tuned weights.
        parent: Version name of the starting weights.
        parent_folder: The starting weights folder.
        train_cases: Case ids trained on.
        val_cases: Case ids validated on.
        epochs_run: Epochs the training loop ran.
        seconds: Wall time of the whole run.
        config: The FinetuneConfig as a dict.
    """

    version: str
    folder: Path
    promoted: bool
    status: str
    reason: str
    dice_before: float
    dice_after: float
    dice_per_structure_before: dict[int, float]
    dice_per_structure_after: dict[int, float]
    parent: str
    parent_folder: Path
    train_cases: list[str]
    val_cases: list[str]
    epochs_run: int
    seconds: float
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able summary (paths as text, per-structure keys as short names: "L4", "L4/L5")."""
        from SAFNetSpineLib.labels import structure

        data = asdict(self)
        data["folder"] = str(self.folder)
        data["parent_folder"] = str(self.parent_folder)
        for key in ("dice_per_structure_before", "dice_per_structure_after"):
            data[key] = {structure(k).short_name: v for k, v in getattr(self, key).items()}
        return data


def _check_cancel(cancel) -> None:
    from SAFNetSpineLib.training import is_cancelled

    if is_cancelled(cancel):
        raise FinetuneCancelled("fine-tuning cancelled; the case store and the active model are unchanged")


def validation_scores(
    weights_dir: Path, cases: list, device: str, cache_dir: Path | None, progress=None
) -> tuple[float, dict]:
    """Mean Dice of a weights folder on cases, in network space, over each case's annotated structures.

    Args:
        weights_dir: Weights folder (its manifest's preprocessing is applied to the cases).
        cases: :class:`~SAFNetSpineLib.data.cases.Case` entries.
        device: Torch device string ("auto" resolves to CUDA when available).
        cache_dir: Preprocessed-case cache folder, or None.
        progress: Optional ``progress(stage, fraction, message)`` for the preprocessing.

    Returns:
        (mean Dice over every (case, annotated structure) pair with a defined Dice,
        {label id: mean Dice over the cases where it is defined}). A reviewed structure
        absent from both the label map and the prediction has no Dice and is left out
        (as in the training loop's validation); if that leaves nothing, the score is
        1.0: the model drew none of the structures the annotator confirmed absent.
    """
    from SAFNetSpineLib.training.cache import preprocess_cases
    from SAFNetSpineLib.training.dataset import validation_dice
    from SAFNetSpineLib.training.distributed import resolve_device
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


def finetune(
    store: CaseStore | str | Path,
    from_weights: str | Path | None,
    models_dir: str | Path,
    *,
    epochs: int = 20,
    device: str = "auto",
    val_fraction: float = 0.2,
    lr: float = 1e-4,
    batch_size: int = 2,
    name: str | None = None,
    seed: int = 0,
    augment: bool = True,
    bundled_dir: str | Path | None = None,
    progress=None,
    cancel=None,
) -> FinetuneResult:
    """Fine-tune from ``from_weights`` on the store's cases; promote only if validation Dice did not drop.

    Args:
        store: The corrected-case store (or its folder).
        from_weights: Starting weights folder; None uses the models folder's active
            version (the bundled default when none is active).
        models_dir: Folder of model versions; the new ``NAME-vN`` folder goes here.
        epochs, device, val_fraction, lr, batch_size, name, seed, augment: See
            :class:`FinetuneConfig`.
        bundled_dir: Bundled default weights (defaults to the package's).
        progress: ``progress(stage, fraction, message)`` callable, e.g. a Progress.
        cancel: ``threading.Event`` (or callable returning bool) checked between steps and,
            by the training loop, between batches.

    Returns:
        The run's :class:`FinetuneResult`.

    Raises:
        SpineInputError: fewer than 2 cases, unusable weights (e.g. another label table),
            bad settings, or a stored case whose files changed.
        FinetuneCancelled: when ``cancel`` was set; nothing was changed.
    """
    from SAFNetSpineLib.training import TrainConfig, train
    from SAFNetSpineLib.weights import load_model, read_manifest, save_weights

    started = time.perf_counter()
    config = FinetuneConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        val_fraction=val_fraction,
        device=device,
        augment=augment,
        seed=seed,
        name=name,
    )
    config.check_device()
    report = progress or (lambda *args, **kwargs: None)
    case_store = store if isinstance(store, CaseStore) else CaseStore(store)
    model_store = ModelStore(models_dir, bundled_dir=bundled_dir)

    stored = case_store.list()
    if len(stored) < 2:
        raise SpineInputError(
            case_store.folder,
            f"fine-tuning needs at least 2 corrected cases (1 to train, 1 to validate); "
            f"the store has {len(stored)}",
        )
    for case in stored:
        case.verify()
    parent_folder = Path(from_weights) if from_weights is not None else model_store.active()
    parent = read_manifest(parent_folder)  # label table, files present: errors name the folder
    base = config.name or parent.architecture

    train_ids, val_ids = split_cases([case.case_id for case in stored], config.val_percent)
    by_id = {case.case_id: case.to_case() for case in stored}
    train_cases = [by_id[i] for i in train_ids]
    val_cases = [by_id[i] for i in val_ids]
    report("finetune", 0.0, f"{len(train_cases)} training / {len(val_cases)} validation cases")
    _check_cancel(cancel)

    model_store.remove_stale_work_folders()
    work = model_store.make_work_folder()
    try:
        cache_dir = work / "cache"
        report("evaluate", 0.0, f"validation Dice of {parent.version} (before)")
        dice_before, per_before = validation_scores(
            parent_folder, val_cases, config.device, cache_dir, progress
        )
        report("evaluate", 1.0, f"before: mean Dice {dice_before:.4f}")
        _check_cancel(cancel)

        # Architecture, width and preprocessing come from the starting weights' manifest.
        train_config = TrainConfig(
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            augment=config.augment,
            device=config.device,
            seed=config.seed,
        )
        result = train(
            train_config,
            train_cases,
            val_cases,
            work / "train",
            init_weights=parent_folder,
            progress=progress,
            cancel=cancel,
            cache_dir=cache_dir,
            version=f"{base}-candidate",
        )
        _check_cancel(cancel)
        if result.cancelled or result.weights_dir is None:
            raise FinetuneCancelled("fine-tuning stopped before an epoch completed; nothing was changed")

        report("evaluate", 0.0, "validation Dice of the fine-tuned weights (after)")
        dice_after, per_after = validation_scores(
            Path(result.weights_dir), val_cases, config.device, cache_dir
        )
        report("evaluate", 1.0, f"after: mean Dice {dice_after:.4f}")
        _check_cancel(cancel)

        promoted = dice_after >= dice_before - DICE_TOLERANCE
        if promoted:
            reason = (
                f"validation Dice {dice_after:.4f} >= {dice_before:.4f} of {parent.version} "
                f"on {len(val_cases)} case(s); promoted to active"
            )
        else:
            reason = (
                f"validation Dice dropped from {dice_before:.4f} ({parent.version}) to {dice_after:.4f} "
                f"on {len(val_cases)} case(s); kept as candidate, active model unchanged"
            )
        trained, trained_manifest = load_model(Path(result.weights_dir))

        def summary_for(version_name: str, folder: Path) -> FinetuneResult:
            return FinetuneResult(
                version=version_name,
                folder=folder,
                promoted=promoted,
                status="promoted" if promoted else "candidate",
                reason=reason,
                dice_before=dice_before,
                dice_after=dice_after,
                dice_per_structure_before=per_before,
                dice_per_structure_after=per_after,
                parent=parent.version,
                parent_folder=parent_folder.resolve(),
                train_cases=train_ids,
                val_cases=val_ids,
                epochs_run=int(result.epochs_run),
                seconds=round(time.perf_counter() - started, 2),
                config=config.to_dict(),
            )

        def write_version(folder: Path, version_name: str) -> None:
            manifest = replace(
                trained_manifest,
                version=version_name,
                parent_version=parent.version,
                trained_on=(
                    f"fine-tuned from {parent.version} on {len(train_ids)} corrected case(s) "
                    f"of {case_store.folder.resolve()}"
                ),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                metrics={
                    "val_dice_before": dice_before,
                    "val_dice_after": dice_after,
                    "val_cases": len(val_ids),
                    "train_cases": len(train_ids),
                },
                sha256="",
            )
            save_weights(trained, folder, manifest)
            final = model_store.models_dir / version_name
            write_json_atomic(summary_for(version_name, final).to_dict(), folder / SUMMARY_FILE)

        _check_cancel(cancel)
        report("finetune", 0.95, "writing the new version")
        version_name = model_store.publish_version(base, write_version)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if promoted:
        model_store.activate(version_name)
    final = summary_for(version_name, model_store.models_dir / version_name)
    report("finetune", 1.0, reason)
    return final
