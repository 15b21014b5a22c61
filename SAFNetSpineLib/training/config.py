"""`TrainConfig`: the training recipe as data (defaults = the SAFNet paper's recipe)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.preprocessing.config import PreprocessConfig


def _default_preprocess() -> dict:
    return PreprocessConfig().to_dict()


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved as ``train_config.json`` beside its outputs.

    Defaults follow the paper: Adam (lr 1e-3, weight decay 1e-4), ReduceLROnPlateau on
    validation Dice (mode max, patience 10, factor 0.5), 50 epochs, batch 8, random
    rotation, contrast and elastic deformation, best-on-validation checkpoint.

    Attributes:
        model: Registry name of the network ("safnet", "unet3d", ...).
        width: Network width (SAFNet paper: 128).
        model_options: Further build_model keyword arguments (e.g. {"use_aspp": False}).
        preprocess: PreprocessConfig.to_dict() (target shape, crop, ...).
        epochs: Number of epochs.
        batch_size: Cases per optimiser step (summed over all DDP processes).
        lr: Initial Adam learning rate.
        weight_decay: Adam weight decay (L2).
        plateau_patience: Epochs without validation Dice gain before the lr is reduced.
        plateau_factor: Factor applied to the lr on a plateau.
        min_lr: Lower bound of the lr.
        dice_loss_weight: Weight of an added marginal soft-Dice term (0 = paper: CE only).
        below_lumbar_weight: Weight of the set-valued term below the lowest annotated lumbar level
            (there a voxel is background, S or L5/S, never another level; 0 = off).
        augment: Apply the random augmentations below to training cases.
        rotate_degrees: Maximum in-plane (sagittal) rotation, degrees.
        rotate_prob: Probability of a rotation.
        contrast_gamma: (min, max) gamma of the random contrast change.
        contrast_prob: Probability of a contrast change.
        elastic_prob: Probability of an elastic deformation.
        elastic_spacing: (H, W) distance between the deformation's control points, voxels.
        elastic_magnitude: (min, max) random control point displacement (MONAI Rand2DElastic units;
            (1, 2) moves voxels by about 1 voxel on average, 4-5 at most).
        augmentation: Further augmentation settings, AugmentConfig field -> value (field of view,
            scale, bend, slip, remapping, inversion, bias, thick slices, blur, ringing, noise; see
            training/augment_config.py); fields not given keep AugmentConfig's defaults.
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
            folder, or "" for none. Used only when its preprocessing is the run's.
        synthesis: Synthesis ranges, SynthConfig field -> value (training/synth_config.py);
            fields not given keep SynthConfig's defaults.
        sacrum_review: Review file of the team's sacrum labels (e.g.
            ``Resources/TrainingLabels/sacrum_review.json``): its accepted training cases get the
            sacrum grown by training/sacrum_labels.py as an annotated S label; "" = off.
        average_from: From this epoch on, also keep the equal-weight mean of the weights after
            every epoch (stochastic weight averaging) and save it, BatchNorm statistics
            recomputed, as ``averaged/`` when the run ends or is cancelled; 0 = off.
    """

    model: str = "safnet"
    width: int = 128
    model_options: dict = field(default_factory=dict)
    preprocess: dict = field(default_factory=_default_preprocess)
    epochs: int = 50
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    dice_loss_weight: float = 0.0
    below_lumbar_weight: float = 0.0
    augment: bool = True
    rotate_degrees: float = 15.0
    rotate_prob: float = 0.5
    contrast_gamma: tuple[float, float] = (0.7, 1.5)
    contrast_prob: float = 0.5
    elastic_prob: float = 0.3
    elastic_spacing: tuple[float, float] = (32.0, 32.0)
    elastic_magnitude: tuple[float, float] = (1.0, 2.0)
    augmentation: dict = field(default_factory=dict)
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

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.width >= 1, "width must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)"),
            (self.val_every >= 1, "val_every must be >= 1"),
            (0.0 <= self.synth_fraction <= 1.0, "synth_fraction must be in [0, 1]"),
            (1 <= self.synth_clusters <= 12, "synth_clusters must be 1..12"),
            (self.average_from >= 0, "average_from must be >= 0 (0 = no weight averaging)"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16"),
            (self.memory_format in ("auto", "channels_last", "contiguous"),
             "memory_format must be auto, channels_last or contiguous"),
            (all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.case_repeats.values()),
             f"case_repeats must map case-id prefixes to whole numbers >= 1, got {self.case_repeats}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise SpineInputError("training config", problem)
        self._check_augmentation()
        self.synth_config()

    def synth_config(self):
        """The SynthConfig of ``synthesis`` (raises SpineInputError for unknown or invalid entries)."""
        from SAFNetSpineLib.training.synth_config import SynthConfig

        return SynthConfig.from_dict(dict(self.synthesis))

    def _check_augmentation(self) -> None:
        """Refuse unknown or invalid ``augmentation`` entries (and ones that have their own field)."""
        from SAFNetSpineLib.training.augment_config import LEGACY_FIELDS, AugmentConfig

        own = sorted(set(self.augmentation) & set(LEGACY_FIELDS.values()))
        if own:
            names = ", ".join(f"{k} (use {[o for o, n in LEGACY_FIELDS.items() if n == k][0]})" for k in own)
            raise SpineInputError("training config", f"augmentation sets {names}, which have their own field")
        values = dict(self.augmentation)
        values.update({new: getattr(self, old) for old, new in LEGACY_FIELDS.items()})
        AugmentConfig.from_dict(values)

    @property
    def model_config(self) -> dict:
        """Keyword arguments for build_model (also stored in the weights manifest)."""
        return {"width": self.width, "in_channels": 1, "num_classes": NUM_CLASSES, **self.model_options}

    def repeats_for(self, case_id: str) -> int:
        """Times the training case ``case_id`` is drawn per epoch (see ``case_repeats``)."""
        matches = [prefix for prefix in self.case_repeats if case_id.startswith(prefix)]
        return int(self.case_repeats[max(matches, key=len)]) if matches else 1

    def preprocess_config(self) -> PreprocessConfig:
        """The PreprocessConfig object."""
        return PreprocessConfig.from_dict(self.preprocess)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("contrast_gamma", "elastic_spacing", "elastic_magnitude"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("contrast_gamma", "elastic_spacing", "elastic_magnitude"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
