"""`FinetuneConfig`: the fine-tuning recipe as data (its defaults are the only ones; the CLI flags come from it).

A fine-tuning run is training (a :class:`~SAFNetSpineLib.training.config.TrainConfig`,
``train``: every training option can be set) plus what is its own: how long to train for
the store, and how the new version is judged and named. Architecture, width and
preprocessing always come from the parent weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.stores.model_store import VERSION_NAME_PATTERN
from SAFNetSpineLib.training.config import TrainConfig

#: Values of ``FinetuneConfig.promotion``.
PROMOTION_RULES = ("auto", "cross-validation", "holdout")
#: TrainConfig fields a fine-tuning run takes from the parent's manifest or its own schedule.
NOT_FROM_RECIPE = ("epochs", "model", "width", "model_options", "preprocess")
#: L2-SP weight towards the parent (TrainConfig.anchor_weight), chosen with
#: Testing/benchmarks/bench_site_finetune.py (RESULTS.md, "Patients, not series; not forgetting"). Against 0:
#: after a new site's 40 steps the parent's own held-out patient kept body Dice 0.66 (parent 0.64; 0.43
#: without), the new site's unseen patients still gained (0.09 -> 0.69; 0.63 without); on a source the
#: parent knew, unseen patients lost 0.031 instead of 0.051. 10 halved the new site's cross-validated gain.
ANCHOR_WEIGHT = 1.0


def finetune_training() -> TrainConfig:
    """The training recipe of fine-tuning, where it differs from training from scratch.

    lr half that of training from scratch (1e-3), so a few corrected cases adapt the model
    without overwriting it (1e-4 changed nothing on a new site); batch 2; the loss the bundled
    weights were trained with (marginal cross-entropy + soft Dice + the set-valued term below a
    reviewed L5), without the endplate-tilt term of their last stage (``tilt_loss_weight`` 0: not
    measured in fine-tuning); L2-SP towards the parent in place of weight decay when
    ``ANCHOR_WEIGHT`` > 0.
    """
    return TrainConfig(lr=5e-4, batch_size=2, dice_loss_weight=1.0, below_lumbar_weight=1.0,
                       anchor_weight=ANCHOR_WEIGHT)


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning recipe (saved in each version's ``finetune.json``).

    Attributes:
        train: The training recipe (:func:`finetune_training`); its ``epochs`` is replaced by the
            schedule below, and architecture, width and preprocessing come from the parent.
        epochs: Training epochs per training (0: from the step budget and the number of cases).
        steps: Optimiser steps per training (0: 25 per stored patient, at least 120, at most 500; a
            patient's further series add little that is new, and each step moves the model further
            from what its parent knew about everyone else).
        promotion: How the new version is judged. "cross-validation": every stored case is
            scored by a version fine-tuned without it and by the parent (``folds`` trainings, then
            one on all cases); "holdout": a hash-chosen share of cases is only validated on;
            "auto": cross-validation up to 30 cases, holdout above.
        folds: Cross-validation folds, dealt by patient (0: 3, or 2 for a 2-patient store).
        min_confidence: Bootstrap confidence (0..1) that the per-case Dice change is positive,
            needed to promote the new version.
        min_gain: Smallest mean per-patient Dice change (0..1) that promotes. On the benchmark
            (RESULTS.md, "Patients, not series; not forgetting") anchored versions whose stored
            patients all gained +0.002 to +0.008 were worse on patients never stored (-0.03 body
            Dice), while a new site's real gains were +0.08 to +0.21.
        val_fraction: Share of cases the hash rule sends to validation (holdout; 0 < f < 1).
        name: Version family name; None uses the architecture ("safnet" -> safnet-v1, ...).
    """

    train: TrainConfig = field(default_factory=finetune_training)
    epochs: int = 0
    steps: int = 0
    promotion: str = "auto"
    folds: int = 0
    min_confidence: float = 0.8
    min_gain: float = 0.01
    val_fraction: float = 0.2
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise SpineInputError("fine-tuning", f"train must be a TrainConfig, got {type(self.train).__name__}")
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
        if not 0.0 <= float(self.min_gain) <= 1.0:
            raise SpineInputError("fine-tuning", f"min gain must be in [0, 1], got {self.min_gain}")
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

    def train_config(self, epochs: int) -> TrainConfig:
        """The TrainConfig of one fine-tuning training of ``epochs`` epochs."""
        return self.train.replace(epochs=epochs)

    def replace(self, **changes) -> FinetuneConfig:
        """A copy with fields changed: its own by name, the training recipe's by TrainConfig field name.

        ``config.replace(steps=40, lr=2e-4, anchor_weight=0.1)``.

        Raises:
            SpineInputError: "fine-tuning: ..." for a name that is neither (or a TrainConfig field
                fine-tuning takes from the parent or its schedule), or an invalid value.
        """
        own = {f.name for f in fields(self)} - {"train"}
        training = {f.name for f in fields(TrainConfig)} - set(NOT_FROM_RECIPE)
        unknown = sorted(set(changes) - own - training)
        if unknown:
            raise SpineInputError("fine-tuning", f"unknown settings {unknown}")
        train = self.train
        if set(changes) & training:
            try:
                train = self.train.replace(**{k: v for k, v in changes.items() if k in training})
            except SpineInputError as error:
                raise SpineInputError("fine-tuning", f"training recipe: {error.problem}") from None
        return dataclasses.replace(self, train=train, **{k: v for k, v in changes.items() if k in own})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["train"] = self.train.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """From :meth:`to_dict`'s form, or from the flat form saved before ``train`` existed
        (``lr``, ``batch_size``, ``device`` ... beside the fine-tuning's own fields; no L2-SP and no
        minimum gain then)."""
        data = dict(data)
        if "train" in data:
            train = TrainConfig.from_dict(data.pop("train"))
        else:  # the flat form predates L2-SP and the minimum gain: those versions had neither
            train = finetune_training().replace(anchor_weight=0.0)
            data.setdefault("min_gain", 0.0)
        own = {f.name for f in fields(cls)} - {"train"}
        flat = {k: v for k, v in data.items() if k not in own and k in {f.name for f in fields(TrainConfig)}}
        return cls(train=train, **{k: v for k, v in data.items() if k in own}).replace(**flat)
