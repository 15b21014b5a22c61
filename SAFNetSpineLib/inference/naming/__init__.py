"""Level names by counting along the spine, with an honest verdict and a one-point correction.

:func:`name_levels` takes a label map (and, from the segmenter, the network's
probabilities), builds the chain of bodies and discs along the spine's curve
(:mod:`.chain`, :mod:`.curve`; the evidence per piece in :mod:`.evidence`), names the whole chain at once by counting (:mod:`.assign`), and says
how far the names can be trusted (:mod:`.verdict`). A :class:`LevelHint` (a name and a
point in RAS mm) fixes one structure and everything else is counted from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming.assign import InfeasibleNaming, assign_positions, id_at, position_of
from SAFNetSpineLib.inference.naming.chain import Chain, ChainPiece, build_chain
from SAFNetSpineLib.inference.naming.evidence import ClassEvidence
from SAFNetSpineLib.inference.naming.hint import LevelHint, hint_voxel, parse_level_hint
from SAFNetSpineLib.inference.naming.verdict import ANCHORS, STATUSES, confidences, judge
from SAFNetSpineLib.labels import NUM_CLASSES, STRUCTURES
from SAFNetSpineLib.volume import Volume

__all__ = ["ANCHORS", "STATUSES", "ClassEvidence", "LevelHint", "NamingResult", "name_levels", "parse_level_hint"]


@dataclass
class NamingResult:
    """What :func:`name_levels` returns.

    Attributes:
        labels: The label map on the input's exact grid, renamed by the count (or as it
            was, with ``rename=False``).
        naming: ``{"status": "confident"|"uncertain", "anchor": "sacrum"|"hint"|"none",
            "reason": one sentence}``.
        name_confidence: Label id -> confidence (0..1) of that structure's name.
        problems: Every problem found, one sentence each (the reason shows the first two).
    """

    labels: Volume
    naming: dict
    name_confidence: dict[int, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def structure_fields(self) -> dict[str, dict[str, float]]:
        """Per-structure summary fields: {short name: {"name_confidence": value}}."""
        return {STRUCTURES[label_id].short_name: {"name_confidence": value}
                for label_id, value in sorted(self.name_confidence.items())}

    @property
    def warning(self) -> str | None:
        """One line for the user when the names are uncertain, else None."""
        if self.naming["status"] == "confident":
            return None
        return f"level names uncertain (anchor: {self.naming['anchor']}): {self.naming['reason']}"


def _hinted_piece(chain: Chain, voxel: tuple[int, int, int], hint: LevelHint, subject) -> int:
    target = np.asarray(voxel)
    for index, piece in enumerate(chain.pieces):
        if np.any(np.all(piece.voxels == target[None, :], axis=1)):
            wanted = STRUCTURES[hint.label_id].kind
            if piece.kind != wanted:
                raise SpineInputError(subject, f"level hint {hint}: the point lies in a "
                                               f"{'disc' if piece.kind == 'disc' else 'vertebra'} "
                                               f"(labelled {piece.own_name}) but {hint.name} is a {wanted}")
            return index
    raise SpineInputError(subject, f"level hint {hint}: the point lies on a small fragment off the spine; "
                                   "place it inside a vertebral body or disc")


def _loose_names(chain: Chain, names: list[int]) -> list[int]:
    """A loose piece takes the new name of the chain piece that had its label, else of the nearest of its kind."""
    out = []
    for piece in chain.loose:
        same_kind = [(i, p) for i, p in enumerate(chain.pieces) if p.kind == piece.kind]
        if not same_kind:
            out.append(piece.own_label)
            continue
        same_label = [(i, p) for i, p in same_kind if p.own_label == piece.own_label] or same_kind
        i, _ = min(same_label, key=lambda item: float(np.linalg.norm(item[1].centre - piece.centre)))
        out.append(names[i])
    return out


def _paint(shape, pieces: list[ChainPiece], names: list[int], dtype) -> np.ndarray:
    out = np.zeros(shape, dtype=dtype)
    for piece, name in zip(pieces, names, strict=True):
        out[tuple(piece.voxels.T)] = name
    return out


def name_levels(labels: Volume, evidence: ClassEvidence | None = None, hint: LevelHint | None = None, *,
                rename: bool = True, subject: str | None = None) -> NamingResult:
    """Name every vertebra and disc by counting along the spine.

    Args:
        labels: Label map (I, J, K) with label-table ids (0..19), any grid.
        evidence: The network's probabilities; without them the map's own labels are
            the evidence (an existing or hand-corrected label map).
        hint: One structure named by the user; everything else is counted from it.
        rename: Write the counted names into the label map; False keeps the labels and
            only judges them (``segment --cleanup none``).
        subject: File or case named in errors.

    Returns:
        :class:`NamingResult` on the input's exact grid.

    Raises:
        SpineInputError: the hint's point is outside every structure, or its name is of
            the other kind than the structure there.
    """
    array = np.asarray(labels.array)
    voxel = hint_voxel(hint, labels, subject) if hint is not None else None
    chain = build_chain(labels, evidence)
    source = "network" if evidence is not None else "input labels"
    if not chain.pieces:
        naming = {"status": "uncertain", "anchor": "none", "reason": "no vertebra or disc was found to name"}
        return NamingResult(labels, naming, {}, [naming["reason"]])
    fixed = None
    if hint is not None:
        fixed = (_hinted_piece(chain, voxel, hint, subject), position_of(hint.label_id))
    try:
        assignment = assign_positions(chain, fixed)
    except InfeasibleNaming as error:
        raise SpineInputError(subject, f"level hint {hint}: counting from it, {error}; "
                                       "check the point and the name") from None
    verdict = judge(chain, assignment, hint.name if hint else None, source)
    if rename:
        names = [id_at(p) for p in assignment.positions]
        painted = _paint(array.shape, chain.pieces + chain.loose, names + _loose_names(chain, names), array.dtype)
        out = labels.with_array(painted, is_label=True)
    else:
        names = [p.own_label for p in chain.pieces]
        out = labels
    confidence = confidences(chain, assignment, names, verdict.anchor)
    present = np.flatnonzero(np.bincount(np.asarray(out.array).reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES])
    for label_id in present[1:] if len(present) and present[0] == 0 else present:
        confidence.setdefault(int(label_id), 0.0)  # only on loose pieces: never counted
    return NamingResult(out, verdict.as_dict(), confidence, verdict.problems)
