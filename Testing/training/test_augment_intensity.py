"""Intensity augmentation: geometry untouched, output z-scored and finite, each transform does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augment_intensity import gaussian_blur_inplane, random_intensity, remap
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation

OFF = AugmentConfig.off()
INTENSITY = ["remap_prob", "gamma_prob", "invert_prob", "bias_prob", "thick_prob", "blur_prob",
             "ringing_prob", "noise_prob"]


def phantom_like(seed: int = 0):
    """(8, 64, 32): three blocks of different brightness on a noisy background, z-scored."""
    rng = np.random.default_rng(seed)
    label = np.zeros((8, 64, 32), np.uint8)
    label[1:7, 10:22, 8:24] = 3
    label[1:7, 26:34, 8:24] = 12
    label[1:7, 40:52, 8:24] = 2
    image = label.astype(np.float32) * 10.0 + rng.normal(0, 1.0, label.shape).astype(np.float32)
    image = (image - image.mean()) / image.std()
    return image, label


@pytest.mark.parametrize("name", [*INTENSITY, "all"])
def test_intensity_transform_keeps_labels_and_normalises(name):
    config = OFF.replace(**{n: 1.0 for n in INTENSITY}) if name == "all" else OFF.replace(**{name: 1.0})
    image, label = phantom_like()
    transform = build_augmentation(config)
    for seed in range(3):
        new_image, new_label = augment_pair(transform, image, label, seed)
        assert np.array_equal(new_label.numpy(), label)  # geometry preserved
        values = new_image[0].numpy()
        assert np.isfinite(values).all() and values.shape == image.shape
        assert abs(values.mean()) < 1e-4 and values.std() == pytest.approx(1.0, abs=1e-3)
        assert not np.allclose(values, image, atol=1e-3), (name, seed)


def test_remap_curves():
    x = torch.linspace(0, 1, 9)
    assert torch.allclose(remap(x, torch.tensor([0.0, 0.5, 1.0])), x)
    assert torch.allclose(remap(torch.tensor([0.0, 0.25, 0.5, 1.0]), torch.tensor([1.0, 0.0, 1.0])),
                          torch.tensor([1.0, 0.5, 0.0, 1.0]))
    image, _ = phantom_like()
    flat = torch.from_numpy(image)
    order = torch.argsort(flat.flatten())
    monotone = OFF.replace(remap_prob=1.0, remap_monotone_share=1.0)
    other = OFF.replace(remap_prob=1.0, remap_monotone_share=0.0)
    reversed_any = False
    for seed in range(4):
        kept = random_intensity(flat, monotone, torch.Generator().manual_seed(seed)).flatten()[order]
        assert (kept.diff() >= -1e-5).all()  # brightness order of voxels preserved
        mixed = random_intensity(flat, other, torch.Generator().manual_seed(seed)).flatten()[order]
        reversed_any |= bool((mixed.diff() < -1e-3).any())
    assert reversed_any  # non-monotone curves swap tissue brightness order


def test_inversion_thick_slices_blur_ringing_and_noise_have_their_effect():
    image, label = phantom_like()
    flat = torch.from_numpy(image)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    inverted = random_intensity(flat, OFF.replace(invert_prob=1.0), gen())
    assert np.corrcoef(inverted.flatten(), flat.flatten())[0, 1] == pytest.approx(-1.0, abs=1e-5)

    def roughness(volume: torch.Tensor, dim: int) -> float:
        return float(volume.diff(dim=dim).abs().mean())

    white = torch.randn((8, 64, 32), generator=gen())  # white noise: smoothing shows plainly
    thick = random_intensity(white, OFF.replace(thick_prob=1.0, thick_factor=(2.0, 2.0)), gen())
    assert roughness(thick, 0) < 0.8 * roughness(white, 0)
    assert torch.allclose(gaussian_blur_inplane(torch.ones(2, 8, 8), 1.0), torch.ones(2, 8, 8))
    blurred = random_intensity(white, OFF.replace(blur_prob=1.0, blur_sigma=(1.5, 1.5)), gen())
    assert roughness(blurred, 1) < 0.6 * roughness(white, 1) and roughness(blurred, 2) < 0.6 * roughness(white, 2)
    one_slice = torch.zeros(3, 16, 16)
    one_slice[1] = torch.rand(16, 16, generator=gen())
    spread = gaussian_blur_inplane(one_slice, 1.5)
    assert not spread[0].any() and not spread[2].any()  # in-plane only: slices stay apart
    step = torch.zeros(2, 64, 32)
    step[:, 20:44, 4:28] = 1.0  # edges along both in-plane axes (ringing picks one)
    rung = random_intensity(step, OFF.replace(ringing_prob=1.0, ringing_keep=(0.4, 0.4)), gen())
    flat_values = rung[:, 25:40, 8:24].flatten()  # inside the step, away from its edges
    assert float(flat_values.max() - flat_values.min()) > 0.02  # oscillation (Gibbs) in a flat region
    clean = torch.full((2, 64, 32), 0.5)
    clean[:, :, :16] = 1.0
    noisy = random_intensity(clean, OFF.replace(noise_prob=1.0, noise_sigma=(0.05, 0.05)), gen())
    assert float(noisy[:, :, 20:].std()) > 0.01


def test_flat_image_is_returned_unchanged():
    flat = torch.full((2, 8, 8), 3.0)
    config = OFF.replace(**{n: 1.0 for n in INTENSITY})
    assert torch.equal(random_intensity(flat, config, torch.Generator().manual_seed(0)), flat)
