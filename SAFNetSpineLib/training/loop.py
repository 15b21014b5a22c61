"""`train`: the training loop (a model, the marginal loss, Adam and preprocessed cases).

One function runs single-process and under ``torchrun`` alike. Per epoch: shuffled
batches of augmented cases, then validation Dice on the validation cases (network
space, annotated structures only), the plateau scheduler, the best weights folder when
validation Dice improved, and the resumable checkpoint, all written by rank 0 and
atomically. Cancellation is checked between batches; a cancelled epoch writes nothing,
so the last checkpoint stays the last completed epoch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.training.augmentation import build_augmentation
from SAFNetSpineLib.training.averaging import WeightAverage
from SAFNetSpineLib.training.cache import preprocess_cases
from SAFNetSpineLib.training.checkpoint import CHECKPOINT_FILE, restore_checkpoint, save_checkpoint
from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.dataset import TrainingCases, validation_dice
from SAFNetSpineLib.training.distributed import DistributedContext, setup_distributed
from SAFNetSpineLib.training.losses import marginal_cross_entropy, marginal_soft_dice_loss

BEST_WEIGHTS_DIR = "best"
AVERAGED_WEIGHTS_DIR = "averaged"
CONFIG_FILE = "train_config.json"
LOG_FILE = "train_log.jsonl"
RESULT_FILE = "train_result.json"
#: Config fields that may change when a run is resumed (e.g. train longer).
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers", "device", "val_every", "memory_format", "average_from"})


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        best_val_dice: Best mean validation Dice (NaN without validation cases).
        best_epoch: Epoch (1-based) of the best weights, 0 if none were written.
        epochs_run: Epochs completed in total (including those before a resume).
        weights_dir: The best weights folder (save_weights format), or None.
        checkpoint: The resumable checkpoint file, or None if no epoch completed.
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
    checkpoint: Path | None
    history: list[dict] = field(default_factory=list)
    cancelled: bool = False
    config: TrainConfig | None = None
    averaged_weights_dir: Path | None = None
    averaged_val_dice: float = float("nan")


def is_cancelled(cancel) -> bool:
    """True if ``cancel`` (None, a threading.Event or a callable returning bool) says stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _config_from_weights(config: TrainConfig, init_weights: Path) -> tuple[TrainConfig, str]:
    """Take architecture, model config and preprocessing from a weights folder's manifest."""
    from SAFNetSpineLib.weights import read_manifest

    manifest = read_manifest(init_weights)
    options = {k: v for k, v in manifest.model_config.items() if k not in ("width", "in_channels", "num_classes")}
    width = int(manifest.model_config.get("width", config.width))
    changed = config.replace(model=manifest.architecture, width=width, model_options=options,
                             preprocess=dict(manifest.preprocess))
    return changed, manifest.version


def _autocast_factory(device: torch.device, precision: str) -> tuple[Callable, bool]:
    """(callable returning the autocast context, whether fp16 loss scaling is needed)."""
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, False
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), precision == "fp16"


def _memory_format(name: str, device: torch.device) -> torch.memory_format:
    if name == "channels_last" or (name == "auto" and device.type == "cpu"):
        return torch.channels_last_3d
    return torch.contiguous_format


def _check_resume_config(saved: dict, config: TrainConfig, out_dir: Path) -> None:
    current = config.to_dict()
    saved = TrainConfig.from_dict(saved).to_dict()  # fields added since the checkpoint take their defaults
    differing = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if differing:
        raise SpineInputError(out_dir, f"cannot resume: the config differs from the checkpoint's in {differing}")


def _gathered_validation(ctx: DistributedContext, module, cases, autocast) -> np.ndarray:
    """(N, C) validation Dice with the cases split over the processes (plain-tensor all-reduce)."""
    from SAFNetSpineLib.labels import NUM_CLASSES

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
        import torch.distributed as dist

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
    with open(path, "a") as stream:
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
    parent_version = None
    if init_weights is not None:
        config, parent_version = _config_from_weights(config, Path(init_weights))
    ctx = setup_distributed(config.device)
    try:
        if (out_dir / CHECKPOINT_FILE).exists() and not resume:
            raise SpineInputError(out_dir, "already holds a training checkpoint; resume it or choose another folder")
        ctx.barrier()  # every rank has looked before rank 0 writes anything
        return _train(ctx, config, list(train_cases), list(val_cases), out_dir, init_weights, progress, cancel,
                      resume, Path(cache_dir) if cache_dir else out_dir / "cache", version, trained_on,
                      parent_version)
    finally:
        ctx.close()


def _train(ctx, config, train_cases, val_cases, out_dir, init_weights, progress, cancel, resume, cache_dir,
           version, trained_on, parent_version) -> TrainResult:
    from SAFNetSpineLib.atomic import write_json_atomic
    from SAFNetSpineLib.models import build_model
    from SAFNetSpineLib.weights import ModelManifest, load_model, save_weights

    report = progress if (progress is not None and ctx.is_main) else (lambda *a, **k: None)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config.to_dict(), out_dir / CONFIG_FILE)
    # Each process fills its share of the cache, then all read every case from it.
    every = train_cases + val_cases
    preprocess_cases(every[ctx.rank::ctx.world_size], config.preprocess, cache_dir, report)
    ctx.barrier()
    train_data = preprocess_cases(train_cases, config.preprocess, cache_dir)
    val_data = preprocess_cases(val_cases, config.preprocess, cache_dir)

    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.model_config)
    if init_weights is not None:
        source, _ = load_model(init_weights)
        model.load_state_dict(source.state_dict())
    layout = _memory_format(config.memory_format, ctx.device)
    model.to(ctx.device, memory_format=layout)
    module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        if ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            module = model
        model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_lr
    )
    autocast, needs_scaler = _autocast_factory(ctx.device, config.precision)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=needs_scaler)

    average = WeightAverage(module) if config.average_from and ctx.is_main else None  # only the main process saves
    state = {"epoch": 0, "best_val_dice": float("-inf"), "best_epoch": 0, "history": []}
    if resume and (out_dir / CHECKPOINT_FILE).exists():
        extra: dict[str, torch.Tensor] = {}
        saved = restore_checkpoint(out_dir, model, optimizer, scheduler, scaler, extra_tensors=extra)
        _check_resume_config(saved["config"], config, out_dir)
        state = {k: saved[k] for k in state}
        if average is not None:
            average.load_tensors(extra)
    state["config"] = config.to_dict()

    drawn = [case for case in train_data for _ in range(config.repeats_for(case.case_id))]
    dataset = TrainingCases(drawn, build_augmentation(config), config.seed)
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    # On CPU, loader processes would compete with training for the same cores; on a GPU they
    # keep augmentation off the critical path.
    auto_workers = min(8, max(1, (os.cpu_count() or 2) // ctx.world_size)) if ctx.device.type == "cuda" else 0
    workers = config.num_workers if config.num_workers >= 0 else auto_workers
    loader = DataLoader(dataset, batch_size=max(1, math.ceil(config.batch_size / ctx.world_size)), sampler=sampler,
                        num_workers=workers, pin_memory=ctx.device.type == "cuda")
    trained_on = trained_on or f"{len(train_cases)} training cases, {len(val_cases)} validation cases"

    def describe(metrics: dict) -> ModelManifest:
        return ModelManifest(architecture=config.model, model_config=config.model_config,
                             preprocess=dict(config.preprocess), trained_on=trained_on, version=version,
                             metrics=metrics, parent_version=parent_version)

    cancelled = False
    model.train()
    for epoch in range(int(state["epoch"]) + 1, config.epochs + 1):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        loss_sum = torch.zeros(2, dtype=torch.float64)
        for step, batch in enumerate(loader):
            if ctx.any_true(is_cancelled(cancel)):
                cancelled = True
                break
            image = batch["image"].to(ctx.device, non_blocking=True, memory_format=layout)
            label = batch["label"].to(ctx.device, non_blocking=True)
            annotated = batch["annotated"].to(ctx.device)
            with autocast():
                logits = model(image)
            loss = marginal_cross_entropy(logits, label, annotated)
            if config.dice_loss_weight > 0:
                loss = loss + config.dice_loss_weight * marginal_soft_dice_loss(logits, label, annotated)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += torch.tensor([float(loss.detach()) * len(image), len(image)], dtype=torch.float64)
            report("train", ((epoch - 1) + (step + 1) / len(loader)) / config.epochs,
                   f"epoch {epoch}/{config.epochs} batch {step + 1}/{len(loader)} loss {float(loss.detach()):.4f}")
        if cancelled:
            break
        loss_sum = ctx.all_reduce_sum(loss_sum)
        train_loss = float(loss_sum[0] / max(loss_sum[1], 1))
        record = {"epoch": epoch, "loss": train_loss, "lr": optimizer.param_groups[0]["lr"]}
        validate = bool(val_data) and (epoch % config.val_every == 0 or epoch == config.epochs)
        improved = False
        if validate:
            _broadcast_buffers(ctx, module)
            scores = _gathered_validation(ctx, module, val_data, autocast)
            val_dice = float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0
            record["val_dice"] = val_dice
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: unannotated everywhere
                per_structure = np.nanmean(scores, axis=0)
            record["val_dice_per_structure"] = {
                STRUCTURES[c].short_name: round(float(d), 4) for c, d in enumerate(per_structure) if np.isfinite(d)
            }
            scheduler.step(val_dice)
            improved = val_dice > state["best_val_dice"]
        elif not val_data:
            scheduler.step(-train_loss)
            improved = True
        if average is not None and epoch >= config.average_from:
            average.update(module)
            record["averaged_epochs"] = average.count
        record["seconds"] = round(time.perf_counter() - started, 2)
        state["history"].append(record)
        state["epoch"] = epoch
        if improved:
            state["best_val_dice"] = record.get("val_dice", float("nan"))
            state["best_epoch"] = epoch
        if ctx.is_main:
            if improved:
                metrics = {"epoch": epoch, "train_loss": train_loss}
                if "val_dice" in record:
                    metrics.update(val_dice=record["val_dice"], val_dice_per_structure=record["val_dice_per_structure"],
                                   val_cases=[c.case_id for c in val_cases])
                save_weights(module, out_dir / BEST_WEIGHTS_DIR, describe(metrics))
            save_checkpoint(out_dir, model, optimizer, scheduler, _json_state(state), scaler,
                            extra_tensors=average.to_tensors() if average is not None and average.count else None)
            _append_log(out_dir / LOG_FILE, record)
        message = f"epoch {epoch}/{config.epochs} loss {train_loss:.4f}"
        if "val_dice" in record:
            message += f" val Dice {record['val_dice']:.4f} (best {state['best_val_dice']:.4f} @ {state['best_epoch']})"
        report("train", epoch / config.epochs, message, epoch=epoch, loss=train_loss,
               val_dice=record.get("val_dice"))
    fingerprints = _parameter_fingerprints(ctx, module)
    averaged_dir, averaged_dice = None, float("nan")
    if average is not None and average.count:
        averaged_dir, averaged_dice = _save_average(average, config, train_data, val_data, out_dir, ctx.device,
                                                    autocast, describe({}))
        report("train", 1.0, f"averaged weights of {average.count} epochs: val Dice {averaged_dice:.4f}")
    best = float(state["best_val_dice"])
    result = TrainResult(
        best_val_dice=best if math.isfinite(best) else float("nan"),
        best_epoch=int(state["best_epoch"]),
        epochs_run=int(state["epoch"]),
        weights_dir=(out_dir / BEST_WEIGHTS_DIR) if state["best_epoch"] else None,
        checkpoint=(out_dir / CHECKPOINT_FILE) if state["epoch"] else None,
        history=list(state["history"]),
        cancelled=cancelled,
        config=config,
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
    from SAFNetSpineLib.models import build_model
    from SAFNetSpineLib.weights import save_weights

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


def _json_state(state: dict) -> dict:
    best = state["best_val_dice"]
    return {**state, "best_val_dice": best if math.isfinite(best) else float("-inf")}
