"""`TrainingRun`: what the steps of one training run share, and `set_up_run`, which builds it.

The training loop (:mod:`.loop`) is three named steps over one ``TrainingRun``:
:func:`set_up_run` (cache, model, optimiser, data, resume), ``run_epoch`` and
``validate_and_save``. ``TrainingRun.state`` is the JSON part of the checkpoint
(epoch, best_val_dice, best_epoch, history, config), so a resume restores it as is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.data.cases import Case
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.runtime import (
    autocast_factory,
    enable_cudnn_autotune,
    memory_format,
    needs_loss_scaling,
    resolve_precision,
)
from SAFNetSpineLib.training.augmentation import build_augmentation
from SAFNetSpineLib.training.averaging import WeightAverage
from SAFNetSpineLib.training.cache import PreprocessedCase, preprocess_cases
from SAFNetSpineLib.training.checkpoint import CHECKPOINT_FILE, restore_checkpoint
from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.dataset import TrainingCases
from SAFNetSpineLib.training.distributed import DistributedContext
from SAFNetSpineLib.training.sacrum_labels import with_team_sacrum
from SAFNetSpineLib.training.synth_image import Synthesizer
from SAFNetSpineLib.training.synth_maps import generation_maps
from SAFNetSpineLib.weights import ModelManifest, load_model

CONFIG_FILE = "train_config.json"
#: Config fields that may change when a run is resumed (e.g. train longer).
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers", "device", "val_every", "memory_format", "average_from"})


@dataclass
class TrainingRun:
    """Everything the steps of one run share.

    Attributes:
        ctx: This process's place in the (possibly single-process) run.
        config: The recipe (architecture already taken from init weights).
        out_dir: Run folder.
        model: The network as trained (DistributedDataParallel-wrapped under torchrun).
        module: The plain network inside ``model`` (saved, validated, averaged).
        optimizer: Adam.
        scheduler: ReduceLROnPlateau on validation Dice (or minus the training loss).
        scaler: GradScaler, enabled for fp16 only.
        autocast: Zero-argument callable returning the autocast context.
        layout: Memory format of the weights and input batches.
        train_data: Preprocessed training cases.
        val_data: Preprocessed validation cases.
        sampler: Distributed sampler of the training cases (one share per process).
        dataset: Augmented training cases (repeats included).
        loader: Batches of ``dataset``.
        average: Running weight average (main process with ``average_from`` only), or None.
        state: JSON part of the checkpoint: epoch, best_val_dice, best_epoch, history, config.
        report: Progress callable (a no-op off the main process).
        cancel: Cancel hook (see :func:`SAFNetSpineLib.cancel.is_cancelled`).
        val_ids: Validation case ids (written into the best weights' metrics).
        trained_on: Manifest text on the training data.
        version: Version name of the weights written.
        parent_version: Version of the init weights, or None.
    """

    ctx: DistributedContext
    config: TrainConfig
    out_dir: Path
    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    autocast: Callable
    layout: torch.memory_format
    train_data: list[PreprocessedCase]
    val_data: list[PreprocessedCase]
    sampler: DistributedSampler
    dataset: TrainingCases
    loader: DataLoader
    average: WeightAverage | None
    state: dict
    report: Callable
    cancel: object
    val_ids: list[str]
    trained_on: str
    version: str
    parent_version: str | None

    def manifest(self, metrics: dict) -> ModelManifest:
        """The manifest of a weights folder this run writes."""
        return ModelManifest(architecture=self.config.model, model_config=self.config.model_config,
                             preprocess=dict(self.config.preprocess), trained_on=self.trained_on,
                             version=self.version, metrics=metrics, parent_version=self.parent_version)


def check_resume_config(saved: dict, config: TrainConfig, out_dir: Path) -> None:
    """Refuse to resume a checkpoint written with a different recipe (see :data:`RESUMABLE_CHANGES`)."""
    current = config.to_dict()
    saved = TrainConfig.from_dict(saved).to_dict()  # fields added since the checkpoint take their defaults
    differing = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if differing:
        raise SpineInputError(out_dir, f"cannot resume: the config differs from the checkpoint's in {differing}")


def _network(ctx: DistributedContext, config: TrainConfig, init_weights: Path | None,
             layout: torch.memory_format) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model as trained, plain module inside it), seeded, on the device, DDP-wrapped under torchrun."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.model_config)
    if init_weights is not None:
        source, _ = load_model(init_weights)
        model.load_state_dict(source.state_dict())
    model.to(ctx.device, memory_format=layout)
    module = model
    if ctx.distributed:
        if ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            module = model
        model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    enable_cudnn_autotune(ctx.device)
    return model, module


def set_up_run(ctx: DistributedContext, config: TrainConfig, train_cases: list[Case], val_cases: list[Case],
               out_dir: Path, *, init_weights: Path | None, progress, cancel, resume: bool, cache_dir: Path,
               version: str, trained_on: str | None, parent_version: str | None) -> TrainingRun:
    """Step 1: write the config, fill the cache, build model, optimiser and data; restore a checkpoint."""
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

    layout = memory_format(ctx.device, config.memory_format)
    model, module = _network(ctx, config, init_weights, layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_lr
    )
    precision = resolve_precision(config.precision, ctx.device, "training")
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=needs_loss_scaling(precision))

    average = WeightAverage(module) if config.average_from and ctx.is_main else None  # only the main process saves
    state = {"epoch": 0, "best_val_dice": float("-inf"), "best_epoch": 0, "history": []}
    if resume and (out_dir / CHECKPOINT_FILE).exists():
        extra: dict[str, torch.Tensor] = {}
        saved = restore_checkpoint(out_dir, model, optimizer, scheduler, scaler, extra_tensors=extra)
        check_resume_config(saved["config"], config, out_dir)
        state = {k: saved[k] for k in state}
        if average is not None:
            average.load_tensors(extra)
    state["config"] = config.to_dict()

    transform = build_augmentation(config)
    synthesise = transform is not None and config.synth_fraction > 0
    every_map = None
    if synthesise or config.sacrum_review:
        every_map = generation_maps(train_cases, train_data, config.preprocess, config.synth_clusters,
                                    config.synth_prediction, cache_dir, report)
    if config.sacrum_review:
        train_data = with_team_sacrum(train_data, every_map, config.sacrum_review)
    repeats = [config.repeats_for(case.case_id) for case in train_data]
    drawn = [case for case, n in zip(train_data, repeats, strict=True) for _ in range(n)]
    synthesizer, maps = None, None
    if synthesise:
        maps = [m for m, n in zip(every_map, repeats, strict=True) for _ in range(n)]
        synthesizer = Synthesizer(transform.config, config.synth_config())
    dataset = TrainingCases(drawn, transform, config.seed, synthesizer, maps, config.synth_fraction)
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    # On CPU, loader processes would compete with training for the same cores; on a GPU they
    # keep augmentation off the critical path.
    auto_workers = min(8, max(1, (os.cpu_count() or 2) // ctx.world_size)) if ctx.device.type == "cuda" else 0
    workers = config.num_workers if config.num_workers >= 0 else auto_workers
    loader = DataLoader(dataset, batch_size=max(1, math.ceil(config.batch_size / ctx.world_size)), sampler=sampler,
                        num_workers=workers, pin_memory=ctx.device.type == "cuda")
    return TrainingRun(
        ctx=ctx, config=config, out_dir=out_dir, model=model, module=module, optimizer=optimizer,
        scheduler=scheduler, scaler=scaler, autocast=autocast_factory(ctx.device, precision), layout=layout,
        train_data=train_data, val_data=val_data, sampler=sampler, dataset=dataset, loader=loader,
        average=average, state=state, report=report, cancel=cancel, val_ids=[c.case_id for c in val_cases],
        trained_on=trained_on or f"{len(train_cases)} training cases, {len(val_cases)} validation cases",
        version=version, parent_version=parent_version,
    )
