"""Synthetic spine label maps on any grid: stacked bodies and discs along a lordotic curve.

The spine is built in the patient frame (LPS mm) and rasterised onto the grid, so the
same anatomy can be laid on an oblique, anisotropic, flipped or permuted grid.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import STRUCTURES, structure_by_name
from SAFNetSpineLib.volume import LPS_TO_RAS, Volume

BODY_MM, DISC_MM, SACRUM_MM = 24.0, 8.0, 60.0
#: Sacrum up to T12, from the bottom.
FULL = ["S", "L5/S", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1", "T12/L1", "T12"]


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


#: LPS direction matrices (columns = index axes) every geometry test runs on.
DIRECTIONS = {
    "axis_aligned": np.eye(3),
    # sagittal as scanners write it: i = A->P, j = S->I, k = R->L (permuted, two axes reversed)
    "permuted_sagittal": np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]]),
    "oblique": _rotation((1, 0.3, 0.2), 24.0) @ np.array([[0, 0, 1.0], [1, 0, 0], [0, -1, 0]]),
    # left-handed (one flipped axis) and oblique
    "flipped_oblique": _rotation((0.2, 1, 1), -31.0) @ np.diag([1.0, -1.0, 1.0]),
}


def item_id(item) -> int:
    return item if isinstance(item, int) else structure_by_name(item).label_id


def layers(items) -> list[tuple[int, float, float]]:
    """(label id, bottom mm, top mm) from the bottom up.

    Items: a name or id (default height: sacrum 60, body 24, disc 8 mm), or (name or id,
    height mm); id 0 is an empty gap.
    """
    out, z = [], 0.0
    for item in items:
        name, height = item if isinstance(item, tuple) else (item, None)
        label_id = item_id(name)
        if height is None:
            height = SACRUM_MM if label_id == 1 else DISC_MM if STRUCTURES[label_id].kind == "disc" else BODY_MM
        out.append((label_id, z, z + height))
        z += height
    return out


def centre_ap(z: np.ndarray, length: float) -> np.ndarray:
    """AP (LPS y) centre of the spine at height z: lordosis bulging 12 mm anteriorly."""
    return -12.0 * np.sin(np.pi * np.clip(z / max(length, 1.0), 0, 1))


def grid(direction: np.ndarray, length: float, thick_mm: float = 3.0, fine_mm: float = 1.25) -> Volume:
    """An empty uint8 grid covering the spine, thick along whichever index axis is most left-right."""
    direction = np.asarray(direction, float)
    lr_axis = int(np.argmax(np.abs(direction[0])))
    spacing = np.array([thick_mm if n == lr_axis else fine_mm for n in range(3)])
    lows, highs = np.array([-24.0, -45.0, -6.0]), np.array([24.0, 30.0, length + 6.0])
    corners = np.array([[x, y, z] for x in (lows[0], highs[0]) for y in (lows[1], highs[1])
                        for z in (lows[2], highs[2])])
    index = corners @ direction / spacing[None, :]
    first, last = np.floor(index.min(axis=0)), np.ceil(index.max(axis=0))
    shape = tuple(int(n) for n in last - first + 1)
    origin = direction @ (spacing * first)
    return Volume(np.zeros(shape, np.uint8), spacing, origin, direction, is_label=True)


def voxel_points(volume: Volume) -> np.ndarray:
    """LPS centre of every voxel, shape (I, J, K, 3)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij"), axis=-1).astype(float)
    return volume.origin + ijk @ (np.asarray(volume.direction) * volume.spacing[None, :]).T


def paint(volume: Volume, items, names=None, depth_mm: float = 32.0, width_mm: float = 36.0) -> Volume:
    """``volume``'s grid with the stacked structures painted (a new Volume).

    ``items`` give the anatomy (see :func:`layers`); ``names`` (one per item, None: the
    item's own) the labels painted, e.g. shifted names a network might give.
    """
    stack = layers(items)
    if names is not None:
        stack = [(item_id(name) if label_id else 0, bottom, top)
                 for (label_id, bottom, top), name in zip(stack, names, strict=True)]
    length = stack[-1][2] if stack else 1.0
    p = voxel_points(volume)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    inside = (np.abs(x) <= width_mm / 2) & (np.abs(y - centre_ap(z, length)) <= depth_mm / 2)
    out = np.zeros(volume.shape, np.uint8)
    for label_id, bottom, top in stack:
        if label_id:
            out[inside & (z >= bottom) & (z < top)] = label_id
    return volume.with_array(out, is_label=True)


def spine(items, direction="oblique", names=None, **kwargs) -> Volume:
    """Paint ``items`` (labelled ``names``) on a fresh grid of the named direction."""
    length = layers(items)[-1][2]
    return paint(grid(DIRECTIONS[direction] if isinstance(direction, str) else direction, length), items, names,
                 **kwargs)


def centre_ras(items, which: int) -> tuple[float, float, float]:
    """RAS point (mm) at the centre of the ``which``-th item from the bottom."""
    stack = layers(items)
    _, bottom, top = stack[which]
    z = (bottom + top) / 2
    lps = np.array([0.0, float(centre_ap(np.array(z), stack[-1][2])), z])
    return tuple(float(v) for v in LPS_TO_RAS @ lps)


def names_of(volume: Volume, items) -> list[str | None]:
    """The label name found at the centre of each item (bottom up), None for background."""
    stack = layers(items)
    affine = volume.affine_lps
    found = []
    for n, _ in enumerate(stack):
        lps = LPS_TO_RAS @ np.array(centre_ras(items, n))
        index = np.rint(np.linalg.solve(affine[:3, :3], lps - affine[:3, 3])).astype(int)
        value = int(volume.array[tuple(index)])
        found.append(STRUCTURES[value].short_name if value else None)
    return found


def hint_text(name: str, point) -> str:
    """``NAME=R,A,S`` as the user types it."""
    r, a, s = point
    return f"{name}={r:.3f},{a:.3f},{s:.3f}"
