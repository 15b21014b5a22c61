"""How far the names can be trusted: anchor, status, where the count starts, reason, per-level confidence.

* ``out_of_range`` (:func:`out_of_range_reason`): no lumbar or lower thoracic spine to
  name (nothing but specks, too few bodies, too short a stretch, bodies of cervical
  size): no level names.
* ``anchor``: "hint" when the user named one level; "sacrum" when the lowest body,
  counted S, shows S1's signs as a reader sees them (:func:`s1_signs`: a normal disc
  above, no disc below, not as tall as a lumbar body, no sliver, the network's S or the tall
  sacrum's shape); else "none". ``counted_from`` says it in words ("counted from S1",
  "counted from your L3", "no anchor").
* ``status``: "confident" only with an anchor and nothing that weakens the count: no
  chain too odd to count (:func:`.structure.structural_problems`: a body split for being too
  tall without a disc seen inside it, a body missing, one found in two pieces, a body or
  disc too tall to be one, a body and a disc side by side), no sign of a transitional
  lumbosacral vertebra, the network (or the input's labels) agreeing with the count on
  every body but the topmost (counted from S1; without an anchor on every piece), and
  every piece's posterior at least CONFIDENT_POSTERIOR. With a hint, the user's count
  overrides the network and the lumbosacral junction.
* ``name_confidence``: the posterior probability of each structure's name
  (:mod:`.assign`); at most NO_ANCHOR_CAP without an anchor, because a count that starts
  nowhere rests on the network's appearance alone, which was a level off in one unseen
  scan in four, and where the network names that structure otherwise than the count.
  Counted from S1, the same cap holds for every name when anything weakens the count
  (``count_doubted``: the case is ``uncertain``), so a name is never surer than its case:
  on sources left out of training, S1 was recognised a level off, and names where the
  network agreed with the shifted count had 0.9 or more and were wrong (2 of 2 on the T2
  source, 4 of 14 on the T1 water-fat source).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.inference.naming.assign import SACRUM_HEIGHT, Assignment, sacrum_shape
from SAFNetSpineLib.inference.naming.chain import Chain
from SAFNetSpineLib.inference.naming.structure import SACRUM_POSITION, level_name, structural_problems
from SAFNetSpineLib.labels import (
    DISC_IDS,
    L5_ID,
    L5_S_ID,
    SACRUM_ID,
    STRUCTURES,
    VERTEBRA_IDS,
    id_at_position,
    spine_position,
)

STATUSES = ("confident", "uncertain", "out_of_range")
ANCHORS = ("sacrum", "hint", "none")
#: Fewer vertebral bodies than this, or a chain shorter than MIN_SPAN_MM along the spine, is no lumbar or
#: lower thoracic spine to count (a cervical or brain scan, a limb, noise, a scan cut to a few centimetres).
MIN_BODIES = 3
MIN_SPAN_MM = 60.0
#: ... or bodies of under this median volume (mL): an adult's T9 body holds about 15 mL, a cervical one 2-5 mL.
MIN_BODY_ML = 5.0
CONFIDENT_POSTERIOR = 0.9
NO_ANCHOR_CAP = 0.5
#: An L5/S disc under this fraction of the median volume of the other discs is rudimentary.
RUDIMENTARY_DISC = 0.35
#: L5 (or the sacrum) is partly sacral and partly lumbar when both S and L5 have at least this probability.
MIXED_JUNCTION = 0.25
#: A disc at least this fraction of the median volume of the other discs is normal (a sign of S1 below it).
NORMAL_DISC = 0.5
#: The network sees the lowest body as S when P(S) is at least this.
S1_EVIDENCE = 0.8
#: A lowest body from this many typical body heights up to SACRUM_HEIGHT is as tall as a lumbar body.
LUMBAR_LIKE = 0.8
#: The top of the sacrum in view, not cut by the image's edge, holds at least this share of the median body's
#: voxels; a smaller "S" is a sliver. With the bundled weights the S pieces of the 8 development held-out cases held
#: 7-25 %; the sliver taken for S1 on a T2 scan left out of training held 1 % (0.7 mL touching a body the network
#: put in the bowel).
S1_MIN_BODY_SHARE = 0.03


@dataclass
class Verdict:
    """status, anchor, where the count starts, reason and every problem found (one sentence each)."""

    status: str
    anchor: str
    reason: str
    problems: list[str] = field(default_factory=list)
    counted_from: str = "no anchor"

    @property
    def count_doubted(self) -> bool:
        """Counted from S1, but something weakens the count (status uncertain): no name is trusted fully."""
        return self.anchor == "sacrum" and self.status == "uncertain"

    def as_dict(self) -> dict:
        return {"status": self.status, "anchor": self.anchor, "counted_from": self.counted_from,
                "reason": self.reason}


def out_of_range_reason(chain: Chain, hinted: bool = False) -> str | None:
    """Why the chain is no lumbar or lower thoracic spine to name, or None when it may be one.

    With a hint only an empty chain is out of range: the user says what is there.
    """
    if not chain.pieces:
        return "no vertebra or disc was found (nothing larger than a speck)"
    if hinted:
        return None
    bodies = sum(1 for p in chain.pieces if p.kind == "vertebra")
    span = max(p.high for p in chain.pieces) - min(p.low for p in chain.pieces)
    if bodies < MIN_BODIES:
        return (f"only {bodies} vertebral bod{'y' if bodies == 1 else 'ies'} found, too few to count: no lumbar or "
                "lower thoracic spine in view, or the segmentation missed it")
    if span < MIN_SPAN_MM:
        return (f"the structures found span {span:.0f} mm along the spine (under {MIN_SPAN_MM:.0f} mm), too little to "
                "count: no lumbar or lower thoracic spine in view, or the segmentation missed it")
    sizes = [p.size for p in chain.pieces if p.kind == "vertebra" and not p.is_sacrum_labelled and p.size]
    median_ml = float(np.median(sizes)) * chain.geometry.voxel_ml if sizes and chain.geometry else None
    if median_ml is not None and median_ml < MIN_BODY_ML:
        return (f"the vertebral bodies found hold {median_ml:.1f} mL (median), under {MIN_BODY_ML:.0f} mL: smaller "
                "than any lumbar or lower thoracic body (a cervical spine?)")
    return None


_L5_S, _L5 = (spine_position(i) for i in (L5_S_ID, L5_ID))


def _junction_problems(chain: Chain, assignment: Assignment) -> list[str]:
    at = {p: i for i, p in enumerate(assignment.positions)}
    if SACRUM_POSITION not in at:
        return []
    problems = []
    check = "check whether L5 is sacralised or S1 lumbarised"
    discs = [(i, p) for i, p in enumerate(chain.pieces) if p.kind == "disc"]
    if _L5_S in at:
        share = _disc_share(chain, at[_L5_S])
        if share is not None and share < RUDIMENTARY_DISC:
            problems.append(f"the L5/S disc is rudimentary or degenerate ({share:.0%} of a typical disc): "
                            f"a transitional lumbosacral vertebra? {check}")
    elif _L5 in at and discs:
        problems.append(f"no L5/S disc lies between the sacrum and L5: a transitional lumbosacral vertebra? {check}")
    # Mixed, not merely wrong: both S and L5 keep a real share of the evidence of one piece.
    for position, what in ((SACRUM_POSITION, "the sacrum"), (_L5, "L5")):
        if position in at:
            p_s, p_l5 = chain.pieces[at[position]].evidence[[SACRUM_ID, L5_ID]]
            if min(p_s, p_l5) >= MIXED_JUNCTION:
                problems.append(f"{what} looks partly sacral and partly lumbar (P(S) = {p_s:.2f}, "
                                f"P(L5) = {p_l5:.2f}): a transitional lumbosacral vertebra? {check}")
                break
    return problems


def _disc_share(chain: Chain, index: int) -> float | None:
    """Voxels of disc piece ``index`` as a share of the median of the other discs; None with under two others."""
    others = [p.size for i, p in enumerate(chain.pieces) if p.kind == "disc" and i != index and p.size]
    return chain.pieces[index].size / float(np.median(others)) if len(others) >= 2 else None


def s1_signs(chain: Chain, assignment: Assignment, source: str = "network") -> tuple[list[str], list[str]]:
    """(signs seen, signs missing) that the lowest body, counted S, is the sacrum (its top, S1).

    A reader counts from S1 when the lowest body has a normal disc above it and no disc
    below it, the bone goes on below it in view (a piece cut by the image's lower edge
    may be a lumbar body cut short, unless it is the tall sacrum), it is not as tall as a lumbar body (the top of the
    sacrum seen alone is shorter, the sacrum seen whole taller: a lumbar body at the
    lower edge of the view, called S, is neither), it looks like the sacrum: shaped
    like it (tall, see :func:`.assign.sacrum_shape`) or so to the network (P(S) at least S1_EVIDENCE; labels
    of an input label map say nothing about the anatomy, so there only the shape counts), and, unless the
    image's lower edge cuts it, it is no sliver (under :data:`S1_MIN_BODY_SHARE` of the median body).
    """
    lowest = next((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), None)
    if lowest is None or assignment.positions[lowest] != SACRUM_POSITION:
        return [], ["no body is counted S"]
    piece = chain.pieces[lowest]
    seen, missing = [], []
    bodies_above = sum(1 for p in chain.pieces[lowest + 1:] if p.kind == "vertebra")
    (seen if bodies_above >= MIN_BODIES else missing).append(f"{bodies_above} bodies above it")
    above = chain.pieces[lowest + 1] if lowest + 1 < len(chain.pieces) else None
    share = _disc_share(chain, lowest + 1) if above is not None and above.kind == "disc" else None
    (seen if share is not None and share >= NORMAL_DISC else missing).append("a normal disc above it")
    disc_below = any(p.kind == "disc" and p.arc < piece.arc for p in chain.pieces)
    (missing if disc_below else seen).append("no disc below it")
    shaped = sacrum_shape(chain) == "sacrum"
    network = source == "network" and float(piece.evidence[SACRUM_ID]) >= S1_EVIDENCE
    (seen if shaped or network else missing).append("the sacrum's shape (tall) or the network's S")
    lumbar_like = LUMBAR_LIKE * chain.body_height_mm <= piece.height < SACRUM_HEIGHT * chain.body_height_mm
    (missing if lumbar_like else seen).append("a height unlike a lumbar body's")
    cut = chain.geometry is not None and chain.geometry.at_inferior_edge(piece.voxels)
    (missing if cut and not shaped else seen).append("bone below it in view (not cut by the image's lower edge)")
    bodies = [p.size for p in chain.pieces if p.kind == "vertebra" and p is not piece]
    sliver = not cut and bool(bodies) and piece.size < S1_MIN_BODY_SHARE * float(np.median(bodies))
    (missing if sliver else seen).append("more than a sliver of a body's size")
    return seen, missing
def disputed(chain: Chain, assignment: Assignment) -> list[int]:
    """Indices of the pieces whose most likely name by the evidence is not the counted one."""
    out = []
    for index, (piece, position) in enumerate(zip(chain.pieces, assignment.positions, strict=True)):
        kind_ids = list(VERTEBRA_IDS if piece.kind == "vertebra" else DISC_IDS)
        if kind_ids[int(np.argmax(piece.evidence[kind_ids]))] != id_at_position(position):
            out.append(index)
    return out


def _disagreements(chain: Chain, assignment: Assignment, source: str, bodies_only: bool = False) -> list[str]:
    """The pieces the source names otherwise than the count, as one problem (none: no problem).

    ``bodies_only`` (counted from S1): discs and the topmost body (cut by the edge of
    the view more often than not, named by its look alone) are left out.
    """
    differ = []
    top_body = max((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), default=None)
    for index in disputed(chain, assignment):
        piece = chain.pieces[index]
        if bodies_only and (piece.kind != "vertebra" or index == top_body):
            continue
        kind_ids = list(VERTEBRA_IDS if piece.kind == "vertebra" else DISC_IDS)
        seen = kind_ids[int(np.argmax(piece.evidence[kind_ids]))]
        differ.append(f"{STRUCTURES[seen].short_name} (counted {level_name(assignment.positions[index])})")
    if not differ:
        return []
    more = f" and {len(differ) - 2} more" if len(differ) > 2 else ""
    return [f"the {source} and the count disagree at {', '.join(differ[:2])}{more}"]


def _anchor_problem(chain: Chain, assignment: Assignment, source: str) -> str | None:
    """None when S1 anchors the count (see :func:`s1_signs`); else why not."""
    seen, missing = s1_signs(chain, assignment, source)
    if not missing:
        return None
    if not seen:
        return "no sacrum in view to count from, so the names rest on the network alone"
    return (f"the lowest body is counted S but lacks {', '.join(missing)} (has {', '.join(seen)}): "
            "S1 is not recognised, so the names rest on the network alone")


def _hint_problems(chain: Chain, assignment: Assignment, hint_name: str) -> list[str]:
    """Where counting from the user's hint leaves the label table or contradicts the sacrum's shape."""
    problems = []
    below = sum(1 for p in assignment.positions if p < 0)
    if below:
        problems.append(f"counting from the hint at {hint_name}, {below} structure(s) at the bottom fall below S, "
                        "and are left unlabelled")
    above = sum(1 for p in assignment.positions if p >= 0 and not id_at_position(p))
    if above:
        problems.append(f"counting from the hint at {hint_name}, {above} structure(s) at the top fall above T9, "
                        "which has no name in the label table, and are left unlabelled")
    lowest_body = next((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), None)
    if sacrum_shape(chain) == "sacrum" and lowest_body is not None and assignment.positions[lowest_body] != SACRUM_POSITION:
        problems.append(f"the lowest body is shaped like the sacrum, but counting from the hint at {hint_name} "
                        f"names it {level_name(assignment.positions[lowest_body])}")
    return problems


def judge(chain: Chain, assignment: Assignment, hint_name: str | None, source: str = "network",
          notes: list[str] | None = None) -> Verdict:
    """The verdict on a chain's naming.

    Args:
        chain: The chain (at least one piece).
        assignment: Its naming.
        hint_name: Name the user gave one structure, or None.
        source: Who named the pieces before the count ("network" or "input labels").
        notes: What placing the hint changed (told in the reason, not problems).
    """
    problems = structural_problems(chain, assignment)
    if hint_name is None:
        problems += _junction_problems(chain, assignment)
        anchor_problem = _anchor_problem(chain, assignment, source)
        if anchor_problem:
            problems.append(anchor_problem)
        anchor = "none" if anchor_problem else "sacrum"
        # Counted from S1, disc names follow from the bodies around them, and the topmost body from those
        # below it: the network's names there only lower their confidence. Without an anchor every
        # disagreement counts.
        problems += _disagreements(chain, assignment, source, bodies_only=anchor == "sacrum")
    else:
        anchor = "hint"
        problems += _hint_problems(chain, assignment, hint_name)
    counted_from = {"sacrum": "counted from S1", "hint": f"counted from your {hint_name}"}.get(anchor, "no anchor")
    weakest = int(np.argmin(assignment.posterior))
    if assignment.posterior[weakest] < CONFIDENT_POSTERIOR:
        problems.append(f"the count is ambiguous at {level_name(assignment.positions[weakest])} "
                        f"(posterior {assignment.posterior[weakest]:.2f})")
    told = f"; {'; '.join(notes)}" if notes else ""
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        return Verdict("uncertain", anchor, "; ".join(problems[:2]) + more + told, problems, counted_from)
    bodies = sum(1 for p in chain.pieces if p.kind == "vertebra")
    discs = len(chain.pieces) - bodies
    contested = len(disputed(chain, assignment)) if hint_name is None else 0
    agreement = ("" if hint_name else f", in agreement with the {source}" if not contested
                 else f"; the {source} names {contested} of them otherwise (their confidence is lowered)")
    return Verdict("confident", anchor, f"{counted_from}: {bodies} bodies and {discs} discs in order{agreement}{told}",
                   [], counted_from)


def confidences(chain: Chain, assignment: Assignment, final_ids: list[int], verdict: Verdict) -> dict[int, float]:
    """name_confidence per final label id (0..1): the weakest posterior of the pieces that carry it.

    Capped at NO_ANCHOR_CAP without an anchor, and where (without a hint) the evidence
    names the piece otherwise than the count: then one of the two is wrong. Without an
    anchor, or counted from S1 across a doubtful chain (:attr:`Verdict.count_doubted`), the
    names rest on the evidence alone, so no name is surer than the evidence for it (the
    network's mean probability of that name over the piece, within its kind).

    Args:
        chain: The chain.
        assignment: Its naming.
        final_ids: The label id written on each chain piece (0: none).
        verdict: The case's verdict (:func:`judge`).
    """
    contested = set(disputed(chain, assignment)) if verdict.anchor != "hint" else set()
    unanchored = verdict.anchor == "none" or verdict.count_doubted
    out: dict[int, float] = {}
    for i, label_id in enumerate(final_ids):
        if not label_id:
            continue
        cap = NO_ANCHOR_CAP if unanchored or i in contested else 1.0
        if unanchored:
            cap = min(cap, float(chain.pieces[i].evidence[label_id]))
        value = min(float(assignment.marginals[i, spine_position(label_id)]), cap)
        out[label_id] = round(min(out.get(label_id, 1.0), value), 3)
    return out
