"""``--level-hint NAME=R,A,S``: one structure the user names, in Slicer's RAS millimetres, and where it sits on the chain.

The user is right about the point: only a point outside the image or a name outside
S..T9 is refused (see :func:`place_hint`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming.chain import OFF_CURVE_HEIGHTS, Chain, ChainPiece, place
from SAFNetSpineLib.inference.pieces import FRAGMENT_FRACTION
from SAFNetSpineLib.labels import STRUCTURES, structure_by_name
from SAFNetSpineLib.volume import LPS_TO_RAS, Volume

HINT_FORMAT = "NAME=R,A,S (a level name such as L3 or L4/L5, then a point in RAS mm as Slicer shows it)"


@dataclass(frozen=True)
class LevelHint:
    """A level name and a point inside that structure.

    Attributes:
        label_id: Label-table id of the name (vertebra or disc).
        point_ras: The point (R, A, S) in mm, Slicer's convention.
    """

    label_id: int
    point_ras: tuple[float, float, float]

    @property
    def name(self) -> str:
        return STRUCTURES[self.label_id].short_name

    @property
    def point_lps(self) -> np.ndarray:
        """The point in LPS mm (the library's frame): R and A change sign."""
        return LPS_TO_RAS @ np.asarray(self.point_ras, dtype=np.float64)

    def __str__(self) -> str:
        return f"{self.name}={','.join(f'{v:g}' for v in self.point_ras)}"


def parse_level_hint(text: str) -> LevelHint:
    """Parse ``NAME=R,A,S``, e.g. ``L3=12.5,-30,40``.

    Raises:
        SpineInputError: unknown name, background, or not three numbers.
    """
    name, sep, point = str(text).partition("=")
    if not sep:
        raise SpineInputError(None, f"--level-hint {text!r}: expected {HINT_FORMAT}")
    found = structure_by_name(name)
    if found is None or found.kind == "background":
        raise SpineInputError(None, f"--level-hint {text!r}: {name.strip()!r} is not a vertebra or disc of the "
                                    "label table (S, L5 ... T9, L5/S ... T9/T10)")
    try:
        values = tuple(float(v) for v in point.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise SpineInputError(None, f"--level-hint {text!r}: expected {HINT_FORMAT}")
    return LevelHint(found.label_id, values)  # type: ignore[arg-type]


def hint_voxel(hint: LevelHint, labels: Volume, subject: str | None = None) -> tuple[int, int, int]:
    """Index (i, j, k) of the voxel that holds the hint's point (labelled or not).

    Raises:
        SpineInputError: the point is outside the image.
    """
    affine = labels.affine_lps
    index = np.linalg.solve(affine[:3, :3], hint.point_lps - affine[:3, 3])
    voxel = tuple(int(v) for v in np.rint(index))
    if not all(0 <= v < n for v, n in zip(voxel, labels.shape, strict=True)):
        raise SpineInputError(subject, f"level hint {hint}: the point (RAS {', '.join(f'{v:g}' for v in hint.point_ras)}"
                                       " mm) is outside the image")
    return voxel  # type: ignore[return-value]


def _holding(chain: Chain, voxel: tuple[int, int, int]) -> ChainPiece | None:
    target = np.asarray(voxel)
    return next((p for p in chain.pieces if p.size and np.any(np.all(p.voxels == target[None, :], axis=1))), None)


def _virtual(kind: str, centre: np.ndarray, arc: float, height: float, evidence: np.ndarray) -> ChainPiece:
    return ChainPiece(kind, np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64), centre,
                      arc=arc, low=arc - height / 2, high=arc + height / 2, evidence=evidence)


def _with(chain: Chain, pieces: list[ChainPiece], loose: list[ChainPiece], named: ChainPiece) -> tuple[Chain, int]:
    ordered = sorted([*pieces, named], key=lambda p: p.arc)
    return replace(chain, pieces=ordered, loose=loose), ordered.index(named)


def _part(piece: ChainPiece, mine: np.ndarray, kind: str, points: np.ndarray, chain: Chain) -> ChainPiece:
    part = ChainPiece(kind, piece.voxels[mine], piece.voxel_labels[mine], points[mine].mean(axis=0),
                      evidence=piece.evidence)
    place(part, points[mine], chain.curve)
    return part


def place_hint(chain: Chain, voxel: tuple[int, int, int], hint: LevelHint) -> tuple[Chain, int, list[str]]:
    """Make the chain hold the structure the user named, at the point, and return its index.

    The point's kind is what the user says. The structure at the point is, in order:
    the chain piece holding the point's voxel; else (a point beside a body, in the
    canal or in front of it) the piece of the named kind nearest the point's height
    along the curve whose extent (and half a typical disc height) holds that height, or
    any piece whose extent holds it; else none. A piece of the named kind is taken as
    it is. A piece of the other kind (the network painted a disc across the body the
    user points at, or a body over the disc) is re-split: its voxels within half a typical height of the
    point become the named structure, together with pieces of the named kind centred
    there, and what lies below and above stays as it was. With no piece there (a
    structure the network missed), an empty structure of the named kind stands at the
    point and is counted like any other.

    Args:
        chain: The chain (at least one piece), with its curve and geometry.
        voxel: The hint's voxel in the label map.
        hint: The hint.

    Returns:
        (chain, index of the named structure in ``chain.pieces``, notes for the user).
    """
    kind = STRUCTURES[hint.label_id].kind
    point = chain.geometry.points(np.asarray([voxel], dtype=np.float64))[0]
    arc, _, off = chain.curve.project(point)
    height = chain.typical_height(kind)
    notes = []
    if off > OFF_CURVE_HEIGHTS * chain.body_height_mm:
        notes.append(f"the hint point lies {off:.0f} mm from the spine; the structure at its height was taken")
    found = _holding(chain, voxel)
    if found is None:  # beside the spine: the structure of the named kind at the point's height, else any
        margin = chain.disc_height_mm / 2
        near = [p for p in chain.pieces if p.kind == kind and p.low - margin <= arc <= p.high + margin]
        along = [p for p in chain.pieces if p.low <= arc <= p.high]
        found = min(near, key=lambda p: abs(p.arc - arc), default=None) or min(
            along, key=lambda p: float(np.linalg.norm(p.centre - point)), default=None)
    pieces = list(chain.pieces)
    if found is not None and found.kind == kind:
        return chain, pieces.index(found), notes
    if found is None:
        named = _virtual(kind, chain.curve.samples[int(np.argmin(np.abs(chain.curve.arc - arc)))], arc, height,
                         np.zeros_like(chain.pieces[0].evidence))
        notes.append(f"no {kind} was segmented at the point: {hint.name} was counted there without an outline")
        return (*_with(chain, pieces, chain.loose, named), notes)
    # Re-split: the named structure is carved out of the other-kind piece around the point.
    points = chain.geometry.points(found.voxels)
    _, tangent, _ = chain.curve.project(found.centre)
    along = found.arc + (points - found.centre[None, :]) @ tangent
    inside = np.abs(along - arc) <= height / 2
    named = _part(found, inside, kind, points, chain) if inside.any() else _virtual(
        kind, point, arc, height, found.evidence)
    pieces.remove(found)
    loose = list(chain.loose)
    for side in (along < arc - height / 2, along > arc + height / 2):
        if side.any():  # what is left below and above stays what it was; a sliver of it is loose
            part = _part(found, side, found.kind, points, chain)
            (pieces if side.sum() >= FRAGMENT_FRACTION * found.size else loose).append(part)
    for other in [p for p in pieces if p.kind == kind and abs(p.arc - arc) <= height / 2 and p.size]:
        pieces.remove(other)
        voxels = np.concatenate([named.voxels, other.voxels])
        union_points = chain.geometry.points(voxels)
        union = ChainPiece(kind, voxels, np.concatenate([named.voxel_labels, other.voxel_labels]),
                           union_points.mean(axis=0), evidence=named.evidence)
        place(union, union_points, chain.curve)
        named = union
    notes.append(f"the segmentation had a {found.kind} (labelled {found.own_name}) at the point: "
                 f"the voxels around it were taken as {hint.name}, as you said")
    return (*_with(chain, pieces, loose, named), notes)
