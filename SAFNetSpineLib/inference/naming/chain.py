"""The chain of vertebral bodies and discs along the spine's own curve.

A label map is cut into pieces (26-connected components of each label), and the
pieces are placed on a smooth curve fitted through their centres in the patient
frame (LPS mm, never array order), so that "below" and "above" follow the spine even
on an oblique, flipped or permuted grid and along a lordotic spine. Then:

* specks and fragments (see :mod:`SAFNetSpineLib.inference.pieces`, which also finds the
  pieces) and pieces far off the curve are set aside as *loose* pieces: they are named
  after the nearest chain piece of their kind, never counted;
* pieces of one kind that share a band of the curve (one body called two names,
  side by side) or that touch end to end and together are no taller than a typical
  level (one body cut across) become one piece;
* consecutive discs with no room for a body between them (closer than half a typical body
  height) are one disc found in two pieces, not a missing body;
* a body about twice as tall as the typical body (two bodies with no disc between
  them found, or fused) is split into as many bodies as its height holds; from 1.45
  heights only where the network sees a disc inside it. The verdict flags a split
  without disc evidence (fused vertebrae?), not one with it (a disc left unoutlined).

What remains, ordered from inferior to superior along the curve, is the chain that
:mod:`.assign` names by counting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from SAFNetSpineLib.inference.naming.curve import SpineCurve
from SAFNetSpineLib.inference.naming.evidence import ClassEvidence, evidence_from_labels
from SAFNetSpineLib.inference.pieces import debris_floor, find_pieces, speck_floor
from SAFNetSpineLib.labels import DISC_IDS, SACRUM_ID, STRUCTURES, VERTEBRA_IDS
from SAFNetSpineLib.volume import Volume

#: A piece whose centre lies farther from the curve than this many typical body heights is off the spine.
OFF_CURVE_HEIGHTS = 1.2
#: Two pieces of one kind share a band when their extents along the curve overlap by more than this
#: fraction of the shorter one.
SAME_BAND_OVERLAP = 0.5
#: Touching pieces of one kind (gap under TOUCH_MM) that together are at most this many typical
#: heights tall are one structure cut across.
ONE_STRUCTURE_HEIGHT = 1.3
TOUCH_MM = 1.5
#: A body (not the sacrum) at least this many typical body heights tall holds two or more bodies.
MERGED_HEIGHT = 1.6
#: From this many typical body heights a body holds two when the network sees a disc inside it: a mean disc
#: probability of at least DISC_SEEN where it would be cut.
TALL_BODY = 1.45
DISC_SEEN = 0.2
#: Consecutive discs closer than this many typical body heights have no room for a body between
#: them: they are one disc found in two pieces (a fragment at a body's corner), not a missing body.
DISC_GAP_HEIGHTS = 0.5
#: Default disc height relative to the body height where no disc was found.
DEFAULT_DISC_TO_BODY = 0.3


@dataclass(eq=False)
class ChainPiece:
    """One body or disc on the chain (or a loose piece).

    Attributes:
        kind: "vertebra" or "disc".
        voxels: Voxel indices (N, 3) into the label map.
        voxel_labels: Input label id of every voxel, shape (N,).
        centre: Mean LPS position (3,), mm.
        arc: Position of the centre along the curve, mm (grows towards superior).
        low: Lowest extent along the curve, mm.
        high: Highest extent along the curve, mm.
        evidence: Probability of every label id (NUM_CLASSES,), summing to 1 over the
            ids of the piece's kind.
    """

    kind: str
    voxels: np.ndarray
    voxel_labels: np.ndarray
    centre: np.ndarray
    arc: float = 0.0
    low: float = 0.0
    high: float = 0.0
    evidence: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def size(self) -> int:
        return int(len(self.voxels))

    @cached_property
    def label_counts(self) -> dict[int, int]:
        """Input label id -> number of its voxels in the piece."""
        ids, counts = np.unique(self.voxel_labels, return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts, strict=True)}

    @property
    def height(self) -> float:
        return self.high - self.low

    @property
    def own_label(self) -> int:
        """The input label most of its voxels carry."""
        return max(self.label_counts, key=lambda k: (self.label_counts[k], -k))

    @property
    def own_name(self) -> str:
        return STRUCTURES[self.own_label].short_name

    @property
    def is_sacrum_labelled(self) -> bool:
        return self.own_label == SACRUM_ID


@dataclass
class Chain:
    """Pieces in order from inferior to superior, and what was set aside.

    Attributes:
        pieces: Chain pieces, inferior to superior.
        loose: Fragments and off-curve pieces (named after their nearest chain piece).
        body_height_mm: Typical (median) body height along the curve, mm.
        disc_height_mm: Typical (median) disc height, mm (a default share of the body
            height when no disc was found).
        merged: The parts of every split body, one list per body (inferior to superior).
        curve: The curve the pieces are placed on (None for an empty chain).
        merged_disc_seen: Per split body, the network's disc probability at its weakest
            cut (None from labels alone).
        geometry: Voxel index -> LPS mm of the label map (None for an empty chain).
    """

    pieces: list[ChainPiece]
    loose: list[ChainPiece]
    body_height_mm: float
    disc_height_mm: float
    merged: list[list[ChainPiece]] = field(default_factory=list)
    curve: SpineCurve | None = None
    geometry: Geometry | None = None
    merged_disc_seen: list[float | None] = field(default_factory=list)

    def typical_height(self, kind: str) -> float:
        """Typical height (mm) along the curve of a body ("vertebra") or a disc."""
        return self.body_height_mm if kind == "vertebra" else self.disc_height_mm


def _kind(label_id: int) -> str:
    return STRUCTURES[label_id].kind


def place(piece: ChainPiece, points: np.ndarray, curve: SpineCurve) -> None:
    arc, tangent, _ = curve.project(piece.centre)
    along = (points - piece.centre[None, :]) @ tangent
    piece.arc = arc
    piece.low, piece.high = arc + float(along.min()), arc + float(along.max())


def _merge(a: ChainPiece, b: ChainPiece) -> ChainPiece:
    centre = (a.centre * a.size + b.centre * b.size) / (a.size + b.size)
    return ChainPiece(a.kind, np.concatenate([a.voxels, b.voxels]),
                      np.concatenate([a.voxel_labels, b.voxel_labels]), centre)


class Geometry:
    """Voxel index -> LPS mm for one label map."""

    def __init__(self, volume: Volume):
        self.matrix = np.asarray(volume.direction) * np.asarray(volume.spacing)[None, :]
        self.origin = np.asarray(volume.origin)
        self.voxel_ml = float(volume.voxel_volume_ml)
        # The index axis closest to the patient's superior axis, and its index at the inferior edge of the view.
        self.superior_axis = int(np.argmax(np.abs(np.asarray(volume.direction)[2])))
        up = float(np.asarray(volume.direction)[2, self.superior_axis]) > 0
        self.inferior_edge = 0 if up else volume.shape[self.superior_axis] - 1

    def at_inferior_edge(self, voxels: np.ndarray) -> bool:
        """Whether any of the voxels (N, 3) lies on the inferior edge of the image (the view cuts it)."""
        return bool(len(voxels)) and bool(np.any(voxels[:, self.superior_axis] == self.inferior_edge))

    def points(self, voxels: np.ndarray) -> np.ndarray:
        return self.origin[None, :] + voxels @ self.matrix.T


def build_chain(labels: Volume, evidence: ClassEvidence | None = None) -> Chain:
    """Cut a label map into bodies and discs and order them along the spine's curve.

    Args:
        labels: Label map (I, J, K) with label-table ids, any orientation and spacing.
        evidence: The network's probabilities (see :class:`ClassEvidence`); without it the
            map's own labels are the evidence.

    Returns:
        The :class:`Chain`; empty when the map holds no vertebra or disc.
    """
    array = np.asarray(labels.array)
    geometry = Geometry(labels)
    raw = [ChainPiece(_kind(p.label_id), p.voxels, np.full(p.size, p.label_id, dtype=np.int64),
                      geometry.points(p.voxels).mean(axis=0)) for p in find_pieces(array)]
    kept, loose = _drop_debris(raw, speck_floor(labels))
    if not kept:
        return Chain([], loose, 0.0, 0.0)
    curve = _fit_curve(kept, geometry)
    kept, off = _split_off_curve(kept, curve, geometry)
    loose += off
    if not kept:
        return Chain([], loose, 0.0, 0.0)
    pieces = _join(kept, curve, geometry)
    body_h, disc_h = _typical_heights(pieces)
    pieces = _join_cut_structures(pieces, curve, geometry, body_h, disc_h)
    pieces = _join_close_discs(pieces, curve, geometry, body_h)
    body_h, disc_h = _typical_heights(pieces)
    pieces, merged, disc_seen = _split_merged(pieces, curve, geometry, body_h, disc_h, evidence)
    for piece in pieces + loose:
        piece.evidence = _evidence_of(piece, geometry, evidence)
    return Chain(pieces, loose, body_h, disc_h, merged, curve, geometry, disc_seen)


def _drop_debris(pieces: list[ChainPiece], speck_voxels: float) -> tuple[list[ChainPiece], list[ChainPiece]]:
    """(kept, loose): specks and fragments of each kind (bodies, discs) are loose.

    A sacrum piece is measured against the bodies' fragment floor unless it lies below
    every body kept: there the top of the sacrum at the edge of the view (S1 only) may
    be small, and only a speck is loose.
    """
    kept, loose = [], []
    sacral = [p for p in pieces if p.is_sacrum_labelled]
    for kind in ("vertebra", "disc"):
        own = [p for p in pieces if p.kind == kind and not p.is_sacrum_labelled]
        floor = debris_floor(own, speck_voxels, lambda p: p.own_label)
        kept += [p for p in own if p.size >= floor]
        loose += [p for p in own if p.size < floor]
        if kind == "vertebra":
            lowest = min((p.centre[2] for p in kept if p.kind == kind), default=np.inf)
            for p in sacral:
                ok = p.size >= floor or (p.size >= speck_voxels and p.centre[2] < lowest)
                (kept if ok else loose).append(p)
    return kept, loose


def _fit_curve(pieces: list[ChainPiece], geometry: Geometry) -> SpineCurve:
    """A curve through the piece centres; refitted without centres far from it (up to 3 times)."""
    centres = np.array([p.centre for p in pieces])
    keep = np.ones(len(pieces), dtype=bool)
    curve = SpineCurve(centres)
    for _ in range(3):
        scale = _typical_extent(pieces, curve, geometry)
        off = np.array([curve.project(c)[2] for c in centres])
        worst = int(np.argmax(np.where(keep, off, -1.0)))
        if off[worst] <= OFF_CURVE_HEIGHTS * scale or keep.sum() <= 3:
            break
        keep[worst] = False
        curve = SpineCurve(centres[keep])
    return curve


def _typical_extent(pieces: list[ChainPiece], curve: SpineCurve, geometry: Geometry) -> float:
    heights = []
    for p in pieces:
        if p.kind == "vertebra" and not p.is_sacrum_labelled:
            place(p, geometry.points(p.voxels), curve)
            heights.append(p.height)
    return float(np.median(heights)) if heights else 25.0


def _split_off_curve(pieces, curve, geometry):
    scale = _typical_extent(pieces, curve, geometry)
    on, off = [], []
    for p in pieces:
        (off if curve.project(p.centre)[2] > OFF_CURVE_HEIGHTS * scale and len(pieces) > 3 else on).append(p)
    return on, off


def _join(pieces: list[ChainPiece], curve: SpineCurve, geometry: Geometry) -> list[ChainPiece]:
    """Join pieces of one kind that share a band of the curve: one structure called several names."""
    for p in pieces:
        place(p, geometry.points(p.voxels), curve)
    joined: list[ChainPiece] = []
    for p in sorted(pieces, key=lambda q: q.arc):
        partner = next((q for q in joined if q.kind == p.kind and _share_band(p, q)), None)
        if partner is None:
            joined.append(p)
            continue
        joined.remove(partner)
        union = _merge(partner, p)
        place(union, geometry.points(union.voxels), curve)
        joined.append(union)
    return sorted(joined, key=lambda q: q.arc)


def _share_band(a: ChainPiece, b: ChainPiece) -> bool:
    """Side by side: most of the shorter one's extent and its centre lie in the other's band.

    The sacrum is never joined with a lumbar piece: tilted, it spans L5's band.
    """
    if a.is_sacrum_labelled != b.is_sacrum_labelled:
        return False
    short, long = (a, b) if a.height <= b.height else (b, a)
    overlap = min(a.high, b.high) - max(a.low, b.low)
    return overlap > SAME_BAND_OVERLAP * max(short.height, 1e-6) and long.low <= short.arc <= long.high


def _typical_heights(pieces: list[ChainPiece]) -> tuple[float, float]:
    bodies = [p.height for p in pieces if p.kind == "vertebra" and not p.is_sacrum_labelled]
    discs = [p.height for p in pieces if p.kind == "disc"]
    body_h = float(np.median(bodies)) if bodies else (float(np.median(discs)) / DEFAULT_DISC_TO_BODY
                                                      if discs else 25.0)
    disc_h = float(np.median(discs)) if discs else DEFAULT_DISC_TO_BODY * body_h
    return body_h, disc_h


def _join_consecutive(pieces, curve, geometry, belong) -> list[ChainPiece]:
    """Join each piece into the one before it when both are of one kind and ``belong(before, piece)``."""
    out: list[ChainPiece] = []
    for p in pieces:
        if out and out[-1].kind == p.kind and belong(out[-1], p):
            union = _merge(out[-1], p)
            place(union, geometry.points(union.voxels), curve)
            out[-1] = union
        else:
            out.append(p)
    return out


def _join_cut_structures(pieces, curve, geometry, body_h, disc_h):
    """Join consecutive touching pieces of one kind that together are no taller than one structure."""
    def cut(last: ChainPiece, p: ChainPiece) -> bool:
        typical = body_h if p.kind == "vertebra" else disc_h
        return (not (last.is_sacrum_labelled or p.is_sacrum_labelled) and p.low - last.high < TOUCH_MM
                and p.high - last.low <= ONE_STRUCTURE_HEIGHT * typical)

    return _join_consecutive(pieces, curve, geometry, cut)


def _join_close_discs(pieces, curve, geometry, body_h):
    """Join consecutive discs (no body between them) too close for a body to fit between them."""
    return _join_consecutive(pieces, curve, geometry,
                             lambda last, p: p.kind == "disc" and p.low - last.high < DISC_GAP_HEIGHTS * body_h)


def _split_merged(pieces, curve, geometry, body_h, disc_h, evidence=None):
    """Split a body holding several bodies into equal parts along the curve.

    A body from TALL_BODY typical heights up is split where the network sees a disc
    inside it (mean disc probability at least DISC_SEEN across the cut: a disc it did not
    outline); from MERGED_HEIGHT up it is split in any case. Returns the pieces and, per
    split body, its parts and the disc probability seen at its weakest cut (None without
    the network's probabilities).
    """
    measured = sum(1 for p in pieces if p.kind == "vertebra" and not p.is_sacrum_labelled)
    out: list[ChainPiece] = []
    merged: list[list[ChainPiece]] = []
    seen: list[float | None] = []
    for p in pieces:
        if p.kind != "vertebra" or p.is_sacrum_labelled or measured < 3 or p.height < TALL_BODY * body_h:
            out.append(p)
            continue
        parts = max(2, int(round((p.height + disc_h) / (body_h + disc_h))))
        points = geometry.points(p.voxels)
        _, tangent, _ = curve.project(p.centre)
        along = p.arc + (points - p.centre[None, :]) @ tangent
        edges = np.linspace(p.low, p.high, parts + 1)
        disc = _disc_seen(evidence, points, along, edges[1:-1], disc_h)
        if p.height < MERGED_HEIGHT * body_h and (disc is None or disc < DISC_SEEN):
            out.append(p)
            continue
        which = np.clip(np.searchsorted(edges, along, side="right") - 1, 0, parts - 1)
        merged.append([])
        seen.append(disc)
        for n in range(parts):
            mine = which == n
            if not mine.any():
                continue
            part = ChainPiece(p.kind, p.voxels[mine], p.voxel_labels[mine], points[mine].mean(axis=0))
            place(part, points[mine], curve)
            out.append(part)
            merged[-1].append(part)
    return sorted(out, key=lambda q: q.arc), merged, seen


def _disc_seen(evidence: ClassEvidence | None, points: np.ndarray, along: np.ndarray, cuts: np.ndarray,
               disc_h: float) -> float | None:
    """Lowest, over the cuts, of the network's mean disc probability within half a disc height of the cut."""
    if evidence is None:
        return None
    values = []
    for cut in cuts:
        near = np.abs(along - cut) <= disc_h / 2
        mean = evidence.mean_probabilities(points[near]) if near.any() else None
        values.append(float(mean[list(DISC_IDS)].sum()) if mean is not None else 0.0)
    return min(values) if values else None


def _evidence_of(piece: ChainPiece, geometry: Geometry, evidence: ClassEvidence | None) -> np.ndarray:
    kind_ids = VERTEBRA_IDS if piece.kind == "vertebra" else DISC_IDS
    if evidence is not None:
        probabilities = evidence.mean_probabilities(geometry.points(piece.voxels))
        if probabilities is not None:
            return _within_kind(probabilities, kind_ids)
    return evidence_from_labels(piece.label_counts, kind_ids)


def _within_kind(probabilities: np.ndarray, kind_ids: tuple[int, ...]) -> np.ndarray:
    out = np.zeros_like(probabilities, dtype=np.float64)
    ids = list(kind_ids)
    share = np.asarray(probabilities, dtype=np.float64)[ids]
    total = float(share.sum())
    out[ids] = share / total if total > 0 else 1.0 / len(ids)
    return out
