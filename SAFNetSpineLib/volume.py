"""`Volume`: a voxel array with the geometry that places it in the patient.

One small typed object travels through the whole library instead of loose arrays
and metadata dicts. Conventions:

* ``array`` is indexed ``[i, j, k]`` (the file's first, second, third index; for
  SimpleITK that is x, y, z, i.e. the *transpose* of ``sitk.GetArrayFromImage``).
* ``spacing[n]`` is the voxel size along index axis n in millimetres.
* ``direction[:, n]`` is the unit vector of index axis n in **LPS** patient
  coordinates (ITK/DICOM convention; Slicer's RAS flips the first two rows).
* ``origin`` is the LPS position in mm of the centre of voxel (0, 0, 0).

So a voxel index ``ijk`` sits at ``origin + direction @ (spacing * ijk)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_from(spacing: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """4x4 matrix mapping homogeneous voxel index (i, j, k, 1) to LPS mm for a grid's geometry."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction) * np.asarray(spacing)[None, :]
    affine[:3, 3] = origin
    return affine


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image or label map with exact geometry.

    Attributes:
        array: Voxel values, shape (I, J, K).
        spacing: Voxel size (mm) along i, j, k, shape (3,).
        origin: LPS position (mm) of voxel (0, 0, 0), shape (3,).
        direction: Columns are the LPS unit vectors of the i, j, k axes, shape (3, 3).
        is_label: True for label maps (resampled nearest-neighbour, stored as integers).
    """

    array: np.ndarray
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    is_label: bool = False

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {arr.shape}")
        spacing = np.asarray(self.spacing, dtype=np.float64).reshape(3)
        origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
            raise ValueError(f"Volume spacing must be positive and finite, got {spacing}")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise ValueError("Volume direction must be an orthonormal matrix")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (I, J, K)."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous voxel index (i, j, k, 1) to LPS mm."""
        return affine_from(self.spacing, self.origin, self.direction)

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 voxel-to-RAS matrix (Slicer's IJKToRAS, NIfTI's qform convention)."""
        affine = self.affine_lps
        affine[:3, :] = LPS_TO_RAS @ affine[:3, :]
        return affine

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    def with_array(self, array: np.ndarray, *, is_label: bool | None = None) -> Volume:
        """A Volume on the same grid holding another array of the same shape."""
        if tuple(np.shape(array)) != self.shape:
            raise ValueError(f"array shape {np.shape(array)} does not match grid {self.shape}")
        return replace(self, array=array, is_label=self.is_label if is_label is None else is_label)

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """True if ``other`` has the same shape and geometry (within ``atol`` mm / cosine)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    @classmethod
    def from_affine_ras(cls, array: np.ndarray, affine_ras: np.ndarray, is_label: bool = False) -> Volume:
        """Build from an (I, J, K) array and a 4x4 voxel-to-RAS matrix (e.g. Slicer's IJKToRAS)."""
        affine = np.asarray(affine_ras, dtype=np.float64).copy()
        affine[:3, :] = LPS_TO_RAS @ affine[:3, :]
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        return cls(array, spacing, affine[:3, 3], affine[:3, :3] / spacing[None, :], is_label)

    def to_sitk(self):
        """Convert to a SimpleITK image with the same geometry."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(self.array, (2, 1, 0))))
        image.SetSpacing(tuple(float(v) for v in self.spacing))
        image.SetOrigin(tuple(float(v) for v in self.origin))
        image.SetDirection(tuple(float(v) for v in self.direction.reshape(-1)))
        return image

    @classmethod
    def from_sitk(cls, image, is_label: bool = False) -> Volume:
        """Convert a 3D SimpleITK image (geometry kept exactly)."""
        import SimpleITK as sitk

        array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
        direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        return cls(array, np.array(image.GetSpacing()), np.array(image.GetOrigin()), direction, is_label)
