"""Chains too odd to count with confidence: bodies merged, missing, found in pieces, too tall, side by side.

Each check gives one sentence for :attr:`.verdict.Verdict.problems`; any of them makes the case
``uncertain`` (and, counted from S1, caps every name at 0.5). Heights are along the spine's curve, in
typical heights of the case's own chain (its median body and disc). The thresholds and the cases that set
them: Testing/benchmarks/RESULTS.md, "Level naming" and "Checks against a count gone wrong".
"""

from __future__ import annotations

from SAFNetSpineLib.inference.naming.assign import Assignment
from SAFNetSpineLib.inference.naming.chain import DISC_SEEN, TALL_BODY, Chain
from SAFNetSpineLib.labels import SACRUM_ID, STRUCTURES, id_at_position, spine_position

#: Two body pieces with no disc between them, together under this many typical body heights, may be one body
#: found in two pieces (counted twice): on a T1 water-fat scan left out of training the real L3 came as an "L4"
#: and an "L3" piece, and the count from a wrong S1 was confident. A disc missed between two whole bodies
#: (about two heights together) does not weaken the count.
SPLIT_BODY_HEIGHTS = 1.4
#: ... or, overlapping along the spine, together spanning under this many typical body heights: the real L3 (L2)
#: came as two overlapping pieces spanning 1.47 typical heights whose heights summed to 1.6, counted confident
#: and wrong, on two networks left out of the T1 water-fat source.
SPLIT_BODY_SPAN = 1.5
#: A body and a disc next to each other on the chain whose centres lie under this many typical body heights apart
#: along the spine lie side by side, not one above the other (stacked, about 0.6-0.7 apart): on a network left out
#: of the T1 water-fat source an "L4" holding halves of the real L4 and L3 lay beside the L4/L5 disc, and the
#: count through them was confident and wrong. Only for a body at least SIDE_BY_SIDE_MIN_BODY typical body heights
#: tall: one cut short by the edge of the view has its centre next to its disc's (with the bundled weights, a
#: development case's topmost body, 0.34 heights in view).
SIDE_BY_SIDE_HEIGHTS = 0.25
SIDE_BY_SIDE_MIN_BODY = 0.5
#: A disc piece at least this many typical disc heights tall along the spine is no single disc. With the
#: bundled weights the tallest disc of a development case held 1.6 typical heights but one (3.2, a case already
#: uncertain); a network left out of the T1 water-fat source put a 3.9-heights "disc" over bone and soft tissue
#: between two bodies and counted around it, confident and wrong. A disc tilted 15 degrees across the curve
#: measures about 2 heights.
TALL_DISC = 2.5
SACRUM_POSITION = spine_position(SACRUM_ID)


def level_name(position: int) -> str:
    """The short name at a spine position, or "below S" / "above T9" off the label table."""
    label_id = id_at_position(position)
    return STRUCTURES[label_id].short_name if label_id else "below S" if position < 0 else "above T9"


def structural_problems(chain: Chain, assignment: Assignment) -> list[str]:
    """Every way the chain is no clean stack of bodies and discs, one sentence each, in the order checked."""
    positions = assignment.positions
    split = {id(part) for parts in chain.merged for part in parts}
    return (_merged_problems(chain, positions) + _missing_problems(positions) + _split_pair_problems(chain, positions, split)
            + _side_by_side_problems(chain, positions) + _size_problems(chain, positions, split))


def _merged_problems(chain: Chain, positions: list[int]) -> list[str]:
    """A body split for being too tall without the network seeing a disc inside it."""
    problems = []
    index = {id(piece): i for i, piece in enumerate(chain.pieces)}
    seen = chain.merged_disc_seen or [None] * len(chain.merged)
    for parts, disc in zip(chain.merged, seen, strict=True):
        if (disc is not None and disc >= DISC_SEEN) or any(id(part) not in index for part in parts):
            continue  # the network sees the disc it did not outline: two bodies, as split
        names = "+".join(level_name(positions[index[id(part)]]) for part in parts)
        why = "no disc between them is seen" if disc is not None else "fused vertebrae or a disc the network missed"
        problems.append(f"one body piece was {len(parts)} bodies tall and was split into {names} ({why})")
    return problems


def _missing_problems(positions: list[int]) -> list[str]:
    """A body the count needs between two pieces but no piece holds."""
    problems = []
    for a, b in zip(positions, positions[1:], strict=False):
        missing = [s for s in range(a + 1, b) if s % 2 == 0] if a >= 0 else []  # below S: said elsewhere
        if missing:
            problems.append(f"no vertebral body was found between {level_name(a)} and {level_name(b)}: counted "
                            f"{', '.join(level_name(s) for s in missing)} there")
    return problems


def _split_pair_problems(chain: Chain, positions: list[int], split: set[int]) -> list[str]:
    """Two body pieces with no disc between them, together about one body tall: one body found twice."""
    problems = []
    for i, (below, above) in enumerate(zip(chain.pieces, chain.pieces[1:], strict=False)):
        if (below.kind == above.kind == "vertebra" and positions[i] > SACRUM_POSITION
                and not (id(below) in split and id(above) in split)
                and (below.height + above.height < SPLIT_BODY_HEIGHTS * chain.body_height_mm
                     or max(below.high, above.high) - min(below.low, above.low)
                     < SPLIT_BODY_SPAN * chain.body_height_mm)):
            problems.append(f"{level_name(positions[i])} and {level_name(positions[i + 1])} have no disc between "
                            "them and are together about one body tall: one body found in two pieces?")
    return problems


def _side_by_side_problems(chain: Chain, positions: list[int]) -> list[str]:
    """A body and a disc next to each other on the chain but at one level (centres close along the spine)."""
    problems = []
    for i, (below, above) in enumerate(zip(chain.pieces, chain.pieces[1:], strict=False)):
        body = below if below.kind == "vertebra" else above
        if (below.kind != above.kind and below.size and above.size
                and body.height >= SIDE_BY_SIDE_MIN_BODY * chain.body_height_mm
                and above.arc - below.arc < SIDE_BY_SIDE_HEIGHTS * chain.body_height_mm):
            problems.append(f"{level_name(positions[i])} and {level_name(positions[i + 1])} lie side by side along the spine, "
                            "not one above the other: a body and a disc found at one level?")
    return problems


def _size_problems(chain: Chain, positions: list[int], split: set[int]) -> list[str]:
    """A body kept whole though TALL_BODY typical heights tall, or a disc TALL_DISC typical disc heights tall."""
    problems = []
    for i, piece in enumerate(chain.pieces):
        if not piece.size or id(piece) in split or positions[i] == SACRUM_POSITION or piece.is_sacrum_labelled:
            continue
        typical = chain.typical_height(piece.kind)
        if piece.kind == "vertebra" and piece.height >= TALL_BODY * typical:
            problems.append(f"{level_name(positions[i])} is {piece.height / typical:.1f} typical body heights tall and was "
                            "kept whole (no disc seen inside it): one body, or two found as one?")
        elif piece.kind == "disc" and piece.height >= TALL_DISC * typical:
            problems.append(f"{level_name(positions[i])} is {piece.height / typical:.1f} typical disc heights tall: no "
                            "single disc (a body, or tissue off the spine, found as a disc?)")
    return problems
