"""`train`: the training loop (a model, the marginal loss, Adam and preprocessed cases).

One function runs single-process and under ``torchrun`` alike, in three named steps
over one :class:`~.run_state.TrainingRun`: :func:`~.run_state.set_up_run`,
:func:`run_epoch` (shuffled batches of augmented cases) and :func:`validate_and_save`
(validation Dice on the validation cases, in network space over annotated structures
only; the plateau scheduler; the best weights folder when validation Dice improved;
the resumable checkpoint), then :func:`finish`. Rank 0 writes everything, atomically.
Cancellation is checked between batches; a cancelled epoch writes nothing, so the last
checkpoint stays the last completed epoch.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.cancel import is_cancelled
from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.field_of_view import fov_of_file, trained_range
from SAFNetSpineLib.labels import NUM_CLASSES, STRUCTURES
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.training.anchor import anchor_penalty
from SAFNetSpineLib.training.averaging import WeightAverage
from SAFNetSpineLib.training.checkpoint import CHECKPOINT_FILE, save_checkpoint
from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.dataset import validation_dice
from SAFNetSpineLib.training.distributed import DistributedContext, setup_distributed
from SAFNetSpineLib.training.losses import training_loss
from SAFNetSpineLib.training.run_state import RunRequest, TrainingRun, set_up_run
from SAFNetSpineLib.weights import ModelManifest, read_manifest, save_weights

BEST_WEIGHTS_DIR = "best"
AVERAGED_WEIGHTS_DIR = "averaged"
LOG_FILE = "train_log.jsonl"
RESULT_FILE = "train_result.json"


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        best_val_dice: Best mean validation Dice (NaN without validation cases).
        best_epoch: Epoch (1-based) of the best weights, 0 if none were written.
        epochs_run: Epochs completed in total (including those before a resume).
        weights_dir: The best weights folder (save_weights format), or None.
        history: One dict per completed epoch (epoch, loss, val_dice, lr, seconds).
        cancelled: True if the run stopped early through the cancel hook.
        config: The config that was used (after taking the architecture from init weights).
        averaged_weights_dir: The weight-averaged folder (``averaged/``), or None without
            ``config.average_from`` or before that epoch was reached.
        averaged_val_dice: Mean validation Dice of the averaged weights (NaN if none).
    """

    best_val_dice: float
    best_epoch: int
    epochs_run: int
    weights_dir: Path | None
    history: list[dict] = field(default_factory=list)
    cancelled: bool = False
    config: TrainConfig | None = None
    averaged_weights_dir: Path | None = None
    averaged_val_dice: float = float("nan")


#: Preprocessing a run may set over its init weights' (where it is not the paper's default).
RUN_PREPROCESS_FIELDS = ("target_shape", "min_fov_mm", "widen_fill")


def _config_from_weights(config: TrainConfig, init_weights: Path) -> tuple[TrainConfig, ModelManifest]:
    """Take architecture, model config and preprocessing from a weights folder's manifest.

    Model options the run names (``--model-option``) are added to the manifest's: a head the
    weights lack (SAFNet's ``refine``) starts fresh, everything else starts from the weights.
    The rest of the preprocessing is the manifest's, but for :data:`RUN_PREPROCESS_FIELDS` the run
    sets to other than the default: a widened field of view (``--min-fov-mm``), what fills it
    (``--widen-fill``) or another grid (``--target-shape``; SAFNet is fully convolutional and its
    position attention runs over any number of positions). The weights then learn the anatomy
    that way.

    Returns:
        (the config to train, the init weights' manifest).
    """
    manifest = read_manifest(init_weights)
    options = {k: v for k, v in manifest.model_config.items() if k not in ("width", "in_channels", "num_classes")}
    options.update(config.model_options)
    width = int(manifest.model_config.get("width", config.width))
    ours, default = config.preprocess.to_dict(), PreprocessConfig().to_dict()
    preprocess = dict(manifest.preprocess)
    preprocess.update({k: ours[k] for k in RUN_PREPROCESS_FIELDS if ours[k] != default[k]})
    changed = config.replace(model=manifest.architecture, width=width, model_options=options,
                             preprocess=preprocess)
    return changed, manifest


def _gathered_validation(ctx: DistributedContext, module, cases, autocast) -> np.ndarray:
    """(N, C) validation Dice with the cases split over the processes (plain-tensor all-reduce)."""
    mine = list(range(ctx.rank, len(cases), ctx.world_size))
    rows = validation_dice(module, [cases[i] for i in mine], ctx.device, autocast)
    values = torch.zeros(len(cases), NUM_CLASSES, dtype=torch.float64)
    known = torch.zeros(len(cases), NUM_CLASSES, dtype=torch.float64)
    for row, index in zip(rows, mine, strict=True):
        finite = np.isfinite(row)
        values[index] = torch.from_numpy(np.where(finite, row, 0.0))
        known[index] = torch.from_numpy(finite.astype(np.float64))
    values, known = ctx.all_reduce_sum(values), ctx.all_reduce_sum(known)
    return torch.where(known > 0, values, torch.full_like(values, float("nan"))).numpy()


def _broadcast_buffers(ctx: DistributedContext, module: torch.nn.Module) -> None:
    """Give every process rank 0's batch-norm statistics (they drift apart during an epoch)."""
    if ctx.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def _parameter_fingerprints(ctx: DistributedContext, module: torch.nn.Module) -> list[float]:
    """A checksum of the parameters on every rank (all equal when DDP kept the replicas in sync)."""
    with torch.no_grad():
        value = sum(float(p.double().abs().sum() + p.double().sum()) for p in module.parameters())
    table = torch.zeros(ctx.world_size, dtype=torch.float64)
    table[ctx.rank] = value
    return [float(v) for v in ctx.all_reduce_sum(table)]


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def train(
    config: TrainConfig,
    train_cases: Sequence[Case],
    val_cases: Sequence[Case],
    out_dir: str | Path,
    *,
    init_weights: str | Path | None = None,
    progress=None,
    cancel=None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    version: str = "safnet-trained",
    trained_on: str | None = None,
) -> TrainResult:
    """Train a segmentation network with the marginal (partial-label) loss.

    Args:
        config: The recipe.
        train_cases: Cases to learn from.
        val_cases: Held-out cases for validation Dice, the plateau scheduler and the best
            checkpoint (may be empty: then the scheduler follows the training loss and
            the latest epoch counts as best).
        out_dir: Run folder: ``checkpoint.safetensors``, ``best/`` (weights folder),
            ``train_config.json``, ``train_log.jsonl``, ``train_result.json``.
        init_weights: Weights folder to start from (fine-tuning); its manifest decides
            architecture, width and preprocessing, and becomes the parent version.
        progress: Optional Progress-like callable (stage, fraction, message, **extra).
        cancel: threading.Event or callable checked between batches; when set, training
            stops without writing (the last checkpoint stays intact).
        resume: Continue from ``out_dir``'s checkpoint (a fresh start if there is none).
        cache_dir: Preprocessed-case cache (default ``out_dir/cache``).
        version: Version name written into the best weights' manifest.
        trained_on: Manifest text on the training data (default: case count and ids' sources).

    Returns:
        TrainResult.

    Raises:
        SpineInputError: no training cases, an existing checkpoint without ``resume``,
            a resume with a different config, or bad case files.
    """
    out_dir = Path(out_dir)
    if not train_cases:
        raise SpineInputError(out_dir, "no training cases")
    parent = None
    if init_weights is not None:
        config, parent = _config_from_weights(config, Path(init_weights))
    ctx = setup_distributed(config.device)
    try:
        if (out_dir / CHECKPOINT_FILE).exists() and not resume:
            raise SpineInputError(out_dir, "already holds a training checkpoint; resume it or choose another folder")
        ctx.barrier()  # every rank has looked before rank 0 writes anything
        parent_fov = parent.trained_fov_mm if parent is not None else None
        request = RunRequest(config=config, train_cases=list(train_cases), val_cases=list(val_cases),
                             out_dir=out_dir, cache_dir=Path(cache_dir) if cache_dir else out_dir / "cache",
                             init_weights=Path(init_weights) if init_weights is not None else None,
                             parent_version=parent.version if parent is not None else None, resume=resume,
                             version=version, trained_on=trained_on,
                             trained_fov_mm=trained_range((fov_of_file(c.image_path) for c in train_cases), parent_fov))
        run = set_up_run(ctx, request, progress, cancel)
        result = run_epochs(run)
        # The run (its DDP wrapper holds the process group) must be gone before the group is
        # destroyed, and every rank past its last collective: see DistributedContext.close.
        del run
        ctx.barrier()
        return result
    finally:
        ctx.close()


def run_epochs(run: TrainingRun) -> TrainResult:
    """Step 1b: the epochs from the run's state to ``config.epochs``, then :func:`finish`."""
    cancelled = False
    run.model.train()
    for epoch in range(run.state.epoch + 1, run.config.epochs + 1):
        started = time.perf_counter()
        train_loss = run_epoch(run, epoch)
        if train_loss is None:
            cancelled = True
            break
        validate_and_save(run, epoch, train_loss, started)
    return finish(run, cancelled)


def run_epoch(run: TrainingRun, epoch: int) -> float | None:
    """Step 2: one pass over the shuffled, augmented training cases.

    Returns:
        Mean training loss over all processes, or None if the cancel hook stopped the epoch
        (then nothing of it is written).
    """
    ctx, config = run.ctx, run.config
    run.sampler.set_epoch(epoch)
    run.dataset.set_epoch(epoch)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for step, batch in enumerate(run.loader):
        if ctx.any_true(is_cancelled(run.cancel)):
            return None
        image = batch["image"].to(ctx.device, non_blocking=True, memory_format=run.layout)
        label = batch["label"].to(ctx.device, non_blocking=True)
        annotated = batch["annotated"].to(ctx.device)
        with run.autocast():
            logits = run.model(image)
        loss = training_loss(logits, label, annotated, config.dice_loss_weight, config.below_lumbar_weight,
                             config.tilt_loss_weight)
        # L2-SP towards the init weights (fp32, outside autocast); the logged loss stays the data term.
        objective = loss if run.anchor is None else loss + anchor_penalty(run.module, run.anchor,
                                                                          config.anchor_weight)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(objective).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        loss_sum += torch.tensor([float(loss.detach()) * len(image), len(image)], dtype=torch.float64)
        run.report("train", ((epoch - 1) + (step + 1) / len(run.loader)) / config.epochs,
                   f"epoch {epoch}/{config.epochs} batch {step + 1}/{len(run.loader)} loss {float(loss.detach()):.4f}")
    loss_sum = ctx.all_reduce_sum(loss_sum)
    return float(loss_sum[0] / max(loss_sum[1], 1))


def _validate(run: TrainingRun, record: dict) -> float:
    """Validation Dice of the current weights (all processes); fills ``record``'s val_dice fields."""
    _broadcast_buffers(run.ctx, run.module)
    scores = _gathered_validation(run.ctx, run.module, run.val_data, run.autocast)
    val_dice = float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0
    record["val_dice"] = val_dice
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: unannotated everywhere
        per_structure = np.nanmean(scores, axis=0)
    record["val_dice_per_structure"] = {
        STRUCTURES[c].short_name: round(float(d), 4) for c, d in enumerate(per_structure) if np.isfinite(d)
    }
    return val_dice


def validate_and_save(run: TrainingRun, epoch: int, train_loss: float, started: float) -> None:
    """Step 3: validate (when due), step the scheduler, and write best weights, checkpoint and log line."""
    ctx, config, state = run.ctx, run.config, run.state
    record = {"epoch": epoch, "loss": train_loss, "lr": run.optimizer.param_groups[0]["lr"]}
    improved = False
    if run.val_data and (epoch % config.val_every == 0 or epoch == config.epochs):
        val_dice = _validate(run, record)
        run.scheduler.step(val_dice)
        improved = val_dice > state.best_val_dice
    elif not run.val_data:
        run.scheduler.step(-train_loss)
        improved = True
    if run.average is not None and epoch >= config.average_from:
        run.average.update(run.module)
        record["averaged_epochs"] = run.average.count
    record["seconds"] = round(time.perf_counter() - started, 2)
    state.history.append(record)
    state.epoch = epoch
    if improved:
        state.best_val_dice = record.get("val_dice", float("nan"))
        state.best_epoch = epoch
    if ctx.is_main:
        if improved:
            metrics = {"epoch": epoch, "train_loss": train_loss}
            if "val_dice" in record:
                metrics.update(val_dice=record["val_dice"], val_dice_per_structure=record["val_dice_per_structure"],
                               val_cases=run.val_ids)
            save_weights(run.module, run.out_dir / BEST_WEIGHTS_DIR, run.manifest(metrics))
        average = run.average
        save_checkpoint(run.out_dir, run.model, run.optimizer, run.scheduler, state.to_checkpoint(config), run.scaler,
                        extra_tensors=average.to_tensors() if average is not None and average.count else None)
        _append_log(run.out_dir / LOG_FILE, record)
    message = f"epoch {epoch}/{config.epochs} loss {train_loss:.4f}"
    if "val_dice" in record:
        message += f" val Dice {record['val_dice']:.4f} (best {state.best_val_dice:.4f} @ {state.best_epoch})"
    run.report("train", epoch / config.epochs, message, epoch=epoch, loss=train_loss, val_dice=record.get("val_dice"))


def finish(run: TrainingRun, cancelled: bool) -> TrainResult:
    """After the last epoch (or a cancel): the averaged weights, ``train_result.json`` and the result."""
    ctx, state, out_dir, average = run.ctx, run.state, run.out_dir, run.average
    fingerprints = _parameter_fingerprints(ctx, run.module)
    averaged_dir, averaged_dice = None, float("nan")
    if average is not None and average.count:
        averaged_dir, averaged_dice = _save_average(average, run.config, run.train_data, run.val_data, out_dir,
                                                    ctx.device, run.autocast, run.manifest({}))
        run.report("train", 1.0, f"averaged weights of {average.count} epochs: val Dice {averaged_dice:.4f}")
    best = state.best_val_dice
    result = TrainResult(
        best_val_dice=best if math.isfinite(best) else float("nan"),
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        weights_dir=(out_dir / BEST_WEIGHTS_DIR) if state.best_epoch else None,
        history=list(state.history),
        cancelled=cancelled,
        config=run.config,
        averaged_weights_dir=averaged_dir,
        averaged_val_dice=averaged_dice,
    )
    if ctx.is_main:
        write_json_atomic({
            "best_val_dice": result.best_val_dice if math.isfinite(result.best_val_dice) else None,
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "cancelled": cancelled,
            "history": result.history, "rank_parameter_fingerprints": fingerprints,
            "averaged_val_dice": averaged_dice if math.isfinite(averaged_dice) else None,
        }, out_dir / RESULT_FILE)
    return result


def _save_average(average: WeightAverage, config: TrainConfig, train_data, val_data, out_dir: Path,
                  device: torch.device, autocast, manifest) -> tuple[Path, float]:
    """Averaged weights with recomputed BatchNorm statistics, validated and saved as ``averaged/``."""
    averaged = build_model(config.model, **config.model_config).to(device)
    average.apply_to(averaged, train_data, device)
    val_dice = float("nan")
    metrics = {"averaged_epochs": average.count, "averaged_from_epoch": config.average_from}
    if val_data:
        scores = validation_dice(averaged, val_data, device, autocast)
        val_dice = float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0
        metrics.update(val_dice=val_dice, val_cases=[c.case_id for c in val_data])
    manifest.metrics = metrics
    return save_weights(averaged, out_dir / AVERAGED_WEIGHTS_DIR, manifest), val_dice
