"""Random intensity augmentation on a (D, H, W) tensor: other sequences, other scanners.

The image is mapped to [0, 1] (its min-max range), changed in the order a scan is made
(tissue contrast: remapping, gamma, inversion; then the receive chain: bias field, thick
slices, blur, ringing, noise) and z-scored again over the whole volume, as preprocessing
does, so the network always sees zero mean and unit variance. No transform here moves
anything, so the label map stays as it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augment_draws import draw, happens, uniform


def remap(values: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear intensity curve through ``K`` equally spaced control points.

    Args:
        values: Any shape, in [0, 1].
        curve: (K,) output at inputs 0, 1/(K-1), ..., 1.

    Returns:
        Same shape as ``values``.
    """
    segments = curve.numel() - 1
    position = values.clamp(0, 1) * segments
    index = position.floor().clamp(max=segments - 1)
    fraction = position - index
    index = index.to(torch.int64)
    return torch.lerp(curve[index], curve[index + 1], fraction)


def _remap_curve(config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    points = int(config.remap_points)
    if draw(gen) < config.remap_monotone_share:
        steps = torch.rand(points - 1, generator=gen) + 0.1
        curve = torch.cat((torch.zeros(1), steps.cumsum(0)))
        return curve / curve[-1]
    return torch.rand(points, generator=gen)


def coarse_noise(coarse: tuple[int, int, int], shape: tuple[int, int, int], gen: torch.Generator) -> torch.Tensor:
    """(D, H, W) smooth random field: standard normal control points on a ``coarse`` grid, upsampled trilinearly."""
    points = torch.randn((1, 1) + tuple(coarse), generator=gen)
    return F.interpolate(points, size=shape, mode="trilinear", align_corners=True)[0, 0]


def _bias_field(shape: tuple[int, int, int], strength: float, gen: torch.Generator) -> torch.Tensor:
    """(D, H, W) smooth positive gain: exp of a coarse (2 x 4 x 4) random field, upsampled."""
    return torch.exp(strength * coarse_noise((2, 4, 4), shape, gen))


def _thick_slices(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Average left-right into ``D / factor`` thicker slices, then interpolate back to D."""
    depth = image.shape[0]
    fewer = max(2, round(depth / factor))
    if fewer >= depth:
        return image
    coarse = F.adaptive_avg_pool3d(image[None, None], (fewer, *image.shape[1:]))
    return F.interpolate(coarse, size=image.shape, mode="trilinear", align_corners=False)[0, 0]


def gaussian_blur_inplane(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur along H and W (voxels), edges replicated; D untouched.

    A sum of shifted copies: for these few taps, an order of magnitude faster on CPU than
    a single-channel convolution.
    """
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).tolist()
    height, width = image.shape[1:]
    padded = F.pad(image[None], (0, 0, radius, radius), mode="replicate")[0]  # (D, H + 2r, W)
    along_h = sum(tap * padded[:, i : i + height] for i, tap in enumerate(taps))
    padded = F.pad(along_h[None], (radius, radius, 0, 0), mode="replicate")[0]  # (D, H, W + 2r)
    return sum(tap * padded[:, :, i : i + width] for i, tap in enumerate(taps))


def _ringing(image: torch.Tensor, keep: float, dim: int) -> torch.Tensor:
    """Truncate k-space along ``dim`` to a fraction ``keep`` of its frequencies (Gibbs ringing)."""
    size = image.shape[dim]
    spectrum = torch.fft.rfft(image, dim=dim)
    kept = max(1, round(keep * spectrum.shape[dim]))
    spectrum.narrow(dim, kept, spectrum.shape[dim] - kept).zero_()
    return torch.fft.irfft(spectrum, n=size, dim=dim)


def zscore(image: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation over the whole volume (a flat image becomes zeros)."""
    centred = image - image.mean()
    std = centred.square().mean().sqrt()
    return centred / std if float(std) > 1e-6 else centred


def random_intensity(image: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Draw and apply the intensity augmentations of one sample.

    Args:
        image: (D, H, W) float32.
        config: Probabilities and ranges.
        gen: Random generator of this sample.

    Returns:
        (D, H, W) float32, z-scored if anything was applied, else ``image`` itself.
    """
    low, high = image.min(), image.max()
    if float(high - low) <= 0:
        return image
    values = (image - low) / (high - low)  # [0, 1]
    applied = False
    if happens(gen, config.remap_prob):
        values = remap(values, _remap_curve(config, gen))
        applied = True
    if happens(gen, config.gamma_prob):
        gamma = math.exp(uniform(gen, (math.log(config.gamma_range[0]), math.log(config.gamma_range[1]))))
        values = values.clamp(min=0).pow(gamma)
        applied = True
    if happens(gen, config.invert_prob):
        values = 1 - values
        applied = True
    if happens(gen, config.bias_prob):
        values = values * _bias_field(tuple(image.shape), config.bias_strength, gen)
        applied = True
    if happens(gen, config.thick_prob):
        values = _thick_slices(values, uniform(gen, config.thick_factor))
        applied = True
    if happens(gen, config.blur_prob):
        values = gaussian_blur_inplane(values, uniform(gen, config.blur_sigma))
        applied = True
    if happens(gen, config.ringing_prob):
        dim = 1 if draw(gen) < 0.5 else 2
        values = _ringing(values, uniform(gen, config.ringing_keep), dim)
        applied = True
    if happens(gen, config.noise_prob):
        sigma = uniform(gen, config.noise_sigma)
        real = values + sigma * torch.randn(values.shape, generator=gen)
        imaginary = sigma * torch.randn(values.shape, generator=gen)
        values = torch.sqrt(real.square() + imaginary.square())  # magnitude images: Rician noise
        applied = True
    return zscore(values) if applied else image
