"""`TrainingRun`: what the steps of one training run share, and `set_up_run`, which builds it.

The training loop (:mod:`.loop`) is three named steps over one ``TrainingRun``:
:func:`set_up_run` (cache, model, optimiser, data, resume), ``run_epoch`` and
``validate_and_save``. ``TrainingRun.state`` (:class:`RunProgress`) is the JSON part of the
checkpoint (epoch, best_val_dice, best_epoch, history; the config beside them), so a resume
restores it as is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
from SAFNetSpineLib.training.anchor import capture_anchor
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
class RunProgress:
    """Where a run is: the JSON part of its checkpoint (besides the config).

    Attributes:
        epoch: Epochs completed (0 before the first).
        best_val_dice: Best mean validation Dice so far (-inf before any; NaN for a run
            without validation cases, where the latest epoch counts as best).
        best_epoch: Epoch (1-based) of the best weights, 0 before any.
        history: One record per completed epoch (see ``train_log.jsonl``).
    """

    epoch: int = 0
    best_val_dice: float = float("-inf")
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)

    def to_checkpoint(self, config: TrainConfig) -> dict:
        """The checkpoint's JSON state (a NaN best Dice is saved as -inf, which JSON can hold)."""
        best = self.best_val_dice if math.isfinite(self.best_val_dice) else float("-inf")
        return {**asdict(self), "best_val_dice": best, "config": config.to_dict()}

    @classmethod
    def from_checkpoint(cls, saved: dict) -> RunProgress:
        """From :meth:`to_checkpoint`'s form (extra keys, such as the config, ignored)."""
        return cls(int(saved["epoch"]), float(saved["best_val_dice"]), int(saved["best_epoch"]),
                   list(saved["history"]))


@dataclass(frozen=True)
class RunRequest:
    """What a training run was asked to do (:func:`~.loop.train`'s arguments, resolved).

    Attributes:
        config: The recipe (architecture already taken from init weights).
        train_cases: Cases to learn from.
        val_cases: Held-out validation cases (may be empty).
        out_dir: Run folder.
        cache_dir: Preprocessed-case cache.
        init_weights: Weights folder to start from, or None.
        parent_version: Version of the init weights, or None.
        resume: Continue the checkpoint in ``out_dir`` if there is one.
        version: Version name of the weights written.
        trained_on: Manifest text on the training data (None: case counts).
        trained_fov_mm: [smallest, largest] in-plane field of view (mm) of the training scans and the
            init weights' (the manifest's ``trained_fov_mm``), or None.
    """

    config: TrainConfig
    train_cases: list[Case]
    val_cases: list[Case]
    out_dir: Path
    cache_dir: Path
    init_weights: Path | None = None
    parent_version: str | None = None
    resume: bool = False
    version: str = "safnet-trained"
    trained_on: str | None = None
    trained_fov_mm: list | None = None


@dataclass
class TrainingRun:
    """Everything the steps of one run share.

    Attributes:
        ctx: This process's place in the (possibly single-process) run.
        request: What the run was asked to do (config, cases, folders, names).
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
        anchor: fp32 copies of the init weights' parameters, the L2-SP anchor
            (``config.anchor_weight`` > 0 only), or None.
        state: Where the run is (the JSON part of the checkpoint).
        report: Progress callable (a no-op off the main process).
        cancel: Cancel hook (see :func:`SAFNetSpineLib.cancel.is_cancelled`).
    """

    ctx: DistributedContext
    request: RunRequest
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
    anchor: list[torch.Tensor] | None
    state: RunProgress
    report: Callable
    cancel: object

    @property
    def config(self) -> TrainConfig:
        """The recipe."""
        return self.request.config

    @property
    def out_dir(self) -> Path:
        """The run folder."""
        return self.request.out_dir

    @property
    def val_ids(self) -> list[str]:
        """Validation case ids (written into the best weights' metrics)."""
        return [case.case_id for case in self.request.val_cases]

    def manifest(self, metrics: dict) -> ModelManifest:
        """The manifest of a weights folder this run writes."""
        request, config = self.request, self.request.config
        trained_on = request.trained_on or (f"{len(request.train_cases)} training cases, "
                                            f"{len(request.val_cases)} validation cases")
        return ModelManifest(architecture=config.model, model_config=config.model_config,
                             preprocess=config.preprocess.to_dict(), trained_on=trained_on,
                             version=request.version, metrics=metrics, parent_version=request.parent_version,
                             trained_fov_mm=request.trained_fov_mm)


def check_resume_config(saved: dict, config: TrainConfig, out_dir: Path) -> None:
    """Refuse to resume a checkpoint written with a different recipe (see :data:`RESUMABLE_CHANGES`)."""
    current = config.to_dict()
    saved = TrainConfig.from_dict(saved).to_dict()  # fields added since the checkpoint take their defaults
    differing = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if differing:
        raise SpineInputError(out_dir, f"cannot resume: the config differs from the checkpoint's in {differing}")


#: Parameter prefixes a run may add to its initial weights (they start as the model builds them).
FRESH_HEADS = ("refine.",)


def _parameter_groups(module: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """Adam's parameter groups: the network, and a fresh head (FRESH_HEADS) at ``head_lr_factor`` times the rate."""
    named = list(module.named_parameters())
    fresh = [p for name, p in named if name.startswith(FRESH_HEADS)]
    groups = [{"params": [p for name, p in named if not name.startswith(FRESH_HEADS)]}]
    if fresh:
        groups.append({"params": fresh, "lr": config.lr * config.head_lr_factor})
    return groups


def _network(ctx: DistributedContext, config: TrainConfig, init_weights: Path | None,
             layout: torch.memory_format) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model as trained, plain module inside it), seeded, on the device, DDP-wrapped under torchrun."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.model_config)
    if init_weights is not None:
        source, _ = load_model(init_weights)
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
        unfit = list(unexpected) + [k for k in missing if not k.startswith(FRESH_HEADS)]
        if unfit:
            raise SpineInputError(init_weights, f"weights do not fit the run's network ({len(unfit)} tensors, "
                                                f"e.g. {unfit[0]}); other model options than a new head?")
    model.to(ctx.device, memory_format=layout)
    module = model
    if ctx.distributed:
        if ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            module = model
        model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    enable_cudnn_autotune(ctx.device)
    return model, module


def set_up_run(ctx: DistributedContext, request: RunRequest, progress, cancel) -> TrainingRun:
    """Step 1: write the config, fill the cache, build model, optimiser and data; restore a checkpoint."""
    config, out_dir, cache_dir, init_weights = request.config, request.out_dir, request.cache_dir, request.init_weights
    train_cases, val_cases = list(request.train_cases), list(request.val_cases)
    report = progress if (progress is not None and ctx.is_main) else (lambda *a, **k: None)
    if config.anchor_weight and init_weights is None:  # refused before any work
        raise SpineInputError(out_dir, "anchor_weight keeps the weights near the init weights: give init weights")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config.to_dict(), out_dir / CONFIG_FILE)
    # Each process fills its share of the cache, then all read every case from it.
    grid = config.preprocess.to_dict()
    every = train_cases + val_cases
    preprocess_cases(every[ctx.rank::ctx.world_size], grid, cache_dir, report)
    ctx.barrier()
    train_data = preprocess_cases(train_cases, grid, cache_dir)
    val_data = preprocess_cases(val_cases, grid, cache_dir)

    layout = memory_format(ctx.device, config.memory_format)
    model, module = _network(ctx, config, init_weights, layout)
    anchor = capture_anchor(module) if config.anchor_weight else None  # the parent's, before any step or resume
    # L2-SP (anchor_weight) replaces weight decay towards 0.
    weight_decay = 0.0 if config.anchor_weight else config.weight_decay
    optimizer = torch.optim.Adam(_parameter_groups(module, config), lr=config.lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_lr
    )
    precision = resolve_precision(config.precision, ctx.device, "training")
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=needs_loss_scaling(precision))

    average = WeightAverage(module) if config.average_from and ctx.is_main else None  # only the main process saves
    state = RunProgress()
    if request.resume and (out_dir / CHECKPOINT_FILE).exists():
        extra: dict[str, torch.Tensor] = {}
        saved = restore_checkpoint(out_dir, model, optimizer, scheduler, scaler, extra_tensors=extra)
        check_resume_config(saved["config"], config, out_dir)
        state = RunProgress.from_checkpoint(saved)
        if average is not None:
            average.load_tensors(extra)

    transform = build_augmentation(config)
    synthesise = transform is not None and config.synth_fraction > 0
    every_map = None
    if synthesise or config.sacrum_review:
        every_map = generation_maps(train_cases, train_data, grid, config.synth_clusters,
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
        ctx=ctx, request=request, model=model, module=module, optimizer=optimizer,
        scheduler=scheduler, scaler=scaler, autocast=autocast_factory(ctx.device, precision), layout=layout,
        train_data=train_data, val_data=val_data, sampler=sampler, dataset=dataset, loader=loader,
        average=average, anchor=anchor, state=state, report=report, cancel=cancel,
    )
