"""Preprocessing parameters: saved in every weight manifest, so inference repeats training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from SAFNetSpineLib.errors import SpineInputError

#: What a widened grid holds past the scan (:attr:`PreprocessConfig.widen_fill`).
WIDEN_FILLS = ("image_zero", "network_zero")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a volume is mapped onto the network grid (SAFNet paper defaults).

    Attributes:
        target_shape: Network grid (D, H, W) = (left-right, superior-inferior,
            anterior-posterior) voxels; paper: 18 x 256 x 128.
        ap_crop_fraction: Central fraction of the anterior-posterior field of view kept
            (paper: the central half, 0.5; 1.0 keeps everything).
        min_fov_mm: Smallest in-plane field of view (mm) the grid covers, along superior-inferior
            and anterior-posterior (the latter before the crop). A scan whose field of view is
            smaller is centred in it, with background (0) around, so its anatomy has the size in
            the grid that it has in a scan of that field of view. 0 (the paper): the grid fits
            each scan's own field of view, so the same vertebra is larger in the grid the
            smaller the field of view is.
        widen_fill: What the grid holds where it reaches past the scan (a widened field of
            view): ``"image_zero"`` (until 2026-12-07; manifests without the key) resamples
            the image with 0 there and z-scores the whole grid, so the padding is as dark as
            air and shifts the scan's own z-scores; ``"network_zero"`` z-scores the scan's own
            voxels only and puts 0 there, the value SAFNet's convolutions pad its borders with,
            so a widened scan reads like its own field of view with more border around it.
    """

    target_shape: tuple[int, int, int] = (18, 256, 128)
    ap_crop_fraction: float = 0.5
    min_fov_mm: float = 0.0
    widen_fill: str = "image_zero"

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.target_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"target_shape must be three positive sizes (D, H, W), got {self.target_shape}")
        if not 0.0 < float(self.ap_crop_fraction) <= 1.0:
            raise ValueError(f"ap_crop_fraction must be in (0, 1], got {self.ap_crop_fraction}")
        if not float(self.min_fov_mm) >= 0.0:
            raise ValueError(f"min_fov_mm must be 0 or more, got {self.min_fov_mm}")
        if self.widen_fill not in WIDEN_FILLS:
            raise ValueError(f"widen_fill must be one of {', '.join(WIDEN_FILLS)}, got {self.widen_fill!r}")
        object.__setattr__(self, "target_shape", shape)
        object.__setattr__(self, "ap_crop_fraction", float(self.ap_crop_fraction))
        object.__setattr__(self, "min_fov_mm", float(self.min_fov_mm))

    def to_dict(self) -> dict:
        """JSON-able dict (lists, not tuples)."""
        data = asdict(self)
        data["target_shape"] = list(self.target_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults.

        Raises:
            SpineInputError: unknown keys or invalid values (e.g. a tampered manifest).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpineInputError("preprocess config", f"unknown keys {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise SpineInputError("preprocess config", str(error)) from None
