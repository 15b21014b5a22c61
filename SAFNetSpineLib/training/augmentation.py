"""Training augmentation on torch tensors: one spatial resampling, then intensity changes, seeded per sample.

A sample ``{"image": (D, H, W), "label": (D, H, W)}`` in network axes (D = left-right,
H = superior-inferior, W = anterior-posterior) is first moved by the spatial draws of
:mod:`.augment_spatial` (rotation, zoom, field-of-view crop, elastic, lateral bend,
slip: one grid, image trilinear, labels nearest neighbour), then given another contrast
and another scanner's artefacts by :mod:`.augment_intensity`. What is drawn and how
strongly is an :class:`~.augment_config.AugmentConfig`; every draw comes from one
``torch.Generator`` seeded per sample, so the same seed gives the same sample on any
machine and in any worker process. A whole draw costs tens of milliseconds per case on
one core (``Testing/benchmarks/bench_training.py``), a small share of a training step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augment_intensity import random_intensity
from SAFNetSpineLib.training.augment_spatial import sampling_grid, warp


@dataclass(frozen=True)
class SpineAugmentation:
    """The random augmentation of a training run (a callable on one sample).

    Attributes:
        config: What is drawn and how strongly.
    """

    config: AugmentConfig

    def __call__(self, image: torch.Tensor, label: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one sample.

        Args:
            image: (D, H, W) float32.
            label: (D, H, W) integer ids.
            seed: Seed of this draw (same seed, same result).

        Returns:
            image (D, H, W) float32 and label (D, H, W) int64.
        """
        gen = torch.Generator().manual_seed(int(seed) % (2**63))
        image = image.to(torch.float32)
        label = label.to(torch.int64)
        grid = sampling_grid(self.config, tuple(image.shape), gen, label)
        if grid is not None:
            image, label = warp(image, label, grid)
        return random_intensity(image, self.config, gen), label


def build_augmentation(config) -> SpineAugmentation | None:
    """The random augmentation of a config, or None when augmentation is off.

    Args:
        config: A TrainConfig (its ``augmentation``; ``augment`` False turns everything off) or
            an AugmentConfig.
    """
    if isinstance(config, AugmentConfig):
        return SpineAugmentation(config)
    return SpineAugmentation(config.augmentation) if config.augment else None


def augment_pair(transform, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to numpy arrays with a fixed seed.

    Args:
        transform: From :func:`build_augmentation` (None: no change).
        image: (D, H, W) float32.
        label: (D, H, W) integer ids.
        seed: Seed of this draw (same seed, same augmentation).

    Returns:
        image (1, D, H, W) float32 tensor and label (D, H, W) int64 tensor.
    """
    image_tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    label_tensor = torch.from_numpy(label.astype(np.int64))
    if transform is None:
        return image_tensor.clone()[None], label_tensor
    new_image, new_label = transform(image_tensor, label_tensor, seed)
    return new_image.contiguous()[None], new_label.contiguous()
