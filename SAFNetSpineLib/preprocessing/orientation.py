"""Which input index axis runs along each network axis, read from the direction cosines.

The network sees every volume in one anatomical order, whatever the scanner stored:

* D (axis 0): patient left -> right,
* H (axis 1): superior -> inferior,
* W (axis 2): anterior -> posterior.

The array order of a file is never trusted; only its direction matrix is. For each
network axis we pick the index axis most parallel to it (best of the 6 permutations,
so an oblique scan still gets three distinct axes) and whether it runs backwards.
That covers the 48 axis permutations/flips and any obliquity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from SAFNetSpineLib.volume import Volume

#: LPS unit vectors of the network axes, as columns: D -> patient right (-L),
#: H -> inferior (-S), W -> posterior (+P).
NETWORK_AXES_LPS = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]).T


def match_network_axes(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Map network axes (D, H, W) onto input index axes.

    Args:
        direction: (3, 3) LPS direction matrix, columns = unit vectors of index axes i, j, k.

    Returns:
        ``(axes, signs)``: network axis ``a`` runs along input index axis ``axes[a]``,
        forwards if ``signs[a] == 1`` and backwards if ``-1``.
    """
    cosines = NETWORK_AXES_LPS.T @ np.asarray(direction, dtype=np.float64)  # cosines[a, n]
    axes = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(abs(cosines[a, perm[a]]) for a in range(3)),
    )
    signs = tuple(1 if cosines[a, axes[a]] >= 0 else -1 for a in range(3))
    return tuple(axes), signs  # type: ignore[return-value]


def permute_axes(volume: Volume, axes: Sequence[int], flips: Sequence[bool]) -> Volume:
    """The same voxels at the same patient positions, stored in another index order.

    New index axis ``m`` is old axis ``axes[m]``, reversed where ``flips[m]``. Only
    the array order and the geometry describing it change; nothing is resampled.

    Args:
        volume: Any 3D volume.
        axes: A permutation of (0, 1, 2).
        flips: Three booleans.

    Returns:
        The re-indexed Volume.
    """
    axes = [int(n) for n in axes]
    if sorted(axes) != [0, 1, 2] or len(flips) != 3:
        raise ValueError(f"axes must be a permutation of (0, 1, 2) and flips three booleans, got {axes}, {flips}")
    array = np.transpose(volume.array, axes)
    flipped = tuple(m for m in range(3) if flips[m])
    if flipped:
        array = np.flip(array, axis=flipped)
    first = np.zeros(3)  # old index of the new first voxel
    for m in flipped:
        first[axes[m]] = volume.shape[axes[m]] - 1
    signs = np.array([-1.0 if flip else 1.0 for flip in flips])
    origin = volume.origin + volume.direction @ (volume.spacing * first)
    direction = volume.direction[:, axes] * signs[None, :]
    return Volume(array, volume.spacing[axes], origin, direction, volume.is_label)


def reorient_to_network_axes(volume: Volume) -> Volume:
    """The same volume with its array permuted/flipped into (D, H, W) order; no resampling.

    The voxels and their positions in the patient are unchanged: only the index order
    and the geometry describing it change, so an oblique volume stays oblique.

    Args:
        volume: Any 3D volume.

    Returns:
        Volume whose index axes are the network axes (array shape (D, H, W) in input voxels).
    """
    axes, signs = match_network_axes(volume.direction)
    return permute_axes(volume, axes, [sign < 0 for sign in signs])
