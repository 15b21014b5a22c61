"""`NetworkGrid`: the network's (D, H, W) voxel grid placed in the patient.

Preprocessing and its inverse are both plain resamplings between two grids in
patient space: the input's own grid and this one. The grid runs along the input's
(permuted, possibly flipped) index axes, so an oblique scan stays oblique and nothing
is rotated; it covers the input's field of view edge to edge along left-right and
superior-inferior, and the central ``ap_crop_fraction`` of it along anterior-posterior.
With ``min_fov_mm`` a smaller in-plane field of view is first widened about its centre
to that many mm (the grid then reaches past the input, where the image reads 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.preprocessing.orientation import match_network_axes
from SAFNetSpineLib.volume import Volume, affine_from


@dataclass(frozen=True, eq=False)
class NetworkGrid:
    """Geometry of a network input/output array of shape (D, H, W).

    Attributes:
        shape: Voxels along D (left-right), H (superior-inferior), W (anterior-posterior).
        spacing: Voxel size (mm) along D, H, W, shape (3,).
        origin: LPS position (mm) of the centre of network voxel (0, 0, 0), shape (3,).
        direction: (3, 3) LPS matrix whose columns are the unit vectors of D, H, W.
    """

    shape: tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing", np.asarray(self.spacing, dtype=np.float64).reshape(3))
        object.__setattr__(self, "origin", np.asarray(self.origin, dtype=np.float64).reshape(3))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64).reshape(3, 3))

    @classmethod
    def covering(cls, volume: Volume, config: PreprocessConfig) -> NetworkGrid:
        """The network grid for ``volume``: its field of view, AP-cropped, at ``config.target_shape``.

        Voxel centres follow the "edges align" convention: the grid's outer voxel
        faces coincide with the input's outer faces (or the crop planes, or the faces of
        the field widened to ``config.min_fov_mm``), so resizing does not shift the image
        by half a voxel.
        """
        axes, signs = match_network_axes(volume.direction)
        first_centre = np.zeros(3)  # input continuous index of network voxel (0, 0, 0)
        spacing = np.zeros(3)
        direction = np.zeros((3, 3))
        for a in range(3):
            n = axes[a]
            size = volume.shape[n]
            kept = config.ap_crop_fraction if a == 2 else 1.0
            field = size if a == 0 else max(size, config.min_fov_mm / volume.spacing[n])  # input voxels
            margin = (size - field * kept) / 2.0  # input voxels cut away at each end (< 0: background added)
            step = field * kept / config.target_shape[a]  # input voxels per network voxel
            if signs[a] > 0:
                first_centre[n] = -0.5 + margin + 0.5 * step
            else:
                first_centre[n] = size - 0.5 - margin - 0.5 * step
            spacing[a] = step * volume.spacing[n]
            direction[:, a] = signs[a] * volume.direction[:, n]
        origin = volume.origin + volume.direction @ (volume.spacing * first_centre)
        return cls(config.target_shape, spacing, origin, direction)

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping a network voxel index (d, h, w, 1) to LPS mm."""
        return affine_from(self.spacing, self.origin, self.direction)

    def as_volume(self, array: np.ndarray, is_label: bool = False) -> Volume:
        """A network array (D, H, W) as a Volume in patient space (e.g. to view it in Slicer)."""
        if tuple(np.shape(array)) != self.shape:
            raise ValueError(f"array shape {np.shape(array)} does not match network grid {self.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, is_label)

    def to_dict(self) -> dict:
        """JSON-able description (e.g. to cache preprocessed cases next to their grid)."""
        return {
            "shape": list(self.shape),
            "spacing": self.spacing.tolist(),
            "origin": self.origin.tolist(),
            "direction": self.direction.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetworkGrid:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["shape"]), data["spacing"], data["origin"], data["direction"])
