"""Level names by counting along the spine, with an honest verdict and a one-point correction: the one namer.

:func:`name_levels` takes a label map (and, from the segmenter, the network's
probabilities), builds the chain of bodies and discs along the spine's curve from the
pieces of :mod:`SAFNetSpineLib.inference.pieces` (:mod:`.chain`, :mod:`.curve`; the
evidence per piece in :mod:`.evidence`), names the whole chain at once by counting
(:mod:`.assign`), and says how far the names can be trusted and where the count starts
(:mod:`.verdict`). A :class:`LevelHint` (a name and a point in RAS mm) fixes one
structure, whatever the segmentation has there (:func:`.hint.place_hint`), and
everything else is counted from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming.assign import InfeasibleNaming, assign_positions
from SAFNetSpineLib.inference.naming.chain import Chain, ChainPiece, build_chain
from SAFNetSpineLib.inference.naming.evidence import ClassEvidence
from SAFNetSpineLib.inference.naming.hint import LevelHint, hint_voxel, parse_level_hint, place_hint
from SAFNetSpineLib.inference.naming.verdict import (
    ANCHORS,
    STATUSES,
    Verdict,
    confidences,
    judge,
    out_of_range_reason,
)
from SAFNetSpineLib.labels import NUM_CLASSES, STRUCTURES, id_at_position, spine_position
from SAFNetSpineLib.volume import Volume

__all__ = ["ANCHORS", "STATUSES", "ClassEvidence", "LevelHint", "NamingResult", "name_levels", "parse_level_hint"]


@dataclass
class NamingResult:
    """What :func:`name_levels` returns.

    Attributes:
        labels: The label map on the input's exact grid, renamed by the count (or as it
            was, with ``rename=False``).
        naming: ``{"status": "confident"|"uncertain"|"out_of_range", "anchor":
            "sacrum"|"hint"|"none", "counted_from": "counted from S1"|"counted from your L3"|
            "no anchor", "reason": one sentence}`` (docs/INTERFACES.md).
            ``out_of_range``: no lumbar or lower thoracic spine to name, so no level names.
        name_confidence: Label id -> confidence (0..1) of that structure's name.
        problems: Every problem found, one sentence each (the reason shows the first two).
    """

    labels: Volume
    naming: dict
    name_confidence: dict[int, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        """One line, what ``print(result.naming)`` shows: the status, what was counted from, and why."""
        naming = self.naming
        return f"level names {naming['status']} ({naming.get('counted_from', naming['anchor'])}): {naming['reason']}"

    def structure_fields(self) -> dict[str, dict[str, float]]:
        """Per-structure summary fields: {short name: {"name_confidence": value}}."""
        return {STRUCTURES[label_id].short_name: {"name_confidence": value}
                for label_id, value in sorted(self.name_confidence.items())}

    @property
    def warning(self) -> str | None:
        """One line for the user when the names are uncertain or out of range, else None."""
        if self.naming["status"] == "confident":
            return None
        if self.naming["status"] == "out_of_range":
            return f"no level names (out of range): {self.naming['reason']}"
        advice = "; name one level you know with --level-hint NAME=R,A,S to count from it" \
            if self.naming["anchor"] == "none" else ""
        return f"level names uncertain ({self.naming['counted_from']}): {self.naming['reason']}{advice}"


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
            only judges them (``segment --cleanup none``; a hint always renames). Out of
            range, the renamed map is empty: no level names.
        subject: File or case named in errors.

    Returns:
        :class:`NamingResult` on the input's exact grid.

    Raises:
        SpineInputError: the hint's point is outside the image. Anywhere inside it the
            user is right about the point (see :func:`.hint.place_hint`).
    """
    array = np.asarray(labels.array)
    voxel = hint_voxel(hint, labels, subject) if hint is not None else None
    chain = build_chain(labels, evidence)
    source = "network" if evidence is not None else "input labels"
    out_of_range = out_of_range_reason(chain, hint is not None)
    if out_of_range is not None:
        verdict = Verdict("out_of_range", "none", out_of_range, [out_of_range])
        out = labels.with_array(np.zeros_like(array), is_label=True) if rename else labels
        return NamingResult(out, verdict.as_dict(), {}, verdict.problems)
    fixed, notes = None, []
    if hint is not None:
        chain, index, notes = place_hint(chain, voxel, hint)
        fixed = (index, spine_position(hint.label_id))
    try:
        assignment = assign_positions(chain, fixed)
    except InfeasibleNaming as error:  # not expected: every piece may run off either end of the table
        raise SpineInputError(subject, f"level hint {hint}: counting from it, {error}") from None
    verdict = judge(chain, assignment, hint.name if hint else None, source, notes)
    if rename or hint is not None:
        names = [id_at_position(p) for p in assignment.positions]
        painted = _paint(array.shape, chain.pieces + chain.loose, names + _loose_names(chain, names), array.dtype)
        out = labels.with_array(painted, is_label=True)
    else:
        names = [p.own_label for p in chain.pieces]
        out = labels
    confidence = confidences(chain, assignment, names, verdict)
    present = np.flatnonzero(np.bincount(np.asarray(out.array).reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES])
    for label_id in present[1:] if len(present) and present[0] == 0 else present:
        confidence.setdefault(int(label_id), 0.0)  # only on loose pieces: never counted
    return NamingResult(out, verdict.as_dict(), confidence, verdict.problems)
