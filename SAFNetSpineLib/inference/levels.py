"""Anatomical order of the predicted levels: names rise from bottom to top, each used once.

A network that sees each voxel's neighbourhood can call two vertebrae "L2", or call
one half of a vertebral body "L1" and the other "L2". The spine's order fixes both:
level ids rise from inferior to superior (S=1, L5=2 ... T9=10; discs L5/S=11 ...
T9/T10=19), each level occurs once, and the sacrum lies below every lumbar vertebra.

:func:`order_levels` therefore

1. cuts every vertebra and disc label into connected pieces and drops fragments
   (under a tenth of the median largest piece per name);
2. groups pieces that share a superior-inferior band (overlap of more than half of
   the shorter extent) and together are not much taller than a typical level:
   one group is one level, whatever names its pieces had;
3. names the groups of each kind (vertebrae without the sacrum, discs) so that names
   rise from bottom to top and each is used once, keeping as many voxels and as many
   of their names as possible (a piece out of order takes the free name its position
   implies; one with no free name left is removed);
4. keeps the largest sacrum piece that lies below the lowest vertebra, and no other.

Positions are measured along the patient's superior axis (LPS z), so any
orientation, spacing or obliquity of the input works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, VERTEBRA_IDS
from SAFNetSpineLib.volume import Volume

SACRUM_ID = 1
#: Fragments smaller than this fraction of the median largest piece per name are dropped.
FRAGMENT_FRACTION = 0.1
#: Two pieces are one level when their superior-inferior extents overlap by more than this
#: fraction of the shorter extent.
SAME_LEVEL_OVERLAP = 0.5
#: ... and when together they are at most this many times as tall as a typical level (the median
#: height of each name's largest piece), or LEVEL_HEIGHT_SLACK_MM taller, whichever is more
#: (discs are thin: a few mm of slack matter there).
MAX_LEVEL_HEIGHT = 1.25
LEVEL_HEIGHT_SLACK_MM = 5.0
#: Worth of a voxel that keeps its place but changes its name, relative to one that keeps both.
RENAME_WEIGHT = 0.6
#: Cost of each name skipped between two named levels, in units of the median level's voxels.
GAP_WEIGHT = 0.25


@dataclass
class _Piece:
    """One connected piece of one label: where it is and how many voxels it has."""

    label_id: int
    index: tuple  # (boolean mask inside its box, the box as slices of the label map)
    size: int
    low: float  # lowest superior coordinate, mm
    high: float  # highest superior coordinate, mm
    centre: float  # mean superior coordinate, mm


@dataclass
class _Level:
    """Pieces that occupy one superior-inferior band."""

    pieces: list = field(default_factory=list)

    @property
    def low(self) -> float:
        return min(p.low for p in self.pieces)

    @property
    def high(self) -> float:
        return max(p.high for p in self.pieces)

    @property
    def centre(self) -> float:
        return sum(p.centre * p.size for p in self.pieces) / self.size

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    def votes(self, label_id: int) -> int:
        return sum(p.size for p in self.pieces if p.label_id == label_id)


def _pieces(labels: np.ndarray, boxes: list, label_ids, step: np.ndarray) -> list[_Piece]:
    """Connected pieces (26-neighbourhood) of the given labels, each found inside its label's bounding box.

    ``boxes`` is ``scipy.ndimage.find_objects(labels)``: boxes[v - 1] bounds value v, or is None.
    """
    from scipy import ndimage

    pieces = []
    structure = np.ones((3, 3, 3), dtype=bool)
    for label_id in label_ids:
        box = boxes[label_id - 1] if label_id <= len(boxes) else None
        if box is None:
            continue
        components, _ = ndimage.label(labels[box] == label_id, structure=structure)
        for number, window in enumerate(ndimage.find_objects(components), start=1):
            if window is None:
                continue
            mask = components[window] == number
            where = tuple(slice(b.start + w.start, b.start + w.stop) for b, w in zip(box, window, strict=True))
            voxels = np.argwhere(mask)
            z = (voxels + np.array([w.start for w in where])) @ step
            pieces.append(_Piece(label_id, (mask, where), len(voxels),
                                 float(z.min()), float(z.max()), float(z.mean())))
    return pieces


def _fragment_floor(pieces: list[_Piece]) -> float:
    """FRAGMENT_FRACTION of the median, over labels, of each label's largest piece (voxels); 0 without pieces."""
    largest: dict[int, int] = {}
    for piece in pieces:
        largest[piece.label_id] = max(largest.get(piece.label_id, 0), piece.size)
    return FRAGMENT_FRACTION * float(np.median(list(largest.values()))) if largest else 0.0


def _drop_fragments(pieces: list[_Piece], floor: float) -> tuple[list[_Piece], list[_Piece]]:
    """(kept, dropped): a fragment is smaller than ``floor`` voxels (see :func:`_fragment_floor`)."""
    return [p for p in pieces if p.size >= floor], [p for p in pieces if p.size < floor]


def _same_band(a: _Piece, b: _Piece) -> bool:
    overlap = min(a.high, b.high) - max(a.low, b.low)
    return overlap > SAME_LEVEL_OVERLAP * max(min(a.high - a.low, b.high - b.low), 1e-6)


def _group(pieces: list[_Piece]) -> list[_Level]:
    """Levels from inferior to superior.

    A piece joins the level below it when it shares most of the superior-inferior band of
    one of that level's pieces and the two together are no taller than a typical level
    (see MAX_LEVEL_HEIGHT): one body or disc, called two names (in halves,
    touching or not). A taller union is a body plus something else (posterior elements,
    a neighbour) and stays apart.
    """
    tallest: dict[int, float] = {}
    for piece in sorted(pieces, key=lambda p: p.size):  # ends with the height of each name's largest piece
        tallest[piece.label_id] = piece.high - piece.low
    typical = float(np.median(list(tallest.values()))) if tallest else 0.0
    limit = max(MAX_LEVEL_HEIGHT * typical, typical + LEVEL_HEIGHT_SLACK_MM)
    levels: list[_Level] = []
    for piece in sorted(pieces, key=lambda p: p.centre):
        if levels and max(levels[-1].high, piece.high) - min(levels[-1].low, piece.low) <= limit \
                and any(_same_band(piece, q) for q in levels[-1].pieces):
            levels[-1].pieces.append(piece)
        else:
            levels.append(_Level([piece]))
    return levels


def _best_names(levels: list[_Level], ids: tuple[int, ...]) -> list[int | None]:
    """Names for the levels (inferior to superior) that rise with height and keep the most voxels.

    Names must strictly increase from the lowest level up, so each is used once and
    two levels are never swapped. A level named with its voxels' own name keeps all of
    them; a renamed voxel counts RENAME_WEIGHT; a level left without a name (removed)
    counts nothing; every name skipped between two named levels (a level the network
    missed: rare, as the spine has no gaps) costs GAP_WEIGHT times the median level's
    voxels. So one wrong name is corrected where a free name fits, and removed where
    none does.
    Dynamic programming over (level, highest name so far), O(levels x names^2).
    """
    rank = {name: k for k, name in enumerate(ids)}
    gap_cost = GAP_WEIGHT * float(np.median([level.size for level in levels])) if levels else 0.0
    # best[r]: (score, names so far) of the best assignment whose highest name has rank r
    # (r = -1: nothing named yet).
    best: dict[int, tuple[float, list]] = {-1: (0.0, [])}
    for level in levels:
        size = level.size
        own = {p.label_id for p in level.pieces}
        following: dict[int, tuple[float, list]] = {}
        for last, (score, names) in best.items():
            options = [(last, score, names + [None])]
            for name in ids[last + 1:]:
                kept = level.votes(name)
                # Ties go to the name nearest the level's own names.
                nearest = min(abs(rank[name] - rank[o]) for o in own)
                skipped = rank[name] - last - 1 if last >= 0 else 0
                gain = kept + RENAME_WEIGHT * (size - kept) - gap_cost * skipped - 1e-6 * nearest
                options.append((rank[name], score + gain, names + [name]))
            for new_last, new_score, new_names in options:
                if new_last not in following or new_score > following[new_last][0]:
                    following[new_last] = (new_score, new_names)
        best = following
    return max(best.values(), key=lambda item: item[0])[1] if levels else []


def _paint(out: np.ndarray, piece: _Piece, value: int) -> None:
    mask, where = piece.index
    out[where][mask] = value


def order_levels(volume: Volume) -> Volume:
    """Rename the vertebra and disc labels so that the levels run in anatomical order.

    Args:
        volume: Label map (I, J, K) with MRSpineSeg ids and its geometry.

    Returns:
        A new label Volume on the same grid: fragments and misplaced sacrum removed (0),
        one name per level, rising from bottom to top; unchanged where the order was
        already right and no fragments exist.
    """
    from scipy import ndimage

    labels = np.asarray(volume.array)
    boxes = ndimage.find_objects(labels)
    step = np.asarray(volume.direction)[2] * np.asarray(volume.spacing)  # mm of superior per index step
    out = labels.copy()
    lumbar_and_thoracic = tuple(i for i in VERTEBRA_IDS if i != SACRUM_ID)
    lowest_vertebra, body_floor = None, 0.0
    for ids in (lumbar_and_thoracic, DISC_IDS):
        pieces = _pieces(labels, boxes, ids, step)
        floor = _fragment_floor(pieces)
        if ids is lumbar_and_thoracic:
            body_floor = floor
        kept, dropped = _drop_fragments(pieces, floor)
        for piece in dropped:
            _paint(out, piece, 0)
        levels = _group(kept)
        names = _best_names(levels, ids)
        for level, name in zip(levels, names, strict=True):
            for piece in level.pieces:
                _paint(out, piece, 0 if name is None else name)
        named = [level.centre for level, name in zip(levels, names, strict=True) if name is not None]
        if ids is lumbar_and_thoracic and named:
            lowest_vertebra = min(named)
    # The sacrum is one bone below every vertebra: keep its largest piece that is, unless that
    # piece is no bigger than a vertebra's fragment (a speck far down the field of view).
    sacrum = _pieces(labels, boxes, (SACRUM_ID,), step)
    below = [p for p in sacrum if (lowest_vertebra is None or p.centre < lowest_vertebra) and p.size >= body_floor]
    keep = max(below, key=lambda p: p.size, default=None)
    for piece in sacrum:
        if piece is not keep:
            _paint(out, piece, 0)
    return volume.with_array(out.astype(labels.dtype, copy=False))
