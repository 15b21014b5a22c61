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

:func:`clean_pieces` (``--cleanup levels``) removes both, and every sacrum piece but the
largest one below the lowest vertebra. It never renames: names come from the count
(:mod:`.naming`). What it earns over ``none`` on real cases is in
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


def _superior_mm(volume: Volume, voxels: np.ndarray) -> np.ndarray:
    """Superior (LPS z) coordinate in mm of voxel indices (N, 3), relative to the origin."""
    step = np.asarray(volume.direction)[2] * np.asarray(volume.spacing)
    return voxels @ step


def clean_pieces(volume: Volume) -> Volume:
    """``--cleanup levels``: remove specks, fragments and misplaced sacrum pieces; never rename.

    Args:
        volume: Label map (I, J, K) with label-table ids, any orientation and spacing.

    Returns:
        A new label Volume on the same grid; removed voxels are 0.
    """
    labels = np.asarray(volume.array)
    out = labels.copy()
    speck = speck_floor(volume)
    lowest, body_floor = None, speck
    for ids in KINDS:
        pieces = find_pieces(labels, ids)
        floor = debris_floor(pieces, speck)
        for piece in pieces:
            if piece.size < floor:
                out[tuple(piece.voxels.T)] = 0
        kept = [p for p in pieces if p.size >= floor]
        if ids is BODY_IDS and kept:
            body_floor = floor
            heights = [_superior_mm(volume, p.voxels) for p in kept]
            lowest = min(heights, key=lambda z: float(z.mean()))
    # The sacrum is one bone below every vertebra: keep its largest piece that is, unless that piece is
    # no bigger than a vertebra's fragment (a speck far down the field of view) and not where S1 belongs
    # either (just below the lowest vertebra: the top of the sacrum at the edge of the field of view).
    sacrum = find_pieces(labels, (SACRUM_ID,))
    below = []
    for piece in sacrum:
        depth = float(lowest.mean() - _superior_mm(volume, piece.voxels).mean()) if lowest is not None else 1.0
        height = float(np.ptp(lowest)) if lowest is not None else 0.0
        where_s1 = S1_DEPTH[0] * height <= depth <= S1_DEPTH[1] * height
        if depth > 0 and piece.size >= speck and (piece.size >= body_floor or where_s1):
            below.append(piece)
    keep = max(below, key=lambda p: p.size, default=None)
    for piece in sacrum:
        if piece is not keep:
            out[tuple(piece.voxels.T)] = 0
    return volume.with_array(out.astype(labels.dtype, copy=False))


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
