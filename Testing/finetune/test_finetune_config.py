"""FinetuneConfig: the training recipe nested once, flat settings routed to it, older summaries still read."""

from __future__ import annotations

import pytest

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune import FinetuneConfig
from SAFNetSpineLib.finetune.config import finetune_training
from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.augment_config import AugmentConfig


def test_flat_settings_go_to_the_training_recipe_or_to_fine_tuning_itself():
    config = FinetuneConfig().replace(steps=40, folds=2, lr=2e-4, anchor_weight=0.5, device="cpu",
                                      augmentation={"noise_prob": 0.0})
    assert (config.steps, config.folds) == (40, 2)
    assert (config.train.lr, config.train.anchor_weight, config.train.device) == (2e-4, 0.5, "cpu")
    assert config.train.augmentation == AugmentConfig(noise_prob=0.0)  # every training option can be set
    assert config.train_config(7) == config.train.replace(epochs=7)
    with pytest.raises(SpineInputError, match=r"unknown settings \['width'\]"):
        FinetuneConfig().replace(width=64)  # taken from the parent weights, never from the recipe


def test_round_trip_and_the_flat_form_saved_before_the_nesting():
    config = FinetuneConfig(promotion="holdout", name="site").replace(batch_size=1, seed=3)
    data = config.to_dict()
    assert data["train"]["batch_size"] == 1 and "batch_size" not in data
    assert FinetuneConfig.from_dict(data) == config
    before = {"epochs": 0, "steps": 0, "lr": 0.0005, "batch_size": 2, "dice_loss_weight": 1.0,
              "below_lumbar_weight": 1.0, "promotion": "auto", "folds": 0, "min_confidence": 0.8,
              "val_fraction": 0.2, "precision": "auto", "device": "auto", "augment": True, "seed": 0, "name": None}
    # Versions of then were trained without L2-SP and judged without a minimum gain.
    assert FinetuneConfig.from_dict(before) == FinetuneConfig(min_gain=0.0).replace(anchor_weight=0.0)
    assert FinetuneConfig.from_dict({**before, "lr": 1e-4, "augment": False}).train == \
        finetune_training().replace(lr=1e-4, augment=False, anchor_weight=0.0)


def test_fine_tuning_defaults_differ_from_training_from_scratch_only_where_said():
    train, scratch = FinetuneConfig().train, TrainConfig()
    differing = {k for k, v in train.to_dict().items() if scratch.to_dict()[k] != v}
    assert differing <= {"lr", "batch_size", "dice_loss_weight", "below_lumbar_weight", "anchor_weight"}
    assert train.lr < scratch.lr and scratch.anchor_weight == 0.0 < train.anchor_weight
    with pytest.raises(SpineInputError, match="fine-tuning: training recipe: anchor_weight must be a number >= 0"):
        FinetuneConfig().replace(anchor_weight=-0.1)
