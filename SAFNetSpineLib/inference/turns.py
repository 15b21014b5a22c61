"""Turned passes: read each part of the spine with the network input turned so that the spine stands upright there.

The network reads steep endplates flatter than they are: it pulls each body's tilt
towards the grid's rows (``Testing/benchmarks/RESULTS.md``, "Endplate tilts"), which
flattens the lordosis and can make a body look wedged. A body already level in the grid
comes out right. So, besides the plain pass, the network input is turned in its sagittal
(H, W) plane by each of :data:`TURN_ANGLES_DEG` (in voxel space, as the training's rotation
augmentation turns it, about the point of the spine that pass serves), each pass's
probabilities are turned back, and all passes are blended row by row: a row takes mostly the pass whose turn stands
the spine upright there (its endplates level), found from the plain pass as the local
direction of the line through each row's centroid of body and disc probability.

Every turn is exactly undone (a rotation by the opposite angle); where a turned pass did
not see a voxel (corners turned out of the grid), it has no say there. The turned passes
move outlines only: in ``segment`` the names and the count stay the plain pass's
(:func:`transfer_names`), because on a source left out of training the blend joined
bodies whose disc only the plain pass saw, and the count went wrong more often.

Off by default (``segment --turns on``): it was to become the default only if, among other
things, it lowered the mean endplate-tilt error on the development scans as acquired, and
it did not (2.78 against 2.64 deg; ``Testing/benchmarks/RESULTS.md``, "Turned passes").

torch is imported where it is used, so that the command line reads :data:`DEFAULT_TURNS`
without loading it (start-up time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, VERTEBRA_IDS

if TYPE_CHECKING:
    import torch

#: Whether segment runs the turned passes unless told otherwise (``segment --turns on|off``).
DEFAULT_TURNS = False
#: Turns (degrees, voxel space) of the extra passes; the plain pass is the turn 0. Within the training's
#: rotation augmentation (+-15 deg) plus its sagittal curve (+-20 deg over the grid's height).
TURN_ANGLES_DEG = (-20.0, -10.0, 10.0, 20.0)
#: Spread (degrees) of each pass's weight around the turn that stands the spine upright in a row.
TURN_SIGMA_DEG = 7.0
#: The spine's local direction at a row is a line fitted to the rows' centroids within a Gaussian window of
#: this many rows (sigma; about 2.3 mm per row on a 600 mm field of view: roughly one body and its disc).
SPINE_WINDOW_ROWS = 12.0
#: An outline voxel farther than this (mm) from every named structure of its kind is left out (see transfer_names).
MAX_TRANSFER_MM = 5.0
#: The kinds of structure: background, vertebra (with S), disc.
KINDS = ([0], list(VERTEBRA_IDS), list(DISC_IDS))
#: A turned pass whose weight is under this in every row of the spine is not run (it would change next to nothing).
MIN_PASS_WEIGHT = 0.01
#: Rows whose body and disc probability sums to under this share of the fullest row's are not fitted.
MIN_ROW_SHARE = 0.05


def turn_grid(shape: tuple[int, int, int], degrees: float, centre: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Source positions that turn a (D, H, W) volume by ``degrees`` in its (H, W) plane about ``centre``.

    Rows and columns are turned in voxel units (as the training's rotation augmentation does),
    every slice alike. ``turn_grid(shape, -a, c)`` undoes ``turn_grid(shape, a, c)``.

    Args:
        shape: (D, H, W).
        degrees: The turn; positive turns the content so that a line running down the rows
            and towards higher columns stands upright (see :func:`spine_course`).
        centre: (row, column) of the fixed point, in voxels from the grid's centre.

    Returns:
        (1, D, H, W, 3) normalised (x=W, y=H, z=D) positions for ``grid_sample`` (``align_corners=False``).
    """
    import torch

    depth, height, width = shape
    rows = (torch.arange(height, dtype=torch.float32) + 0.5 - height / 2)[:, None].expand(height, width) - centre[0]
    cols = (torch.arange(width, dtype=torch.float32) + 0.5 - width / 2)[None, :].expand(height, width) - centre[1]
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    source_rows, source_cols = cos * rows - sin * cols + centre[0], sin * rows + cos * cols + centre[1]
    slices = (torch.arange(depth, dtype=torch.float32) + 0.5 - depth / 2)[:, None, None].expand(depth, height, width)
    grid = torch.stack(((source_cols / (width / 2))[None].expand(depth, height, width),
                        (source_rows / (height / 2))[None].expand(depth, height, width),
                        slices / (depth / 2)), dim=-1)
    return grid[None]


@dataclass
class SpineCourse:
    """Where the spine runs through the network grid, row by row (H rows, voxel units from the grid's centre).

    Attributes:
        mass: (H,) body and disc probability in each row (all slices and columns).
        seen: (H,) rows holding at least :data:`MIN_ROW_SHARE` of the fullest row's mass.
        column: (H,) the mass's centroid column in each seen row (0 elsewhere).
        upright: (H,) the turn (degrees) that stands the spine upright at each row; all 0
            where no spine was found.
    """

    mass: np.ndarray
    seen: np.ndarray
    column: np.ndarray
    upright: np.ndarray

    def centre_for(self, weights: np.ndarray) -> tuple[float, float] | None:
        """(row, column) of the spine where ``weights`` (H,) fall on it, or None where they miss it."""
        share = weights * self.mass * self.seen
        if share.sum() <= 1e-9:
            return None
        rows = np.arange(len(self.mass)) + 0.5 - len(self.mass) / 2
        row = float(share @ rows / share.sum())
        return row, float(np.interp(row, rows[self.seen], self.column[self.seen]))


def spine_course(probabilities: torch.Tensor) -> SpineCourse:
    """The spine's course in the plain pass, and per row the turn that would stand it upright.

    The spine's course is the centroid, per row, of the body and disc probabilities (all
    slices together); its local direction at a row is a weighted line fit over the rows
    around it (Gaussian window of :data:`SPINE_WINDOW_ROWS`, each row weighted by its
    probability mass). Rows with too little spine take the nearest fitted row's turn.

    Args:
        probabilities: (C, D, H, W) class probabilities of the plain pass.
    """
    spine = probabilities[list(VERTEBRA_IDS) + list(DISC_IDS)].sum(dim=(0, 1)).double().numpy()  # (H, W)
    height, width = spine.shape
    mass = spine.sum(axis=1)
    seen = mass >= MIN_ROW_SHARE * mass.max() if mass.max() > 0 else np.zeros(height, bool)
    cols = np.arange(width) + 0.5 - width / 2
    column = np.where(seen, spine @ cols / np.maximum(mass, 1e-12), 0.0)
    rows = np.arange(height, dtype=np.float64)
    window = np.exp(-0.5 * ((rows[None, :] - rows[:, None]) / SPINE_WINDOW_ROWS) ** 2) * (seen * mass)[None, :]
    total = window.sum(axis=1)
    safe = np.maximum(total, 1e-12)
    row_mean = window @ rows / safe
    col_mean = window @ column / safe
    spread = (window * (rows[None, :] - row_mean[:, None]) ** 2).sum(axis=1)
    covariance = (window * (rows[None, :] - row_mean[:, None]) * (column[None, :] - col_mean[:, None])).sum(axis=1)
    fitted = (total > 1e-9) & (spread > 1e-6)
    upright = np.zeros(height)
    if fitted.any():
        upright = np.interp(rows, rows[fitted], np.degrees(np.arctan(covariance[fitted] / spread[fitted])))
    return SpineCourse(mass, seen, column, upright)


def _row_weights(upright: np.ndarray, degrees: float) -> np.ndarray:
    """(H,) weight of the pass turned by ``degrees`` in each row."""
    target = np.clip(upright, min(TURN_ANGLES_DEG), max(TURN_ANGLES_DEG))
    return np.exp(-0.5 * ((target - degrees) / TURN_SIGMA_DEG) ** 2)


def _per_row(weights: np.ndarray) -> torch.Tensor:
    """(H,) weights as a (1, H, 1) float32 tensor, to broadcast over (D, H, W)."""
    import torch

    return torch.from_numpy(weights).float()[None, :, None]


def turned_probabilities(predict: Callable[[np.ndarray], torch.Tensor], network_input: np.ndarray,
                         plain: torch.Tensor) -> torch.Tensor:
    """Blend the plain pass with passes on the turned input, row by row (see the module docstring).

    Each turned pass turns about the point of the spine it serves (the spine's centroid over
    the rows that pass weighs most), so that part stays in the middle of its view; a pass
    that no row of the spine asks for (weight under :data:`MIN_PASS_WEIGHT`) is not run.

    Args:
        predict: Network input (D, H, W) float32 -> probabilities (C, D, H, W) float32 on the CPU.
        network_input: The preprocessed image, (D, H, W) float32 (z-scored).
        plain: ``predict(network_input)``, already computed.

    Returns:
        Blended probabilities, (C, D, H, W) float32 on the CPU; each voxel's classes still sum to 1.
    """
    import torch
    import torch.nn.functional as F

    image = torch.from_numpy(np.ascontiguousarray(network_input, dtype=np.float32))
    shape = tuple(image.shape)
    course = spine_course(plain)
    weight = _per_row(_row_weights(course.upright, 0.0)).expand(shape).clone()  # (D, H, W)
    total = plain * weight[None]
    floor = image.min()  # outside the image: its minimum (air), as in the training's augmentation
    for degrees in TURN_ANGLES_DEG:
        rows_weight = _row_weights(course.upright, degrees)
        centre = course.centre_for(rows_weight)
        if centre is None or (rows_weight * course.seen).max() < MIN_PASS_WEIGHT:
            continue
        turned = F.grid_sample((image - floor)[None, None], turn_grid(shape, degrees, centre), mode="bilinear",
                               padding_mode="zeros", align_corners=False)[0, 0] + floor
        back = turn_grid(shape, -degrees, centre)
        probabilities = F.grid_sample(predict(turned.numpy())[None], back, mode="bilinear", padding_mode="zeros",
                                      align_corners=False)[0]
        coverage = F.grid_sample(torch.ones((1, 1) + shape), back, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)[0, 0]
        pass_weight = _per_row(rows_weight) * (coverage > 0.999)
        total += probabilities * pass_weight[None]
        weight += pass_weight
    return levels_from(plain, total / weight[None])


def levels_from(plain: torch.Tensor, blended: torch.Tensor) -> torch.Tensor:
    """Each voxel's kind (background, vertebra or sacrum, disc) as ``blended`` has it, its level as ``plain`` has it.

    The turned passes move outlines; which level a piece is stays the plain pass's reading,
    so that blending rows read at different turns cannot split or rename a piece.

    Args:
        plain: (C, D, H, W) probabilities of the plain pass.
        blended: (C, D, H, W) blended probabilities.

    Returns:
        (C, D, H, W): per kind, ``blended``'s total shared out as ``plain`` shares it (as
        ``blended`` does where ``plain`` gives that kind nothing).
    """
    import torch

    out = torch.empty_like(blended)
    for ids in KINDS:
        reading, total = plain[ids], blended[ids].sum(0, keepdim=True)
        reading_total = reading.sum(0, keepdim=True)
        share = torch.where(reading_total > 1e-6, reading / reading_total.clamp_min(1e-12),
                            blended[ids] / total.clamp_min(1e-12))
        out[ids] = total * share
    return out


def transfer_names(named: np.ndarray, outline: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """The outline's structures, each voxel named as the nearest named voxel of its kind.

    The names (and the count behind them) come from the plain pass; the turned passes only
    move outlines. A body or disc of ``outline`` takes, voxel by voxel, the label of the
    nearest body (with S) or disc of ``named``; an outline voxel more than
    :data:`MAX_TRANSFER_MM` from any structure of its kind in ``named`` (something only the
    turned passes found, which the count never judged) is left out.

    Args:
        named: (I, J, K) label ids, the plain pass's label map after clean-up and naming.
        outline: (I, J, K) label ids of the blend (only their kind counts), same grid.
        spacing_mm: (3,) voxel size along I, J, K.

    Returns:
        (I, J, K) uint8 label ids.
    """
    from scipy import ndimage

    result = np.zeros(named.shape, dtype=np.uint8)
    for ids in KINDS[1:]:
        target, source = np.isin(outline, ids), np.isin(named, ids)
        if not target.any() or not source.any():
            continue
        box = _box(target | source)
        distance, nearest = ndimage.distance_transform_edt(~source[box], sampling=spacing_mm, return_indices=True)
        names = named[box][tuple(nearest)]
        keep = target[box] & (distance <= MAX_TRANSFER_MM)
        region = result[box]
        region[keep] = names[keep]
    return result


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of ``mask`` (not empty) as slices."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)
