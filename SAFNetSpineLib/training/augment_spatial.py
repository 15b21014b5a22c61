"""Random spatial augmentation as one sampling grid: rotation, zoom, field-of-view crop, elastic, bends, slip,
a collapsed body.

All spatial draws are composed into a single (D, H, W, 3) grid of source positions, so
the image is interpolated once (trilinear) and the label map once (nearest neighbour)
with ``torch.nn.functional.grid_sample``: no chain of resamplings blurring the image, and
image and labels follow exactly the same mapping. The elastic displacement is drawn on a
coarse grid of control points and upsampled (bicubic), which costs next to nothing
against a dense random field. Rotation, zoom and the elastic field act in the sagittal
(H, W) plane, identical for every slice: the few thick left-right slices do not support
through-plane rotation. The lateral bend and the slip move voxels along D and W as
smooth functions of H; the sagittal curve (:func:`curve`) turns rows progressively in the (H, W) plane.
A collapsed body (:func:`collapse`) is placed from the label map and acts nearest to the input,
so the other transforms move the fractured spine as a whole.

Coordinates: ``grid_sample`` with ``align_corners=False``; a voxel's centred coordinate
along an axis of n voxels is ``u * n / 2`` for its normalised coordinate ``u``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from SAFNetSpineLib.labels import SACRUM_ID, VERTEBRA_IDS
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augment_draws import draw, happens, sign, uniform


def _centred(n: int) -> torch.Tensor:
    """(n,) centred voxel coordinates of an axis: i + 0.5 - n/2."""
    return torch.arange(n, dtype=torch.float32) + 0.5 - n / 2


def curve(rows: torch.Tensor, cols: torch.Tensor, turn: float, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source positions of a sagittal bend: row r turns by ``turn * r / height`` about a distant centre.

    The output is the input bent around a centre on the row-0 line, ``height / turn`` voxels
    to the posterior (positive ``turn``) or anterior side: rows (superior-inferior) become arcs,
    so a structure at row r is turned by ``turn * r / height`` radians and two structures
    ``dr`` rows apart by ``turn * dr / height`` against each other.

    Args:
        rows: (H, W) output row coordinates (centred voxels).
        cols: (H, W) output column coordinates (centred voxels).
        turn: Total turn over the grid's height, radians (0: identity).
        height: H.

    Returns:
        (rows, cols) source coordinates, same shapes.
    """
    if abs(turn) < 1e-6:
        return rows, cols
    radius = height / turn  # signed: the centre lies at column ``radius``
    side = math.copysign(1.0, radius)
    distance = side * torch.sqrt(rows**2 + (radius - cols) ** 2)
    angle = torch.atan2(side * rows, side * (radius - cols))
    return angle * radius, radius - distance


def collapse(rows: torch.Tensor, cols: torch.Tensor, band: tuple[float, float, float, float],
             keep: tuple[float, float]) -> torch.Tensor:
    """Source rows of a body compressed towards its inferior endplate, the rows above it following.

    Rows run superior -> inferior and columns anterior -> posterior (network axes). In each
    column the body's rows [top, bottom) are shown over its lowest ``k`` share, ``k`` running
    linearly from ``keep[0]`` at the anterior wall to ``keep[1]`` at the posterior wall (held
    beyond them); everything above moves down by the height lost, everything below stays.

    Args:
        rows: (H, W) source rows before the collapse (centred voxels).
        cols: (H, W) source columns (centred voxels), unchanged by it.
        band: (top, bottom, anterior, posterior) edges of the body, centred voxels.
        keep: Height kept at the (anterior, posterior) wall, each in (0, 1].

    Returns:
        (H, W) source rows.
    """
    top, bottom, anterior, posterior = band
    height = bottom - top
    share = ((cols - anterior) / max(posterior - anterior, 1.0)).clamp(0.0, 1.0)
    k = keep[0] + (keep[1] - keep[0]) * share
    inside = bottom - (bottom - rows) / k
    above = rows - (1.0 - k) * height
    return torch.where(rows >= bottom, rows, torch.where(rows >= bottom - k * height, inside, above))


def body_band(label: torch.Tensor, label_id: int) -> tuple[float, float, float, float]:
    """(top, bottom, anterior, posterior) edges, centred voxels, of structure ``label_id`` in a (D, H, W) label map."""
    _, height, width = label.shape
    section = (label == label_id).any(0)  # (H, W)
    rows = torch.nonzero(section.any(1)).flatten().float()
    cols = torch.nonzero(section.any(0)).flatten().float()
    return (float(rows.min()) - height / 2, float(rows.max()) + 1 - height / 2,
            float(cols.min()) - width / 2, float(cols.max()) + 1 - width / 2)


def _body_band(label: torch.Tensor, gen: torch.Generator) -> tuple[float, float, float, float] | None:
    """:func:`body_band` of a vertebral body drawn from ``label`` (None without one)."""
    present = [i for i in VERTEBRA_IDS if i != SACRUM_ID and bool((label == i).any())]
    if not present:
        return None
    return body_band(label, present[min(int(draw(gen) * len(present)), len(present) - 1)])


def collapse_body(image: torch.Tensor, label: torch.Tensor, label_id: int,
                  keep: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and label map with one body collapsed (:func:`collapse`), e.g. a synthetic fracture for a benchmark.

    Args:
        image: (D, H, W) float32, network axes (superior -> inferior rows, anterior -> posterior columns).
        label: (D, H, W) integer ids, aligned.
        label_id: The body to collapse (present in ``label``).
        keep: Height kept at its (anterior, posterior) wall.

    Returns:
        (image, label), same shapes.
    """
    depth, height, width = image.shape
    rows = _centred(height)[:, None].expand(height, width)
    cols = _centred(width)[None, :].expand(height, width)
    rows = collapse(rows, cols, body_band(label, label_id), keep)
    return warp(image.to(torch.float32), label.to(torch.int64),
                _assembled(rows, cols, _centred(depth)[:, None, None].expand(depth, height, width)))


def _assembled(rows: torch.Tensor, cols: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """(1, D, H, W, 3) normalised grid from (H, W) source rows and columns and (D, H, W) source slices."""
    depth, height, width = slices.shape
    return torch.stack(
        (
            (cols / (width / 2))[None].expand(depth, height, width),
            (rows / (height / 2))[None].expand(depth, height, width),
            slices / (depth / 2),
        ),
        dim=-1,
    )[None]


def sampling_grid(config: AugmentConfig, shape: tuple[int, int, int], gen: torch.Generator,
                  label: torch.Tensor | None = None) -> torch.Tensor | None:
    """Draw the spatial augmentations of one sample as a grid of source positions.

    Args:
        config: Probabilities and ranges.
        shape: (D, H, W) network grid.
        gen: Random generator of this sample.
        label: (D, H, W) label ids of the sample, where the collapsed body is drawn from (none
            without it, or without a body in it).

    Returns:
        (1, D, H, W, 3) normalised (x=W, y=H, z=D) source positions for ``grid_sample``,
        or None when no spatial transform was drawn (the identity).
    """
    depth, height, width = shape
    rows = _centred(height)[:, None].expand(height, width)  # (H, W) output voxel coordinates
    cols = _centred(width)[None, :].expand(height, width)
    applied = False
    if happens(gen, config.elastic_prob):
        coarse = (max(2, math.ceil(height / config.elastic_spacing[0]) + 1),
                  max(2, math.ceil(width / config.elastic_spacing[1]) + 1))
        sigma = uniform(gen, config.elastic_magnitude)
        field = torch.randn((1, 2, *coarse), generator=gen) * sigma
        field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)[0]  # (2, H, W)
        rows, cols = rows + field[0], cols + field[1]
        applied = True
    if happens(gen, config.slip_prob):
        level = uniform(gen, (-0.3 * height, 0.3 * height))
        size = uniform(gen, config.slip_voxels) * sign(gen)
        cols = cols + size * torch.sigmoid((rows - level) / 2.0)
        applied = True
    if happens(gen, config.curve_prob):
        rows, cols = curve(rows, cols, math.radians(uniform(gen, (-config.curve_degrees, config.curve_degrees))), height)
        applied = True
    angle = 0.0
    if happens(gen, config.rotate_prob):
        angle = math.radians(uniform(gen, (-config.rotate_degrees, config.rotate_degrees)))
    zoom = 1.0
    if happens(gen, config.scale_prob):
        zoom = math.exp(uniform(gen, (math.log(config.scale_range[0]), math.log(config.scale_range[1]))))
    if angle or zoom != 1.0:
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        rows, cols = cos * rows - sin * cols, sin * rows + cos * cols
        applied = True
    if happens(gen, config.fov_prob):
        keep = uniform(gen, config.fov_keep)
        centre = uniform(gen, (-(1 - keep) * height / 2, (1 - keep) * height / 2))
        rows = centre + keep * rows
        applied = True
    if happens(gen, config.cut_prob):  # the superior band only: row 0 is the most superior
        keep = uniform(gen, config.cut_keep)
        rows = -(1 - keep) * height / 2 + keep * rows
        applied = True
    slices = _centred(depth)[:, None, None].expand(depth, height, width)
    if happens(gen, config.collapse_prob) and label is not None:
        band = _body_band(label, gen)
        if band is not None:
            front = uniform(gen, config.collapse_keep)
            rows = collapse(rows, cols, band, (front, uniform(gen, (front, 1.0))))
            applied = True
    if happens(gen, config.bend_prob):
        amplitude = uniform(gen, config.bend_slices) * sign(gen)
        cycles = uniform(gen, (0.5, 1.5))
        phase = uniform(gen, (0.0, 2 * math.pi))
        bend = amplitude * torch.sin(math.pi * cycles * _centred(height) / (height / 2) + phase)  # (H,)
        slices = slices + bend[None, :, None]
        applied = True
    if not applied:
        return None
    return _assembled(rows, cols, slices)  # (1, D, H, W, 3)


def warp(image: torch.Tensor, label: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample image (trilinear) and label map (nearest) through ``grid``.

    Outside the input, the image takes its minimum (air in a z-scored MR image) and the
    label map background.

    Args:
        image: (D, H, W) float32.
        label: (D, H, W) integer ids.
        grid: (1, D, H, W, 3) from :func:`sampling_grid`.

    Returns:
        image (D, H, W) float32, label (D, H, W) int64.
    """
    floor = image.min()
    moved = F.grid_sample((image - floor)[None, None], grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[0, 0] + floor
    return moved, warp_labels(label[None], grid)[0]


def warp_labels(labels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample integer maps (nearest neighbour, 0 outside the input) through ``grid``, all in one pass.

    Args:
        labels: (N, D, H, W) integer ids (N maps that move together, e.g. labels and generation labels).
        grid: (1, D, H, W, 3) from :func:`sampling_grid`.

    Returns:
        (N, D, H, W) int64.
    """
    moved = F.grid_sample(labels.to(torch.float32)[None], grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[0]
    return moved.round().to(torch.int64)
