"""`AugmentConfig`: which random augmentations a training run draws, and how strongly (config as data).

Every transform has a probability (0 turns it off) and a range its strength is drawn
from. The defaults aim at what a new site brings: other sequences (T1, T2, TIRM,
fat-suppressed: contrast remapping, inversion, gamma, bias field), other scanners
(thick slices, noise, blur, ringing), other fields of view (superior-inferior crops,
+-20 % scale) and other anatomy (lateral bending, slips). Units are network voxels of
the (D, H, W) = (left-right, superior-inferior, anterior-posterior) grid; intensities
are fractions of the image's min-max range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from SAFNetSpineLib.errors import SpineInputError

#: Fields holding (min, max) ranges: JSON lists in files, tuples in memory.
RANGE_FIELDS = (
    "scale_range", "fov_keep", "cut_keep", "collapse_keep", "elastic_spacing", "elastic_magnitude", "bend_slices",
    "slip_voxels", "gamma_range", "thick_factor", "blur_sigma", "ringing_keep", "noise_sigma",
)
def config_from_dict(cls, data: dict[str, Any], what: str):
    """``cls(**data)`` for a config dataclass, refusing unknown keys and invalid values.

    Raises:
        SpineInputError: naming ``what`` ("augmentation config", ...) and the problem.
    """
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise SpineInputError(what, f"unknown keys {unknown}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise SpineInputError(what, str(error)) from None


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentations.

    Spatial (image linear, label map nearest-neighbour, through one shared sampling grid):

    Attributes:
        rotate_prob: Probability of an in-plane (sagittal) rotation.
        rotate_degrees: Maximum rotation, degrees (drawn uniformly in +-).
        scale_prob: Probability of an isotropic in-plane zoom.
        scale_range: (min, max) zoom factor (> 1 makes structures larger).
        fov_prob: Probability of a superior-inferior field-of-view crop: a band of rows is
            kept and stretched onto all rows, as a scan of a shorter field of view is squeezed
            into the same 256 rows, so the sacrum or the top levels may fall outside.
        fov_keep: (min, max) fraction of the rows kept.
        cut_prob: Probability of a scan that ends above the sacrum: the superior band of rows is
            kept and stretched onto all rows, so the lowest levels (the sacrum first) fall outside
            and the levels in view must be named without them (0: off, the default).
        cut_keep: (min, max) fraction of the rows kept, from the top.
        elastic_prob: Probability of a smooth in-plane deformation.
        elastic_spacing: (H, W) distance between the random displacement's control points, voxels.
        elastic_magnitude: (min, max) standard deviation of the control-point displacement, voxels.
        bend_prob: Probability of a scoliosis-like lateral bend (left-right shift varying
            smoothly along superior-inferior).
        bend_slices: (min, max) amplitude of the bend, left-right voxels (slices).
        slip_prob: Probability of a slip (spondylolisthesis-like): rows below a random level
            shift anterior-posterior against those above.
        slip_voxels: (min, max) size of the slip, anterior-posterior voxels.
        curve_prob: Probability of a sagittal curvature change: the rows turn progressively,
            as if the spine were bent forwards or backwards around a distant centre, so that
            the lordosis (each body's tilt against its neighbours') changes, not only the
            whole image's orientation (0 in the default recipe).
        curve_degrees: Maximum turn between the top and the bottom row, degrees (drawn uniformly in +-).
        collapse_prob: Probability of a collapsed vertebral body (a wedge or crush fracture):
            one body of the label map, drawn at random, is compressed towards its inferior
            endplate, the image above it following (0 in every recipe so far).
        collapse_keep: (min, max) share of its height the body keeps at its anterior wall; the
            posterior wall keeps a share drawn between that and 1 (a wedge when higher, a crush
            when alike).

    Intensity (the label map is unchanged):

    Attributes:
        remap_prob: Probability of a random intensity remapping (piecewise linear curve).
        remap_monotone_share: Share of remappings that are monotone (the rest are not:
            tissues swap their order of brightness, as between T1 and T2).
        remap_points: Control points of the remapping curve.
        gamma_prob: Probability of a gamma change.
        gamma_range: (min, max) gamma (drawn log-uniformly).
        invert_prob: Probability of inverting the intensities.
        bias_prob: Probability of a smooth multiplicative bias field.
        bias_strength: Standard deviation of the bias field's log-gain at its control points.
        thick_prob: Probability of thick slices: left-right resampled to fewer, thicker
            slices and back (3 mm acquisitions seen as 4-6 mm).
        thick_factor: (min, max) slice thickening factor.
        blur_prob: Probability of an in-plane Gaussian blur.
        blur_sigma: (min, max) blur standard deviation, voxels.
        ringing_prob: Probability of ringing (Gibbs): k-space truncated along one in-plane axis.
        ringing_keep: (min, max) fraction of the frequencies kept.
        noise_prob: Probability of Rician noise.
        noise_sigma: (min, max) noise standard deviation, fraction of the intensity range.
    """

    rotate_prob: float = 0.5
    rotate_degrees: float = 15.0
    scale_prob: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)
    fov_prob: float = 0.25
    fov_keep: tuple[float, float] = (0.6, 0.9)
    cut_prob: float = 0.0
    cut_keep: tuple[float, float] = (0.45, 0.8)
    elastic_prob: float = 0.3
    elastic_spacing: tuple[float, float] = (32.0, 32.0)
    elastic_magnitude: tuple[float, float] = (1.0, 2.0)
    bend_prob: float = 0.15
    bend_slices: tuple[float, float] = (0.5, 2.0)
    slip_prob: float = 0.1
    slip_voxels: tuple[float, float] = (2.0, 6.0)
    curve_prob: float = 0.0
    curve_degrees: float = 20.0
    collapse_prob: float = 0.0
    collapse_keep: tuple[float, float] = (0.5, 0.9)
    remap_prob: float = 0.3
    remap_monotone_share: float = 0.5
    remap_points: int = 5
    gamma_prob: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    invert_prob: float = 0.1
    bias_prob: float = 0.3
    bias_strength: float = 0.3
    thick_prob: float = 0.2
    thick_factor: tuple[float, float] = (1.3, 2.0)
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    ringing_prob: float = 0.15
    ringing_keep: tuple[float, float] = (0.35, 0.7)
    noise_prob: float = 0.3
    noise_sigma: tuple[float, float] = (0.01, 0.06)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith("_prob") or item.name == "remap_monotone_share":
                if not 0.0 <= float(value) <= 1.0:
                    raise SpineInputError("augmentation config", f"{item.name} must be in [0, 1], got {value}")
            elif item.name in RANGE_FIELDS:
                pair = tuple(float(v) for v in value)
                if len(pair) != 2 or not pair[0] <= pair[1]:
                    raise SpineInputError("augmentation config", f"{item.name} must be (min, max), got {value}")
                object.__setattr__(self, item.name, pair)
        positive = ("scale_range", "fov_keep", "cut_keep", "collapse_keep", "elastic_spacing", "gamma_range",
                    "thick_factor", "ringing_keep")
        for name in positive:
            if getattr(self, name)[0] <= 0:
                raise SpineInputError("augmentation config", f"{name} must be positive, got {getattr(self, name)}")
        checks = [
            (self.fov_keep[1] <= 1.0, "fov_keep must be at most 1"),
            (self.cut_keep[1] <= 1.0, "cut_keep must be at most 1"),
            (self.collapse_keep[1] <= 1.0, "collapse_keep must be at most 1"),
            (self.ringing_keep[1] <= 1.0, "ringing_keep must be at most 1"),
            (self.thick_factor[0] >= 1.0, "thick_factor must be >= 1"),
            (int(self.remap_points) >= 2, "remap_points must be >= 2"),
            (min(self.elastic_magnitude + self.bend_slices + self.slip_voxels + self.blur_sigma
                 + self.noise_sigma) >= 0 and self.rotate_degrees >= 0 and self.bias_strength >= 0
             and self.curve_degrees >= 0,
             "magnitudes must be >= 0"),
        ]
        for ok, problem in checks:
            if not ok:
                raise SpineInputError("augmentation config", problem)

    @classmethod
    def off(cls) -> AugmentConfig:
        """Every probability 0 (the identity)."""
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name.endswith("_prob")})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in RANGE_FIELDS:
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults.

        Raises:
            SpineInputError: unknown keys or invalid values.
        """
        return config_from_dict(cls, data, "augmentation config")

    def replace(self, **changes) -> AugmentConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
