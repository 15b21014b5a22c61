"""How far the names can be trusted: anchor, status, one-sentence reason, per-level confidence.

* ``anchor``: "hint" when the user named one level; "sacrum" when the count starts at a
  piece named S that is shaped like the sacrum (tall, no disc below it); else "none".
* ``status``: "confident" only with an anchor and nothing that weakens the count: no
  body split for being twice too tall, no body missing from the chain, no sign of a
  transitional lumbosacral vertebra, the network (or the input's labels) agreeing with
  the count on every piece, and every piece's posterior at least CONFIDENT_POSTERIOR.
  With a hint, the user's count overrides the network and the lumbosacral junction.
* ``name_confidence``: the posterior probability of each structure's name
  (:mod:`.assign`); at most NO_ANCHOR_CAP without an anchor, because a count that starts
  nowhere rests on the network's appearance alone, which was a level off in one unseen
  scan in four, and where the network names that structure otherwise than the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.inference.naming.assign import Assignment, id_at, position_of, sacrum_shape
from SAFNetSpineLib.inference.naming.chain import Chain
from SAFNetSpineLib.labels import DISC_IDS, STRUCTURES, VERTEBRA_IDS

STATUSES = ("confident", "uncertain")
ANCHORS = ("sacrum", "hint", "none")
CONFIDENT_POSTERIOR = 0.9
NO_ANCHOR_CAP = 0.5
#: An L5/S disc under this fraction of the median volume of the other discs is rudimentary.
RUDIMENTARY_DISC = 0.35
#: L5 (or the sacrum) is partly sacral and partly lumbar when both S and L5 have at least this probability.
MIXED_JUNCTION = 0.25


@dataclass
class Verdict:
    """status, anchor, reason and every problem found (one sentence each)."""

    status: str
    anchor: str
    reason: str
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"status": self.status, "anchor": self.anchor, "reason": self.reason}


def _name(position: int) -> str:
    label_id = id_at(position)
    return STRUCTURES[label_id].short_name if label_id else "above T9"


def _structural_problems(chain: Chain, assignment: Assignment) -> list[str]:
    positions = assignment.positions
    problems = []
    index = {id(piece): i for i, piece in enumerate(chain.pieces)}
    for parts in chain.merged:
        names = "+".join(_name(positions[index[id(part)]]) for part in parts)
        problems.append(f"one body piece was {len(parts)} bodies tall and was split into {names} "
                        "(fused vertebrae or a disc the network missed)")
    for a, b in zip(positions, positions[1:], strict=False):
        missing = [s for s in range(a + 1, b) if s % 2 == 0]
        if missing:
            problems.append(f"no vertebral body was found between {_name(a)} and {_name(b)}: counted "
                            f"{', '.join(_name(s) for s in missing)} there")
    return problems


def _junction_problems(chain: Chain, assignment: Assignment) -> list[str]:
    at = {p: i for i, p in enumerate(assignment.positions)}
    if 0 not in at:
        return []
    problems = []
    check = "check whether L5 is sacralised or S1 lumbarised"
    discs = [(i, p) for i, p in enumerate(chain.pieces) if p.kind == "disc"]
    if 1 in at:
        others = [p.size for i, p in discs if i != at[1]]
        if len(others) >= 2 and chain.pieces[at[1]].size < RUDIMENTARY_DISC * float(np.median(others)):
            share = chain.pieces[at[1]].size / float(np.median(others))
            problems.append(f"the L5/S disc is rudimentary or degenerate ({share:.0%} of a typical disc): "
                            f"a transitional lumbosacral vertebra? {check}")
    elif 2 in at and discs:
        problems.append(f"no L5/S disc lies between the sacrum and L5: a transitional lumbosacral vertebra? {check}")
    # Mixed, not merely wrong: both S and L5 keep a real share of the evidence of one piece.
    for position, what in ((0, "the sacrum"), (2, "L5")):
        if position in at:
            evidence = chain.pieces[at[position]].evidence
            if min(evidence[1], evidence[2]) >= MIXED_JUNCTION:
                problems.append(f"{what} looks partly sacral and partly lumbar (P(S) = {evidence[1]:.2f}, "
                                f"P(L5) = {evidence[2]:.2f}): a transitional lumbosacral vertebra? {check}")
                break
    return problems


def disputed(chain: Chain, assignment: Assignment) -> list[int]:
    """Indices of the pieces whose most likely name by the evidence is not the counted one."""
    out = []
    for index, (piece, position) in enumerate(zip(chain.pieces, assignment.positions, strict=True)):
        kind_ids = list(VERTEBRA_IDS if piece.kind == "vertebra" else DISC_IDS)
        if kind_ids[int(np.argmax(piece.evidence[kind_ids]))] != id_at(position):
            out.append(index)
    return out


def _disagreements(chain: Chain, assignment: Assignment, source: str) -> list[str]:
    differ = []
    for index in disputed(chain, assignment):
        piece = chain.pieces[index]
        kind_ids = list(VERTEBRA_IDS if piece.kind == "vertebra" else DISC_IDS)
        seen = kind_ids[int(np.argmax(piece.evidence[kind_ids]))]
        differ.append(f"{STRUCTURES[seen].short_name} (counted {_name(assignment.positions[index])})")
    if not differ:
        return []
    more = f" and {len(differ) - 2} more" if len(differ) > 2 else ""
    return [f"the {source} and the count disagree at {', '.join(differ[:2])}{more}"]


def _anchor_problem(chain: Chain, assignment: Assignment) -> str | None:
    """None when the sacrum anchors the count; else why not."""
    shape = sacrum_shape(chain)
    lowest = next((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), None)
    named_s = lowest is not None and assignment.positions[lowest] == 0
    if named_s and shape == "sacrum":
        return None
    if named_s and shape == "body":
        return ("the lowest body is named S but is no taller than a lumbar body: the sacrum may be out of view, "
                "so the names rest on the network alone")
    if named_s:
        return "too few bodies in view to recognise the sacrum, so the names rest on the network alone"
    return "no sacrum in view to count from, so the names rest on the network alone"


def _hint_problems(chain: Chain, assignment: Assignment, hint_name: str) -> list[str]:
    """Where counting from the user's hint leaves the label table or contradicts the sacrum's shape."""
    problems = []
    above = sum(1 for p in assignment.positions if not id_at(p))
    if above:
        problems.append(f"counting from the hint at {hint_name}, {above} structure(s) at the top fall above T9, "
                        "which has no name in the label table, and are left unlabelled")
    lowest_body = next((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), None)
    if sacrum_shape(chain) == "sacrum" and lowest_body is not None and assignment.positions[lowest_body] != 0:
        problems.append(f"the lowest body is shaped like the sacrum, but counting from the hint at {hint_name} "
                        f"names it {_name(assignment.positions[lowest_body])}")
    return problems


def judge(chain: Chain, assignment: Assignment, hint_name: str | None, source: str = "network") -> Verdict:
    """The verdict on a chain's naming.

    Args:
        chain: The chain (at least one piece).
        assignment: Its naming.
        hint_name: Name the user gave one structure, or None.
        source: Who named the pieces before the count ("network" or "input labels").
    """
    problems = _structural_problems(chain, assignment)
    if hint_name is None:
        problems += _junction_problems(chain, assignment)
        anchor_problem = _anchor_problem(chain, assignment)
        if anchor_problem:
            problems.append(anchor_problem)
        problems += _disagreements(chain, assignment, source)
        anchor = "none" if anchor_problem else "sacrum"
    else:
        anchor = "hint"
        problems += _hint_problems(chain, assignment, hint_name)
    weakest = int(np.argmin(assignment.posterior))
    if assignment.posterior[weakest] < CONFIDENT_POSTERIOR:
        problems.append(f"the count is ambiguous at {_name(assignment.positions[weakest])} "
                        f"(posterior {assignment.posterior[weakest]:.2f})")
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        return Verdict("uncertain", anchor, "; ".join(problems[:2]) + more, problems)
    bodies = sum(1 for p in chain.pieces if p.kind == "vertebra")
    discs = len(chain.pieces) - bodies
    start = f"the hint at {hint_name}" if hint_name else "the sacrum"
    agreement = "" if hint_name else f", in agreement with the {source}"
    return Verdict("confident", anchor, f"counted from {start}: {bodies} bodies and {discs} discs in order{agreement}")


def confidences(chain: Chain, assignment: Assignment, final_ids: list[int], anchor: str) -> dict[int, float]:
    """name_confidence per final label id (0..1): the weakest posterior of the pieces that carry it.

    Capped at NO_ANCHOR_CAP without an anchor, and where (without a hint) the evidence
    names the piece otherwise than the count: then one of the two is wrong.
    """
    contested = set(disputed(chain, assignment)) if anchor != "hint" else set()
    out: dict[int, float] = {}
    for i, label_id in enumerate(final_ids):
        if not label_id:
            continue
        cap = NO_ANCHOR_CAP if anchor == "none" or i in contested else 1.0
        value = min(float(assignment.marginals[i, position_of(label_id)]), cap)
        out[label_id] = round(min(out.get(label_id, 1.0), value), 3)
    return out
