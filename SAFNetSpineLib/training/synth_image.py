"""A training image synthesised from a generation label map, on torch tensors (SynthSeg-style).

Steps, all drawn from one ``torch.Generator`` (same seed, same sample):

1. the run's spatial augmentation (:func:`~.augment_spatial.sampling_grid`: rotation,
   zoom, field-of-view crop, elastic, bend, slip) moves the generation map and the
   expert label map together (nearest neighbour, one pass);
2. every generation label gets its own mean and spread (:data:`GENERATION_LABELS` draws,
   whatever the map holds), so any tissue can be brighter or darker than any other
   (in half the samples the vertebrae share one mean and the discs another, jittered), and,
   when ``texture_range`` allows it, a smooth patchy texture scaled per label;
3. partial volume (in-plane blur) and a random resolution: left-right slices 1-8 mm and
   in-plane 0.5-2 mm, each averaged down and interpolated back where coarser than the grid;
4. the scanner chain of :mod:`.augment_intensity` (gamma, bias field, ringing, Rician
   noise) and the z-score the network expects.

The label map that comes back is the moved expert map: the loss never sees the
generation labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from SAFNetSpineLib.labels import DISC_IDS, VERTEBRA_IDS
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augment_draws import happens, uniform
from SAFNetSpineLib.training.augment_intensity import (
    coarse_noise,
    gaussian_blur_inplane,
    random_intensity,
    zscore,
)
from SAFNetSpineLib.training.augment_spatial import sampling_grid, warp_labels
from SAFNetSpineLib.training.synth_config import SynthConfig
from SAFNetSpineLib.training.synth_maps import GENERATION_LABELS


def label_intensities(config: SynthConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(GENERATION_LABELS,) means and (GENERATION_LABELS,) spreads, one draw per label.

    With probability ``tissue_share_prob`` the vertebrae share one mean and the discs another
    (plus a small per-label jitter); otherwise every label's mean is independent.
    """
    low, high = config.mean_range
    means = low + (high - low) * torch.rand(GENERATION_LABELS, generator=gen)
    if happens(gen, config.tissue_share_prob):
        jitter = config.tissue_jitter * torch.randn(GENERATION_LABELS, generator=gen)
        for ids in (VERTEBRA_IDS, DISC_IDS):
            index = torch.tensor(ids)
            means[index] = (means[index[0]] + jitter[index]).clamp(low, high)
    low, high = config.std_range
    spreads = low + (high - low) * torch.rand(GENERATION_LABELS, generator=gen)
    return means, spreads


def random_resolution(image: torch.Tensor, config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """Average (D, H, W) down to a drawn acquisition resolution and interpolate back (partial volume).

    Left-right: a slice thickness from ``slice_mm``; H and W: each a resolution from
    ``inplane_mm``; an axis whose drawn size is finer than ``grid_spacing_mm`` keeps its voxels.
    """
    drawn = (uniform(gen, config.slice_mm), uniform(gen, config.inplane_mm), uniform(gen, config.inplane_mm))
    shape = tuple(image.shape)
    coarse = tuple(max(2, round(n * spacing / size)) if size > spacing else n
                   for n, spacing, size in zip(shape, config.grid_spacing_mm, drawn, strict=True))
    if coarse == shape:
        return image
    small = F.adaptive_avg_pool3d(image[None, None], coarse)
    return F.interpolate(small, size=shape, mode="trilinear", align_corners=False)[0, 0]


def smooth_field(shape: tuple[int, int, int], config: SynthConfig, gen: torch.Generator) -> torch.Tensor:
    """A smooth random field of ``shape`` (D, H, W), zero mean and unit standard deviation.

    Gaussian control points every ``texture_mm`` (drawn per sample; per axis in grid voxels
    of ``grid_spacing_mm``), interpolated trilinearly.
    """
    size_mm = uniform(gen, config.texture_mm)
    coarse = tuple(max(2, round(n * spacing / size_mm)) for n, spacing in zip(shape, config.grid_spacing_mm,
                                                                              strict=True))
    field = coarse_noise(coarse, shape, gen)
    return (field - field.mean()) / field.std().clamp(min=1e-6)


def label_texture(generation: torch.Tensor, config: SynthConfig, gen: torch.Generator) -> torch.Tensor | None:
    """(D, H, W) texture to add to the image (each label's amplitude times one smooth field), or None when off."""
    low, high = config.texture_range
    if high <= 0:
        return None  # nothing drawn: the recipe without texture is unchanged sample for sample
    amplitudes = low + (high - low) * torch.rand(GENERATION_LABELS, generator=gen)
    return amplitudes[generation] * smooth_field(tuple(generation.shape), config, gen)


@dataclass(frozen=True)
class Synthesizer:
    """Draws synthetic samples from generation maps (a callable on one sample).

    Attributes:
        spatial: The run's augmentation (its spatial part deforms the maps).
        config: Synthesis ranges.
    """

    spatial: AugmentConfig
    config: SynthConfig

    def __call__(self, generation: torch.Tensor, label: torch.Tensor,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One synthetic sample.

        Args:
            generation: (D, H, W) integer generation labels in [0, GENERATION_LABELS).
            label: (D, H, W) integer expert label ids (the loss target), aligned with ``generation``.
            seed: Seed of this draw.

        Returns:
            image (D, H, W) float32 z-scored, label (D, H, W) int64 (moved with the image).
        """
        gen = torch.Generator().manual_seed(int(seed) % (2**63))
        maps = torch.stack((generation.to(torch.int64), label.to(torch.int64)))
        grid = sampling_grid(self.spatial, tuple(generation.shape), gen, label)
        if grid is not None:
            maps = warp_labels(maps, grid)
        generation, label = maps[0].clamp(0, GENERATION_LABELS - 1), maps[1]
        means, spreads = label_intensities(self.config, gen)
        image = means[generation] + spreads[generation] * torch.randn(generation.shape, generator=gen)
        texture = label_texture(generation, self.config, gen)
        if texture is not None:
            image = image + texture
        sigma = uniform(gen, self.config.partial_volume_sigma)
        if sigma > 0:
            image = gaussian_blur_inplane(image, sigma)
        image = random_resolution(image, self.config, gen)
        image = random_intensity(image.clamp(min=0), self.config.scanner_chain(), gen)
        return zscore(image), label
