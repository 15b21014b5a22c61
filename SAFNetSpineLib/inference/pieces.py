"""Pieces of a label map: the one place that finds connected pieces and tells real ones from debris.

A piece is one 26-connected component of one label. Every stage that reasons about
pieces (the ``levels`` and ``largest`` clean-ups here, the naming chain in
:mod:`.naming.chain`) finds them with :func:`find_pieces` and sorts out debris with
the same two rules:

* a *speck* is far smaller than any real vertebra or disc at the image's voxel size
  (under :data:`SPECK_ML`): a piece no radiologist would call a level (a cervical scan,
  a limb or noise gives only such pieces);
* a *fragment* is small next to the other pieces of its kind (under
  :data:`FRAGMENT_FRACTION` of the median, over labels, of each label's largest piece).

:func:`clean_pieces` (``--cleanup levels``) removes both, every sacrum piece but one below
the lowest vertebra (the one attached to it, where there is one), and discs and sacrum
pieces detached far below the lowest vertebra or discs below the sacrum (bowel or pelvic
tissue called "S" or "L5/S"), and fills holes enclosed by a vertebra in a sagittal slice
(a vertebra is solid bone: a dark basivertebral vein or a lesion the network left out).
It never renames: names come from the count (:mod:`.naming`). What it earns over ``none`` on real cases is in
``Testing/benchmarks/bench_cleanup.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, SACRUM_ID, VERTEBRA_IDS
from SAFNetSpineLib.volume import Volume

#: Pieces under this volume (mL) are specks: the smallest real structure the network labels,
#: a thin thoracic disc seen on a few sagittal slices, holds over 1 mL; specks of cervical and
#: noise scans hold under 0.1 mL.
SPECK_ML = 0.3
#: Pieces smaller than this fraction of the median largest piece per label of their kind are fragments.
FRAGMENT_FRACTION = 0.1
#: Lumbar and thoracic vertebrae (the sacrum is a bone of its own size) and discs: each kind is
#: compared with itself.
BODY_IDS: tuple[int, ...] = tuple(i for i in VERTEBRA_IDS if i != SACRUM_ID)
KINDS: tuple[tuple[int, ...], ...] = (BODY_IDS, DISC_IDS)
#: A sacrum piece smaller than a vertebra's fragment is still S1 when its centre lies this many heights of
#: the lowest vertebra below that vertebra's centre (at least, at most).
S1_DEPTH = (0.5, 2.0)
#: The sacrum's top (the S1 endplate) lies one disc below the lowest vertebra: a sacrum piece whose top lies at
#: most this many heights of the lowest vertebra below that vertebra's bottom is attached to the spine. On the
#: development cases the sacrum's top lay 0.8 heights above to 0.06 below it.
S1_ATTACHED_GAP = 0.5
#: A sacrum piece whose top, or a disc whose top, lies more than this many heights of the lowest vertebra below
#: that vertebra's bottom is detached from the spine: S1 or L5/S after a missed L5 lies about 1.1-1.6 heights
#: below L4; the bowel and pelvic pieces a network calls "S" or "L5/S" on T2 scans 2.1-3.0 (chu_ cases,
#: Testing/benchmarks/RESULTS.md "Clean-up modes").
DETACHED_GAP = 1.9
#: No mobile disc lies below the sacrum: L5/S lies on S1's endplate, so its top lies above the sacrum's top (on
#: the development cases 0.1-0.2 heights above). A disc whose top lies more than this many heights of the lowest
#: vertebra below the kept sacrum piece's top is not a disc of the spine.
BELOW_SACRUM_GAP = 0.5


@dataclass(eq=False)
class Piece:
    """One connected piece of one label.

    Attributes:
        label_id: The label of its voxels.
        voxels: Voxel indices (N, 3) into the label map.
    """

    label_id: int
    voxels: np.ndarray

    @property
    def size(self) -> int:
        return int(len(self.voxels))


def find_pieces(labels: np.ndarray, label_ids: Iterable[int] = (*VERTEBRA_IDS, *DISC_IDS)) -> list[Piece]:
    """26-connected pieces of the given labels, each searched inside its label's bounding box.

    Args:
        labels: Integer label map (I, J, K).
        label_ids: Labels to cut into pieces.

    Returns:
        Pieces in label order, then in the order scipy numbers them.
    """
    from scipy import ndimage

    structure = np.ones((3, 3, 3), dtype=bool)
    boxes = ndimage.find_objects(np.asarray(labels).astype(np.int64, copy=False))
    found = []
    for label_id in label_ids:
        box = boxes[label_id - 1] if 0 < label_id <= len(boxes) else None
        if box is None:
            continue
        components, _ = ndimage.label(labels[box] == label_id, structure=structure)
        offset = np.array([b.start for b in box])
        for number, window in enumerate(ndimage.find_objects(components), start=1):
            if window is None:
                continue
            local = np.argwhere(components[window] == number) + np.array([w.start for w in window])
            found.append(Piece(int(label_id), local + offset))
    return found


def speck_floor(volume: Volume) -> float:
    """Voxels of :data:`SPECK_ML` at this volume's voxel size."""
    return SPECK_ML / max(float(volume.voxel_volume_ml), 1e-12)


def fragment_floor(sizes: dict[int, int]) -> float:
    """FRAGMENT_FRACTION of the median of each label's largest piece (voxels); 0 without pieces.

    Args:
        sizes: Label id -> voxels of that label's largest piece (one kind only).
    """
    return FRAGMENT_FRACTION * float(np.median(list(sizes.values()))) if sizes else 0.0


def largest_by_label(pieces: Iterable, label_of=lambda p: p.label_id) -> dict[int, int]:
    """Label id -> size of its largest piece."""
    largest: dict[int, int] = {}
    for piece in pieces:
        key = label_of(piece)
        largest[key] = max(largest.get(key, 0), piece.size)
    return largest


def debris_floor(pieces: list, speck_voxels: float, label_of=lambda p: p.label_id) -> float:
    """Size (voxels) under which a piece of one kind is debris: a speck, or a fragment of the rest.

    Works on any piece with ``size`` (voxels); ``label_of`` gives its label.
    """
    real = [p for p in pieces if p.size >= speck_voxels]
    return max(fragment_floor(largest_by_label(real, label_of)), speck_voxels)


def superior_mm(volume: Volume, voxels: np.ndarray) -> np.ndarray:
    """Superior (LPS z) coordinate in mm of voxel indices (N, 3), relative to the origin."""
    step = np.asarray(volume.direction)[2] * np.asarray(volume.spacing)
    return voxels @ step


@dataclass(frozen=True)
class LowestVertebra:
    """The lowest vertebra kept (not the sacrum): where the spine ends below, and the scale of gaps there.

    Attributes:
        centre_mm: Mean superior (LPS z) coordinate of its voxels, mm (see :func:`superior_mm`).
        bottom_mm: Its lowest superior coordinate, mm.
        height_mm: Its superior-inferior extent, mm.
    """

    centre_mm: float
    bottom_mm: float
    height_mm: float

    @classmethod
    def of(cls, volume: Volume, bodies: list[Piece]) -> LowestVertebra | None:
        """The lowest of the body pieces (by centre); None without any."""
        heights = [superior_mm(volume, p.voxels) for p in bodies]
        if not heights:
            return None
        z = min(heights, key=lambda h: float(h.mean()))
        return cls(float(z.mean()), float(z.min()), max(float(np.ptp(z)), 1e-6))

    def gap_below(self, top_mm: float) -> float:
        """How far a piece whose top lies at ``top_mm`` lies below this vertebra's bottom, in its heights."""
        return (self.bottom_mm - top_mm) / self.height_mm


def top_mm(volume: Volume, piece: Piece) -> float:
    """The highest superior (LPS z) coordinate of a piece, mm."""
    return float(superior_mm(volume, piece.voxels).max())


def clean_pieces(volume: Volume) -> Volume:
    """``--cleanup levels``: remove specks, fragments and misplaced sacrum and disc pieces; never rename.

    Args:
        volume: Label map (I, J, K) with label-table ids, any orientation and spacing.

    Returns:
        A new label Volume on the same grid; removed voxels are 0.
    """
    labels = np.asarray(volume.array)
    out = labels.copy()
    speck = speck_floor(volume)
    kept, floors = {}, {}
    for ids in KINDS:
        pieces = find_pieces(labels, ids)
        floors[ids] = debris_floor(pieces, speck)
        for piece in pieces:
            if piece.size < floors[ids]:
                out[tuple(piece.voxels.T)] = 0
        kept[ids] = [p for p in pieces if p.size >= floors[ids]]
    lowest = LowestVertebra.of(volume, kept[BODY_IDS])
    sacrum = find_pieces(labels, (SACRUM_ID,))
    keep = _the_sacrum(volume, sacrum, lowest, speck, floors[BODY_IDS] if kept[BODY_IDS] else speck)
    for piece in sacrum:
        if piece is not keep:
            out[tuple(piece.voxels.T)] = 0
    if lowest is not None:
        sacrum_top = top_mm(volume, keep) if keep is not None else None
        for disc in kept[DISC_IDS]:
            if _disc_detached(top_mm(volume, disc), lowest, sacrum_top):
                out[tuple(disc.voxels.T)] = 0
    _fill_sagittal_holes(out, volume, VERTEBRA_IDS)
    return volume.with_array(out.astype(labels.dtype, copy=False))


def _fill_sagittal_holes(labels: np.ndarray, volume: Volume, label_ids: Iterable[int]) -> None:
    """Give each label the background voxels it encloses in a sagittal slice (in place).

    Args:
        labels: Label map (I, J, K), changed in place; only background (0) voxels change.
        volume: Its geometry: the sagittal slices are those across the index axis closest to
            the patient's left-right axis.
        label_ids: Labels whose holes are filled.
    """
    from scipy import ndimage

    across = int(np.argmax(np.abs(np.asarray(volume.direction)[0])))
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False))
    for label_id in label_ids:
        box = boxes[label_id - 1] if 0 < label_id <= len(boxes) else None
        if box is None:
            continue
        window = labels[box]
        for i in range(window.shape[across]):
            plane = window[tuple(i if axis == across else slice(None) for axis in range(3))]
            plane[ndimage.binary_fill_holes(plane == label_id) & (plane == 0)] = label_id


def _disc_detached(disc_top: float, lowest: LowestVertebra, sacrum_top: float | None) -> bool:
    """Whether a disc whose top lies at ``disc_top`` (mm) lies far below the lowest vertebra
    (:data:`DETACHED_GAP`) or below the top of the kept sacrum piece (:data:`BELOW_SACRUM_GAP`)."""
    below_sacrum = sacrum_top is not None and (sacrum_top - disc_top) / lowest.height_mm > BELOW_SACRUM_GAP
    return lowest.gap_below(disc_top) > DETACHED_GAP or below_sacrum


def _the_sacrum(volume: Volume, sacrum: list[Piece], lowest: LowestVertebra | None, speck: float,
                body_floor: float) -> Piece | None:
    """The one sacrum piece to keep: one bone below every vertebra, attached to the lowest one where it can be.

    A candidate lies below the lowest vertebra, is not a speck, and is bigger than a vertebra's
    fragment or lies where S1 belongs (:data:`S1_DEPTH`: the top of the sacrum at the edge of the
    field of view). Of the candidates, the largest attached one (:data:`S1_ATTACHED_GAP`) is kept,
    else the largest not detached (:data:`DETACHED_GAP`).
    """
    if lowest is None:
        below = [p for p in sacrum if p.size >= speck and p.size >= body_floor]
        return max(below, key=lambda p: p.size, default=None)
    candidates = []
    for piece in sacrum:
        z = superior_mm(volume, piece.voxels)
        depth = lowest.centre_mm - float(z.mean())
        where_s1 = S1_DEPTH[0] * lowest.height_mm <= depth <= S1_DEPTH[1] * lowest.height_mm
        if depth > 0 and piece.size >= speck and (piece.size >= body_floor or where_s1):
            candidates.append((lowest.gap_below(float(z.max())), piece))
    attached = [p for gap, p in candidates if gap <= S1_ATTACHED_GAP]
    near = [p for gap, p in candidates if gap <= DETACHED_GAP]
    return max(attached or near, key=lambda p: p.size, default=None)


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """``--cleanup largest``: keep, for every label id, only its largest 26-connected piece.

    Args:
        labels: Integer label map, any 3D shape.

    Returns:
        A new label map of the same shape and dtype; removed voxels become 0.
    """
    cleaned = np.asarray(labels).copy()
    by_label: dict[int, list[Piece]] = {}
    for piece in find_pieces(cleaned, range(1, int(cleaned.max(initial=0)) + 1)):
        by_label.setdefault(piece.label_id, []).append(piece)
    for pieces in by_label.values():
        largest = max(pieces, key=lambda p: p.size)
        for piece in pieces:
            if piece is not largest:
                cleaned[tuple(piece.voxels.T)] = 0
    return cleaned
