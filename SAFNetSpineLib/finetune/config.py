"""`FinetuneConfig`: the fine-tuning recipe as data (its defaults are the only ones; the CLI flags come from it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune.model_store import VERSION_NAME_PATTERN

#: Values of ``FinetuneConfig.promotion``.
PROMOTION_RULES = ("auto", "cross-validation", "holdout")


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning recipe (saved in each version's ``finetune.json``).

    Attributes:
        epochs: Training epochs per training (0: from the step budget and the number of cases).
        steps: Optimiser steps per training (0: 25 per stored patient, at least 120, at most 500; a
            patient's further series add little that is new, and each step moves the model further
            from what its parent knew about everyone else).
        lr: Adam learning rate; half that of training from scratch (1e-3), so a few corrected
            cases adapt the model without overwriting it (1e-4 changed nothing on a new site).
        batch_size: Cases per optimiser step.
        dice_loss_weight: Weight of the marginal soft-Dice term added to the cross-entropy, as in
            the bundled weights' training (0: cross-entropy only).
        below_lumbar_weight: Weight of the set-valued term below the lowest reviewed lumbar level
            (L5 or L5/S reviewed: the voxels below may be background or S, never another level),
            as in the bundled weights' last stage (0: off).
        promotion: How the new version is judged. "cross-validation": every stored case is
            scored by a version fine-tuned without it and by the parent (``folds`` trainings, then
            one on all cases); "holdout": a hash-chosen share of cases is only validated on;
            "auto": cross-validation up to 30 cases, holdout above.
        folds: Cross-validation folds, dealt by patient (0: 3, or 2 for a 2-patient store).
        min_confidence: Bootstrap confidence (0..1) that the per-case Dice change is positive,
            needed to promote the new version.
        val_fraction: Share of cases the hash rule sends to validation (holdout; 0 < f < 1).
        precision: Training precision: "auto" (bf16 on CPUs with native bf16 and GPUs), "fp32",
            "bf16" or "fp16".
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps".
        augment: Random rotation / contrast / elastic augmentation of training cases.
        seed: Seed of shuffling and augmentation.
        name: Version family name; None uses the architecture ("safnet" -> safnet-v1, ...).
    """

    epochs: int = 0
    steps: int = 0
    lr: float = 5e-4
    batch_size: int = 2
    dice_loss_weight: float = 1.0
    below_lumbar_weight: float = 1.0
    promotion: str = "auto"
    folds: int = 0
    min_confidence: float = 0.8
    val_fraction: float = 0.2
    precision: str = "auto"
    device: str = "auto"
    augment: bool = True
    seed: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 0:
            raise SpineInputError("fine-tuning", f"epochs must be >= 1 (0: automatic), got {self.epochs}")
        if int(self.steps) < 0:
            raise SpineInputError("fine-tuning", f"steps must be >= 1 (0: automatic), got {self.steps}")
        if self.promotion not in PROMOTION_RULES:
            raise SpineInputError("fine-tuning", f"promotion must be one of {', '.join(PROMOTION_RULES)}, "
                                                 f"got {self.promotion}")
        if int(self.folds) == 1 or int(self.folds) < 0:
            raise SpineInputError("fine-tuning", f"folds must be >= 2 (0: automatic), got {self.folds}")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise SpineInputError("fine-tuning", f"min confidence must be in [0, 1], got {self.min_confidence}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise SpineInputError("fine-tuning", f"precision must be auto, fp32, bf16 or fp16, got {self.precision}")
        if not (float(self.lr) > 0 and math.isfinite(float(self.lr))):
            raise SpineInputError("fine-tuning", f"learning rate must be a positive number, got {self.lr}")
        for name in ("dice_loss_weight", "below_lumbar_weight"):
            value = float(getattr(self, name))
            if not (value >= 0 and math.isfinite(value)):
                raise SpineInputError("fine-tuning", f"{name.replace('_', ' ')} must be a number >= 0, got {value}")
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
