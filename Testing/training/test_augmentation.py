"""Augmentation: image and label move together, labels stay labels, draws are seeded, TrainConfig maps over."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from block_maps import blocks
from torch.utils.data import DataLoader

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation
from SAFNetSpineLib.training.cache import PreprocessedCase
from SAFNetSpineLib.training.dataset import TrainingCases

PROBS = [name for name in AugmentConfig.__dataclass_fields__ if name.endswith("_prob")]
ALL_ON = AugmentConfig(**{name: 1.0 for name in PROBS})


def test_default_and_all_transforms_give_finite_label_maps_of_the_same_ids():
    image, label = blocks()
    for config in (AugmentConfig(), ALL_ON):
        transform = build_augmentation(config)
        for seed in range(6):
            new_image, new_label = augment_pair(transform, image, label, seed)
            assert new_image.shape == (1, 4, 64, 32) and new_image.dtype == torch.float32
            assert new_label.shape == (4, 64, 32) and new_label.dtype == torch.int64
            assert torch.isfinite(new_image).all()
            assert set(np.unique(new_label.numpy())) <= {0, 2, 3, 12}


def test_draws_are_reproducible_and_vary_with_the_seed():
    image, label = blocks()
    for config in (AugmentConfig(), ALL_ON):
        transform = build_augmentation(config)
        a = augment_pair(transform, image, label, 7)
        b = augment_pair(transform, image, label, 7)
        c = augment_pair(transform, image, label, 8)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])


def test_loader_workers_draw_what_the_main_process_draws():
    image, label = blocks()
    annotated = np.ones(20, bool)
    cases = [PreprocessedCase(f"c{i}", image + i, label, annotated) for i in range(3)]
    dataset = TrainingCases(cases, build_augmentation(ALL_ON), seed=5)
    dataset.set_epoch(2)
    here = [dataset[i] for i in range(3)]
    there = list(DataLoader(dataset, batch_size=None, num_workers=1))
    for a, b in zip(here, there, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    dataset.set_epoch(3)
    assert not torch.equal(dataset[0]["image"], here[0]["image"])


def test_off_is_identity_and_train_config_maps_its_fields():
    image, label = blocks()
    for transform in (None, build_augmentation(AugmentConfig.off())):
        same_image, same_label = augment_pair(transform, image, label, 0)
        assert np.array_equal(same_image[0].numpy(), image) and np.array_equal(same_label.numpy(), label)
    assert build_augmentation(TrainConfig(augment=False)) is None
    # A config saved before AugmentConfig held every setting: its own rotation and contrast fields.
    mapped = TrainConfig.from_dict({"rotate_prob": 0.9, "contrast_gamma": [0.8, 1.2], "contrast_prob": 0.4}).augmentation
    assert mapped.rotate_prob == 0.9 and mapped.gamma_range == (0.8, 1.2) and mapped.gamma_prob == 0.4
    assert mapped.noise_prob == AugmentConfig().noise_prob


def test_config_round_trip_and_bad_values():
    config = AugmentConfig(noise_prob=0.7, fov_keep=(0.5, 0.8))
    assert AugmentConfig.from_dict(config.to_dict()) == config
    assert isinstance(config.to_dict()["fov_keep"], list)
    with pytest.raises(SpineInputError, match="noise_prob must be in"):
        AugmentConfig(noise_prob=1.5)
    with pytest.raises(SpineInputError, match="scale_range must be"):
        AugmentConfig(scale_range=(1.2, 0.8))
    with pytest.raises(SpineInputError, match="unknown keys"):
        AugmentConfig.from_dict({"sharpen_prob": 0.5})
    with pytest.raises(SpineInputError, match="thick_factor"):
        AugmentConfig(thick_factor=(0.5, 2.0))


def test_train_config_takes_augmentation_overrides_from_the_command_line():
    from SAFNetSpineLib.cli import build_parser
    from SAFNetSpineLib.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--augment-option", "noise_prob=0.9",
                                      "--augment-option", "fov_keep=[0.5, 0.8]", "--precision", "fp32"])
    config = config_from_args(args)
    assert config.precision == "fp32" and config.augmentation == AugmentConfig(noise_prob=0.9, fov_keep=(0.5, 0.8))
    assert config.augmentation.fov_keep == (0.5, 0.8)
    assert TrainConfig.from_dict(config.to_dict()) == config
    for bad, message in ((["--augment-option", "noise_prob"], "expected KEY=VALUE"),
                         (["--augment-option", "sharpen_prob=0.2"], "unknown keys")):
        with pytest.raises(SpineInputError, match=message):
            config_from_args(build_parser().parse_args(["train", "--data", "d", "--out", "o", *bad]))
