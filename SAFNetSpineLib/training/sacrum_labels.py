"""The team's sacrum labels: region growing below L5 on the network grid, reviewed case by case.

No development case labels the sacrum, so the network only ever learnt an S1-sized block.
This module derives a sacrum mask per case, reproducibly, from the preprocessed image and
a structure map that holds L5 and (where the model found them) the L5/S disc and an S
piece, e.g. a generation map (:mod:`.synth_maps`: expert labels plus the bundled model's
prediction of unannotated structures):

1. marrow intensity band: the 10th-90th percentile of the image inside L5, widened by
   ``band_widen`` times its interquartile range (the sacral marrow is the same tissue);
2. a corridor in L5's frame (:class:`SacrumParams`): below the L5/S disc, as wide as L5 at
   the top and drifting posteriorly as it descends, in the left-right slices that hold L5;
3. seeds: the S piece inside band and corridor, else the corridor's first 10 mm;
4. the 6-connected component of band-and-corridor voxels that holds the seeds, opened in-plane
   (3 x 3) first so thin bridges into fat or bowel break, closed superior-inferior (7 rows) so the
   thin remnants of the discs between sacral segments do not stop it; then closed (5 x 5) and hole-filled
   per sagittal slice (marrow is speckled), within the corridor, minus every other structure.

Where the marrow band cannot follow the sacrum (T2 scans, whose sacral marrow below S1 is brighter than
L5's), a team member draws the sacrum's outline on the mid-sagittal slice of the network grid instead
(a polygon of (row, col) voxel indices, kept in the review file); :func:`outline_sacrum` then labels the
outline's inside in L5's left-right slices, minus dark cortex and every other structure.

The masks are never copied anywhere: they are recomputed from the inputs. Which cases were
accepted after review on a mid-sagittal overlay is ``Resources/TrainingLabels/sacrum_review.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import L5_ID as L5
from SAFNetSpineLib.labels import L5_S_ID as L5_S
from SAFNetSpineLib.labels import SACRUM_ID as SACRUM
from SAFNetSpineLib.labels import structure_by_name

L4 = structure_by_name("L4").label_id
#: A drawn outline's labels span L5's left-right slices down to this fraction of its height; below, they narrow
#: linearly to the middle slices at the tip (the sacrum tapers from the alae at S1 to the coccyx).
_FULL_WIDTH_DOWN_TO = 0.6


@dataclass(frozen=True)
class SacrumParams:
    """Bounds of the sacrum region growing (mm on a network grid of ``spacing_mm``).

    The corridor is drawn in the sagittal plane in L5's own frame: ``t`` along the L4 -> L5
    axis (downwards), ``s`` across it (towards posterior). Below the L5/S disc it runs
    ``length_mm`` down, between an anterior and a posterior edge that both drift back as it
    descends (the sacrum tilts and curves posteriorly).

    Attributes:
        band_widen: Widening of the L5 intensity band, times its interquartile range.
        length_mm: Longest extent below the L5/S disc along L5's axis, mm.
        margin_mm: Margin in front of L5's anterior and behind its posterior edge at the top, mm.
        anterior_drift: Posterior shift of the anterior edge per mm of descent.
        posterior_drift: Posterior shift of the posterior edge per mm of descent.
        disc_mm: Assumed L5/S disc height where the disc was not found, mm.
        lateral_slices: Left-right slices added on each side of L5's slices.
        spacing_mm: (D, H, W) voxel size of the network grid, mm.
    """

    band_widen: float = 0.25
    length_mm: float = 100.0
    margin_mm: float = 5.0
    anterior_drift: float = 0.5
    posterior_drift: float = 0.9
    disc_mm: float = 8.0
    lateral_slices: int = 1
    spacing_mm: tuple[float, float, float] = (4.0, 1.0, 1.0)


def _axis(structures: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L5 centroid (H, W) mm, unit axis u (downwards, L4 -> L5), unit v across it (towards posterior))."""
    def centroid(label_id: int) -> np.ndarray | None:
        where = np.nonzero(structures == label_id)
        return None if where[0].size == 0 else np.array([where[1].mean(), where[2].mean()]) * spacing
    c5, c4 = centroid(L5), centroid(L4)
    u = np.array([1.0, 0.0]) if c4 is None or np.linalg.norm(c5 - c4) < 5 else (c5 - c4) / np.linalg.norm(c5 - c4)
    v = np.array([-u[1], u[0]])
    if v[1] < 0:
        v = -v
    return c5, u, v


def _free(structures: np.ndarray) -> np.ndarray:
    """Voxels the sacrum may take: background, the predicted S, and generation-map clusters (ids >= 20)."""
    return (structures == 0) | (structures == SACRUM) | (structures >= 20)


def _slice_range(l5: np.ndarray, params: SacrumParams) -> tuple[int, int]:
    """[low, high) left-right slices of L5 widened by ``lateral_slices`` each side, within the grid."""
    slices = np.nonzero(l5.any(axis=(1, 2)))[0]
    return max(0, slices.min() - params.lateral_slices), min(l5.shape[0], slices.max() + params.lateral_slices + 1)


def grow_sacrum(image: np.ndarray, structures: np.ndarray, params: SacrumParams = SacrumParams()) -> np.ndarray:
    """The sacrum mask of one case on the network grid.

    Args:
        image: (D, H, W) float preprocessed image (H = superior-inferior increasing downwards,
            W = anterior-posterior increasing backwards).
        structures: (D, H, W) structure ids (L5 = 2 needed; L4, L5/S = 11 and S = 1 used when present;
            ids >= 20, e.g. generation-map clusters, count as unlabelled).
        params: Bounds.

    Returns:
        (D, H, W) bool mask, empty when L5 is missing or nothing connects below it.
    """
    from scipy import ndimage

    l5 = structures == L5
    if l5.sum() < 20:
        return np.zeros(image.shape, bool)
    q10, q25, q75, q90 = np.percentile(image[l5], (10, 25, 75, 90))
    widen = params.band_widen * (q75 - q25)
    band = (image >= q10 - widen) & (image <= q90 + widen)
    spacing = np.asarray(params.spacing_mm[1:], dtype=np.float64)
    c5, u, v = _axis(structures, spacing)
    rows, cols = np.meshgrid(np.arange(image.shape[1]) * spacing[0], np.arange(image.shape[2]) * spacing[1],
                             indexing="ij")
    t = (rows - c5[0]) * u[0] + (cols - c5[1]) * u[1]  # (H, W) mm along L5's axis
    s = (rows - c5[0]) * v[0] + (cols - c5[1]) * v[1]  # mm across it, towards posterior
    l5_plane = l5.any(axis=0)
    disc = (structures == L5_S).any(axis=0)
    top = float(np.median(t[disc])) if disc.any() else float(t[l5_plane].max()) + params.disc_mm / 2
    front, back = float(s[l5_plane].min()) - params.margin_mm, float(s[l5_plane].max()) + params.margin_mm
    descent = t - top
    corridor = (descent > 0) & (descent <= params.length_mm) \
        & (s >= front + params.anterior_drift * descent) & (s <= back + params.posterior_drift * descent)
    bounds = np.zeros(image.shape, bool)
    low, high = _slice_range(l5, params)
    bounds[low:high] = corridor[None]
    free = _free(structures)
    candidate = band & bounds & free
    candidate = ndimage.binary_opening(candidate, structure=np.ones((1, 3, 3), bool))
    # bridge the thin, darker remnants of the discs between the fused sacral segments (up to 5 rows)
    candidate = ndimage.binary_closing(candidate, structure=np.ones((1, 7, 1), bool)) & bounds
    seeds = candidate & (structures == SACRUM)
    if not seeds.any():
        seeds = candidate & ((descent <= 10.0) & (np.abs(s - (front + back) / 2) <= 10.0))[None]
    if not seeds.any():
        return np.zeros(image.shape, bool)
    components, _ = ndimage.label(candidate, structure=ndimage.generate_binary_structure(3, 1))
    keep = np.unique(components[seeds])
    mask = np.isin(components, keep[keep > 0])
    # marrow is speckled: close small gaps and fill holes slice by slice, inside the corridor only
    mask = ndimage.binary_closing(mask, structure=np.ones((1, 5, 5), bool))
    mask = np.stack([ndimage.binary_fill_holes(plane) for plane in mask])
    return mask & bounds & free


def polygon_mask(points: np.ndarray | list, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: voxel centres inside a polygon (even-odd rule).

    Args:
        points: (N, 2) vertices (row, col) in voxel indices, N >= 3, in drawing order.
        shape: (H, W) of the slice.
    """
    vertices = np.asarray(points, dtype=np.float64)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    inside = np.zeros(shape, bool)
    for (r0, c0), (r1, c1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        if r0 == r1:
            continue
        crosses = (rows >= min(r0, r1)) & (rows < max(r0, r1))
        col_at = c0 + (rows - r0) * (c1 - c0) / (r1 - r0)
        inside ^= crosses & (cols < col_at)
    return inside


def outline_sacrum(image: np.ndarray, structures: np.ndarray, points: list, params: SacrumParams = SacrumParams(),
                   ) -> np.ndarray:
    """The sacrum inside a drawn mid-sagittal outline, in the left-right slices that hold L5.

    Args:
        image: (D, H, W) float preprocessed image.
        structures: (D, H, W) structure ids (L5 = 2 needed; ids >= 20 count as unlabelled).
        points: The outline, (N, 2) (row, col) voxel indices on the network grid.
        params: ``band_widen`` sets the dark cut (below L5's 10th percentile minus that many
            interquartile ranges: cortex, air); ``lateral_slices`` widens the slices of L5.
            Below ``_FULL_WIDTH_DOWN_TO`` of the outline's height the slices narrow to the middle ones.

    Returns:
        (D, H, W) bool mask: empty when L5 is missing.
    """
    from scipy import ndimage

    l5 = structures == L5
    if l5.sum() < 20 or len(points) < 3:
        return np.zeros(image.shape, bool)
    q10, q25, q75 = np.percentile(image[l5], (10, 25, 75))
    low, high = _slice_range(l5, params)
    inside = polygon_mask(points, image.shape[1:])
    # the sacrum is a wedge: as wide as L5's slices over its upper part, narrowing to the middle slice at the tip
    rows = np.nonzero(inside.any(axis=1))[0]
    descent = np.clip((np.arange(image.shape[1]) - rows.min()) / max(rows.max() - rows.min(), 1), 0, 1)
    keep = np.clip((1.0 - descent) / (1.0 - _FULL_WIDTH_DOWN_TO), 0, 1)  # 1 over the upper part, 0 at the tip
    centre = 0.5 * (low + high - 1)
    half = 1.0 + keep * (0.5 * (high - 1 - low) - 1.0)  # slices either side of the centre, per row
    bounds = (np.abs(np.arange(image.shape[0])[:, None, None] - centre) <= half[None, :, None] + 1e-6) & inside[None]
    bounds[:low] = False
    bounds[high:] = False
    free = _free(structures)
    mask = bounds & free & (image >= q10 - params.band_widen * (q75 - q25))
    mask = ndimage.binary_closing(mask, structure=np.ones((1, 5, 5), bool))
    mask = np.stack([ndimage.binary_fill_holes(plane) for plane in mask]) & bounds & free
    components, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 1))
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        mask = components == 1 + int(np.argmax(sizes))
    return mask


def read_review(path: str | Path) -> dict:
    """The review file: {"accepted": [ids], "rejected": {id: reason}, "params": {...}, "outlines": {id: [[row, col], ...]}}.

    Raises:
        SpineInputError: unreadable or malformed file.
    """
    path = Path(path)
    try:
        review = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SpineInputError(path, f"unreadable sacrum review ({error})") from None
    if not isinstance(review, dict) or not isinstance(review.get("accepted"), list):
        raise SpineInputError(path, "sacrum review needs an 'accepted' list of case ids")
    outlines = review.get("outlines", {})
    if not isinstance(outlines, dict):
        raise SpineInputError(path, "sacrum review 'outlines' must map case ids to [[row, col], ...]")
    for case_id, points in outlines.items():
        if not (isinstance(points, list) and len(points) >= 3 and all(
                isinstance(point, list) and len(point) == 2 and all(isinstance(v, (int, float)) for v in point)
                for point in points)):
            raise SpineInputError(path, f"sacrum outline of {case_id} must be 3 or more [row, col] points")
    return review


def add_sacrum(label: np.ndarray, annotated: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label with S where ``mask`` and background, annotated with S set): the sacrum becomes a loss target."""
    label = label.copy()
    label[mask & (label == 0)] = SACRUM
    annotated = annotated.copy()
    annotated[SACRUM] = True
    return label, annotated


def with_team_sacrum(data: list, maps: list[np.ndarray], review_file: str | Path) -> list:
    """Preprocessed cases with the team's sacrum added to the accepted ones (S annotated there).

    Args:
        data: PreprocessedCase list.
        maps: Their generation maps (same order), the structure ids the growing starts from.
        review_file: The review JSON (:func:`read_review`); its ``params`` set :class:`SacrumParams`.

    Returns:
        A new list; cases not accepted are returned unchanged.
    """
    from dataclasses import replace

    review = read_review(review_file)
    accepted = set(review["accepted"])
    outlines = review.get("outlines", {})
    try:
        params = SacrumParams(**review.get("params", {}))
    except TypeError as error:
        raise SpineInputError(review_file, f"bad sacrum 'params' ({error})") from None
    result = []
    for case, generation in zip(data, maps, strict=True):
        if case.case_id in accepted:
            if case.case_id in outlines:
                mask = outline_sacrum(case.image, generation, outlines[case.case_id], params)
            else:
                mask = grow_sacrum(case.image, generation, params)
            label, annotated = add_sacrum(case.label, case.annotated, mask)
            case = replace(case, label=label, annotated=annotated)
        result.append(case)
    return result
