"""`TrainConfig`: the training recipe as data (defaults = the SAFNet paper's recipe)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.training.augment_config import AugmentConfig

#: Fields of configs saved before 2026-12-06, and the AugmentConfig fields they were.
SAVED_AUGMENTATION_FIELDS = {
    "rotate_degrees": "rotate_degrees",
    "rotate_prob": "rotate_prob",
    "contrast_gamma": "gamma_range",
    "contrast_prob": "gamma_prob",
    "elastic_prob": "elastic_prob",
    "elastic_spacing": "elastic_spacing",
    "elastic_magnitude": "elastic_magnitude",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved as ``train_config.json`` beside its outputs.

    Defaults follow the paper: Adam (lr 1e-3, weight decay 1e-4), ReduceLROnPlateau on
    validation Dice (mode max, patience 10, factor 0.5), 50 epochs, batch 8, random
    augmentation (AugmentConfig), best-on-validation checkpoint.

    Attributes:
        model: Registry name of the network ("safnet", "unet3d", ...).
        width: Network width (SAFNet paper: 128).
        model_options: Further build_model keyword arguments (e.g. {"use_aspp": False}).
        preprocess: How a volume is mapped onto the network grid (:class:`PreprocessConfig`; a dict is converted).
        epochs: Number of epochs.
        batch_size: Cases per optimiser step (summed over all DDP processes).
        lr: Initial Adam learning rate.
        weight_decay: Adam weight decay (L2 towards 0).
        anchor_weight: L2-SP (Li et al. 2018): alpha of the penalty alpha/2 * ||w - w_init||^2 that
            keeps the weights near the init weights (fine-tuning: the parent's competence where the
            new cases say nothing). It replaces weight decay: with anchor_weight > 0, ``weight_decay``
            is not applied. Needs init weights. 0 = off (training from scratch).
        plateau_patience: Epochs without validation Dice gain before the lr is reduced.
        plateau_factor: Factor applied to the lr on a plateau.
        min_lr: Lower bound of the lr.
        dice_loss_weight: Weight of an added marginal soft-Dice term (0 = paper: CE only).
        below_lumbar_weight: Weight of the set-valued term below the lowest annotated lumbar level
            (there a voxel is background, S or L5/S, never another level; 0 = off).
        tilt_loss_weight: Weight of the term on each annotated structure's sagittal orientation
            (training/tilt_loss.py; 0 = off).
        augment: Apply the random augmentation (``augmentation``) to training cases.
        augmentation: What the random augmentation draws and how strongly (AugmentConfig: rotation,
            scale, field of view, elastic, bend, slip, remapping, gamma, inversion, bias, thick
            slices, blur, ringing, noise; see training/augment_config.py). A dict is taken as
            AugmentConfig fields, the others keeping their defaults.
        precision: "auto" (bf16 autocast on CUDA where supported, else fp16; on CPUs with native
            bf16, bf16; fp32 elsewhere: see runtime.default_precision), "fp32", "bf16" or "fp16".
        device: "auto" (cuda, mps, cpu) or a torch device string.
        memory_format: "auto" (channels_last_3d on CPU, where oneDNN trains SAFNet up to 1.5x faster;
            contiguous elsewhere), "channels_last" or "contiguous".
        num_workers: Data loader worker processes (-1: auto, 0 on CPU).
        val_every: Validate every n epochs (the last epoch is always validated).
        seed: Seed of weights initialisation, shuffling and augmentation.
        case_repeats: Case-id prefix -> how many times each matching training case is drawn
            per epoch (oversamples small sources, e.g. {"chu_": 4}); the longest matching
            prefix wins; unmatched cases are drawn once.
        synth_fraction: Share of training samples synthesised from generation label maps
            (SynthSeg-style, training/synth_image.py) instead of the case's own augmented image;
            0 = off. Needs ``augment``.
        synth_clusters: K, intensity clusters of everything the generation map does not label (1-12).
        synth_prediction: Weights predicting the structures a case does not annotate, for the
            generation maps only (never a loss target): "bundled" (the bundled weights), a weights
            folder, or "" for none. It predicts on its own grid (its manifest's preprocessing); where
            the run's grid differs, the prediction is restored onto the scan and resampled onto it.
        synthesis: Synthesis ranges, SynthConfig field -> value (training/synth_config.py);
            fields not given keep SynthConfig's defaults.
        sacrum_review: Review file of the team's sacrum labels (e.g.
            ``Resources/TrainingLabels/sacrum_review.json``): its accepted training cases get the
            sacrum grown by training/sacrum_labels.py as an annotated S label; "" = off.
        average_from: From this epoch on, also keep the equal-weight mean of the weights after
            every epoch (stochastic weight averaging) and save it, BatchNorm statistics
            recomputed, as ``averaged/`` when the run ends or is cancelled; 0 = off.
        head_lr_factor: Learning-rate factor for a head the initial weights lack (SAFNet's
            ``refine``, see run_state.FRESH_HEADS), so that a zero-started head learns faster
            than the network it corrects; 1 = one rate for all.
    """

    model: str = "safnet"
    width: int = 128
    model_options: dict = field(default_factory=dict)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    epochs: int = 50
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    anchor_weight: float = 0.0
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    dice_loss_weight: float = 0.0
    below_lumbar_weight: float = 0.0
    tilt_loss_weight: float = 0.0
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    precision: str = "auto"
    device: str = "auto"
    memory_format: str = "auto"
    num_workers: int = -1
    val_every: int = 1
    seed: int = 0
    case_repeats: dict = field(default_factory=dict)
    synth_fraction: float = 0.0
    synth_clusters: int = 8
    synth_prediction: str = "bundled"
    synthesis: dict = field(default_factory=dict)
    sacrum_review: str = ""
    average_from: int = 0
    head_lr_factor: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):
            object.__setattr__(self, "augmentation", AugmentConfig.from_dict(self.augmentation))
        if isinstance(self.preprocess, dict):
            try:
                object.__setattr__(self, "preprocess", PreprocessConfig.from_dict(self.preprocess))
            except (TypeError, ValueError) as error:
                raise SpineInputError("training config", f"preprocess: {error}") from None
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.width >= 1, "width must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (math.isfinite(self.lr), "lr must be a finite number"),
            (math.isfinite(self.dice_loss_weight) and self.dice_loss_weight >= 0,
             "dice_loss_weight must be a number >= 0"),
            (math.isfinite(self.below_lumbar_weight) and self.below_lumbar_weight >= 0,
             "below_lumbar_weight must be a number >= 0"),
            (math.isfinite(self.tilt_loss_weight) and self.tilt_loss_weight >= 0,
             "tilt_loss_weight must be a number >= 0"),
            (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)"),
            (self.val_every >= 1, "val_every must be >= 1"),
            (0.0 <= self.synth_fraction <= 1.0, "synth_fraction must be in [0, 1]"),
            (1 <= self.synth_clusters <= 12, "synth_clusters must be 1..12"),
            (math.isfinite(self.anchor_weight) and self.anchor_weight >= 0, "anchor_weight must be a number >= 0"),
            (self.average_from >= 0, "average_from must be >= 0 (0 = no weight averaging)"),
            (math.isfinite(self.head_lr_factor) and self.head_lr_factor > 0, "head_lr_factor must be a number > 0"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16"),
            (self.memory_format in ("auto", "channels_last", "contiguous"),
             "memory_format must be auto, channels_last or contiguous"),
            (all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.case_repeats.values()),
             f"case_repeats must map case-id prefixes to whole numbers >= 1, got {self.case_repeats}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise SpineInputError("training config", problem)
        self.synth_config()

    def synth_config(self):
        """The SynthConfig of ``synthesis`` (raises SpineInputError for unknown or invalid entries)."""
        from SAFNetSpineLib.training.synth_config import SynthConfig

        return SynthConfig.from_dict(dict(self.synthesis))

    @property
    def model_config(self) -> dict:
        """Keyword arguments for build_model (also stored in the weights manifest)."""
        return {"width": self.width, "in_channels": 1, "num_classes": NUM_CLASSES, **self.model_options}

    def repeats_for(self, case_id: str) -> int:
        """Times the training case ``case_id`` is drawn per epoch (see ``case_repeats``)."""
        matches = [prefix for prefix in self.case_repeats if case_id.startswith(prefix)]
        return int(self.case_repeats[max(matches, key=len)]) if matches else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["augmentation"] = self.augmentation.to_dict()
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored and missing ones take the defaults.

        Also reads configs saved before ``augmentation`` held every augmentation setting (up to
        2026-12-06), whose rotation, contrast and elastic settings were fields of their own
        (:data:`SAVED_AUGMENTATION_FIELDS`) beside a partial ``augmentation`` dict.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        old = {new: data[saved] for saved, new in SAVED_AUGMENTATION_FIELDS.items() if saved in data}
        if old:
            values["augmentation"] = {**dict(values.get("augmentation") or {}), **old}
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
