"""`SynthConfig`: how images are synthesised from generation label maps (config as data).

A synthetic training sample (SynthSeg, Billot et al. 2023) is drawn from a case's
generation label map (:mod:`.synth_maps`): the map is deformed by the run's spatial
augmentation, every generation label gets its own random mean and spread, and the
result goes through a scanner chain (partial volume, random resolution, gamma, bias
field, ringing, noise). Intensities are fractions of [0, 1] before the final z-score;
lengths are millimetres, converted to network voxels with ``grid_spacing_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training.augment_config import AugmentConfig, config_from_dict

#: Fields holding (min, max) ranges.
SYNTH_RANGE_FIELDS = ("mean_range", "std_range", "texture_range", "texture_mm", "partial_volume_sigma", "slice_mm",
                      "inplane_mm", "gamma_range", "noise_sigma")


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the synthesis draws.

    Attributes:
        mean_range: (min, max) mean intensity of a generation label, drawn uniformly per label.
        std_range: (min, max) within-label standard deviation, drawn uniformly per label.
        tissue_share_prob: Probability that all vertebrae share one mean and all discs another
            (each label then jittered by ``tissue_jitter``), as bone and disc tissue do in real
            scans; otherwise every label's mean is independent.
        tissue_jitter: Standard deviation of a label's mean around its tissue's shared mean.
        texture_range: (min, max) amplitude of a smooth within-label texture, drawn uniformly per
            label: one smooth random field per sample (unit standard deviation) is scaled by each
            label's amplitude and added, so a tissue is patchy rather than flat, as fatty or
            oedematous marrow is. (0, 0), the default, adds nothing and draws nothing.
        texture_mm: (min, max) size of the texture's patches, mm (the spacing of the field's
            random control points, drawn per sample).
        partial_volume_sigma: (min, max) in-plane Gaussian blur of the piecewise-constant
            image, voxels (tissue boundaries blend as in a real acquisition).
        slice_mm: (min, max) left-right slice thickness, mm (an average over the slice).
        inplane_mm: (min, max) in-plane resolution, mm, drawn per in-plane axis.
        grid_spacing_mm: (D, H, W) typical voxel size of the network grid, mm (the development
            cases: about 77 mm / 18 slices left-right, about 1 mm in-plane); a resolution
            finer than this changes nothing.
        gamma_prob: Probability of a gamma change of the scanner chain.
        gamma_range: (min, max) gamma (log-uniform).
        bias_prob: Probability of a smooth multiplicative bias field.
        bias_strength: Standard deviation of the bias field's log-gain at its control points.
        ringing_prob: Probability of Gibbs ringing (as in AugmentConfig).
        noise_prob: Probability of Rician noise.
        noise_sigma: (min, max) noise standard deviation, fraction of the intensity range.
    """

    mean_range: tuple[float, float] = (0.0, 1.0)
    std_range: tuple[float, float] = (0.0, 0.1)
    tissue_share_prob: float = 0.5
    tissue_jitter: float = 0.05
    texture_range: tuple[float, float] = (0.0, 0.0)
    texture_mm: tuple[float, float] = (4.0, 12.0)
    partial_volume_sigma: tuple[float, float] = (0.3, 1.0)
    slice_mm: tuple[float, float] = (1.0, 8.0)
    inplane_mm: tuple[float, float] = (0.5, 2.0)
    grid_spacing_mm: tuple[float, float, float] = (4.0, 1.0, 1.0)
    gamma_prob: float = 0.5
    gamma_range: tuple[float, float] = (0.6, 1.7)
    bias_prob: float = 0.5
    bias_strength: float = 0.3
    ringing_prob: float = 0.1
    noise_prob: float = 0.7
    noise_sigma: tuple[float, float] = (0.005, 0.05)

    def __post_init__(self) -> None:
        for name in SYNTH_RANGE_FIELDS:
            pair = tuple(float(v) for v in getattr(self, name))
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise SpineInputError("synthesis config", f"{name} must be (min, max) with 0 <= min <= max, "
                                                          f"got {getattr(self, name)}")
            object.__setattr__(self, name, pair)
        spacing = tuple(float(v) for v in self.grid_spacing_mm)
        if len(spacing) != 3 or min(spacing) <= 0:
            raise SpineInputError("synthesis config", f"grid_spacing_mm must be 3 positive sizes, got {spacing}")
        object.__setattr__(self, "grid_spacing_mm", spacing)
        for name in ("tissue_share_prob", "gamma_prob", "bias_prob", "ringing_prob", "noise_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise SpineInputError("synthesis config", f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.gamma_range[0], self.slice_mm[0], self.inplane_mm[0], self.texture_mm[0]) <= 0 \
                or self.bias_strength < 0 or self.tissue_jitter < 0:
            raise SpineInputError("synthesis config", "gamma, resolutions and texture_mm must be positive, "
                                                      "bias_strength and tissue_jitter >= 0")

    def scanner_chain(self) -> AugmentConfig:
        """The AugmentConfig of the intensity chain applied after the resolution change."""
        return AugmentConfig.off().replace(
            gamma_prob=self.gamma_prob, gamma_range=self.gamma_range, bias_prob=self.bias_prob,
            bias_strength=self.bias_strength, ringing_prob=self.ringing_prob, noise_prob=self.noise_prob,
            noise_sigma=self.noise_sigma)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        """A SynthConfig from ``TrainConfig.synthesis``-style overrides; missing keys take the defaults.

        Raises:
            SpineInputError: unknown keys or invalid values.
        """
        return config_from_dict(cls, data, "synthesis config")
