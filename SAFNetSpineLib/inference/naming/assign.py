"""Names for the whole chain at once: one count along the spine, not one guess per piece.

Positions count from the bottom of the spine: 0 = S, 1 = L5/S, 2 = L5, 3 = L4/L5 ...
17 = T9/T10, 18 = T9; even positions are bodies, odd ones discs, and positions above 18
have no name in the label table. A naming gives every chain piece a position, rising
strictly from the bottom piece up, bodies on even and discs on odd positions (the
alternation), nothing below the sacrum. Its log score is the sum of

* emissions: the log probability the network (or the piece's own labels) gives the
  name of the position; and the sacrum's shape: a lowest body shaped like the sacrum
  (tall, no disc below it; see :func:`sacrum_shape`) is S, whatever it is called,
  unless the user's hint says otherwise;
* transitions between consecutive pieces: every position skipped is a structure not
  found (each costs log MISSING_BODY or log MISSING_DISC), and the empty space between
  the two pieces along the curve must have room for the skipped structures (see
  :func:`_room_score`): a body cannot be missing between two pieces that touch.

With alternation and the gaps fixed, names move together: the evidence of all pieces
picks one offset for the whole chain. The Viterbi pass gives the best naming, the
forward-backward pass each piece's posterior probability of its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.inference.naming.chain import Chain, ChainPiece
from SAFNetSpineLib.labels import INFERIOR_TO_SUPERIOR_IDS, id_at_position

#: Positions 0..18 are named (labels.INFERIOR_TO_SUPERIOR_IDS); an id per position.
NAMED_POSITIONS = len(INFERIOR_TO_SUPERIOR_IDS)
#: Emission of a position above T9 (no name in the table): below any name's evidence floor.
ABOVE_TABLE = 1e-5
#: Prior probability of a disc / a body not found between two found structures.
MISSING_DISC = 0.3
MISSING_BODY = 0.05
#: Standard deviation of an empty space larger than the missing structures explain, in level heights.
GAP_SD = 0.15
#: A missing body needs at least this share of a body's height of empty space (standard deviation
#: BODY_ROOM_SD of a body's height below it).
BODY_ROOM = 0.5
BODY_ROOM_SD = 0.03
#: At most this many positions between two consecutive pieces.
MAX_STEP = 9
#: A body at least this many typical body heights tall with no disc below it is the sacrum.
SACRUM_HEIGHT = 1.4
EVIDENCE_FLOOR = 1e-4


class InfeasibleNaming(ValueError):
    """No naming satisfies the constraints (a hint that leaves structures below the sacrum)."""


def sacrum_shape(chain: Chain) -> str | None:
    """"sacrum" if the lowest body is shaped like one, "body" if like a lumbar body, None if unknown.

    Shaped like the sacrum: at least SACRUM_HEIGHT typical body heights tall, with no disc
    below it. Unknown: fewer than two other bodies to compare with.
    """
    bodies = [p for p in chain.pieces if p.kind == "vertebra"]
    if len(bodies) < 3:
        return None
    lowest = bodies[0]
    disc_below = any(p.kind == "disc" and p.arc < lowest.arc for p in chain.pieces)
    tall = lowest.height >= SACRUM_HEIGHT * chain.body_height_mm
    return "sacrum" if tall and not disc_below else "body"


@dataclass(frozen=True)
class Assignment:
    """The best naming of a chain.

    Attributes:
        positions: Position of every chain piece (inferior to superior); below 0 (under S,
            only with a hint) and above 18 (above T9) have no name.
        posterior: Posterior probability of each piece's position, (n,).
        marginals: Posterior of every position from 0 (S) up for every piece, (n, states).
    """

    positions: tuple[int, ...]
    posterior: np.ndarray
    marginals: np.ndarray

    def label_ids(self) -> list[int]:
        return [id_at_position(p) for p in self.positions]


def _emissions(chain: Chain, states: int, hint: tuple[int, int] | None, shift: int = 0) -> np.ndarray:
    """Log emissions (n, states) of positions ``state - shift``; -inf where the parity is wrong or the hint rules a
    position out. Positions below 0 (below S) and above T9 have no name."""
    n = len(chain.pieces)
    out = np.full((n, states), -np.inf)
    shape = sacrum_shape(chain)
    lowest_body = next((i for i, p in enumerate(chain.pieces) if p.kind == "vertebra"), None)
    for i, piece in enumerate(chain.pieces):
        parity = 0 if piece.kind == "vertebra" else 1
        for state in range(parity, states, 2):
            label_id = id_at_position(state - shift)
            value = np.log(max(float(piece.evidence[label_id]), EVIDENCE_FLOOR)) if label_id else np.log(ABOVE_TABLE)
            out[i, state] = value
    if shape == "sacrum" and hint is None:
        # The count starts at the sacrum: a tall lowest body with no disc below it is S, whatever it is called.
        out[lowest_body, 1:] = -np.inf
    if hint is not None:
        index, position = hint
        keep = out[index, position + shift]
        out[index] = -np.inf
        out[index, position + shift] = keep
    return out


def _transitions(a: ChainPiece, b: ChainPiece, chain: Chain, states: int) -> np.ndarray:
    """Log transition (states, states) from piece ``a`` at position p to the next piece ``b`` at q."""
    gap = max(0.0, b.low - a.high)
    body, disc = chain.body_height_mm, chain.disc_height_mm
    out = np.full((states, states), -np.inf)
    for step in range(1, MAX_STEP + 1):
        for p in range(0, states - step):
            # Skipped positions p+1 .. p+step-1: even ones are bodies, odd ones discs.
            missing_bodies = sum(1 for s in range(p + 1, p + step) if s % 2 == 0)
            missing_discs = step - 1 - missing_bodies
            out[p, p + step] = (missing_bodies * np.log(MISSING_BODY) + missing_discs * np.log(MISSING_DISC)
                                + _room_score(gap, missing_bodies, missing_discs, body, disc))
    return out


def _room_score(gap: float, bodies: int, discs: int, body_mm: float, disc_mm: float) -> float:
    """Log plausibility of an empty space of ``gap`` mm holding the given missing structures.

    A missing body needs at least BODY_ROOM of a body's height (nearly a hard limit: an
    observed touching pair has no room for a body, whatever the network calls them); a
    missing disc needs none (discs collapse). Too much space for what is missing is
    penalised softly (GAP_SD of a level's height).
    """
    needed = bodies * BODY_ROOM * body_mm
    most = bodies * 1.5 * body_mm + discs * 2.0 * disc_mm + 0.5 * disc_mm
    if gap < needed:
        return -0.5 * ((needed - gap) / (BODY_ROOM_SD * body_mm)) ** 2
    if gap > most:
        return -0.5 * ((gap - most) / (GAP_SD * (body_mm + disc_mm))) ** 2
    return 0.0


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf where every term is impossible
        return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def assign_positions(chain: Chain, hint: tuple[int, int] | None = None) -> Assignment:
    """Best positions for the chain and their posterior probabilities.

    Args:
        chain: The ordered chain (at least one piece).
        hint: (piece index, position) the user fixed, or None.

    Returns:
        The :class:`Assignment`.

    Raises:
        InfeasibleNaming: no naming fits the constraints.
    """
    n = len(chain.pieces)
    # With a hint the count may run off either end of the table: pieces below S or above T9 get no name.
    shift = 2 * n + 2 if hint is not None else 0
    states = shift + NAMED_POSITIONS + 2 * n + 2
    emissions = _emissions(chain, states, hint, shift)
    transitions = [_transitions(chain.pieces[i], chain.pieces[i + 1], chain, states) for i in range(n - 1)]
    # Viterbi
    score = emissions[0].copy()
    back = []
    for i in range(1, n):
        total = score[:, None] + transitions[i - 1]  # (from, to)
        back.append(np.argmax(total, axis=0))
        score = total.max(axis=0) + emissions[i]
    if not np.isfinite(score.max()):
        raise InfeasibleNaming("no naming fits the constraints")
    positions = [int(np.argmax(score))]
    for pointers in reversed(back):
        positions.append(int(pointers[positions[-1]]))
    positions.reverse()
    # forward-backward
    forward = [emissions[0]]
    for i in range(1, n):
        forward.append(_logsumexp(forward[-1][:, None] + transitions[i - 1], axis=0) + emissions[i])
    backward = [np.zeros(states)]
    for i in range(n - 2, -1, -1):
        backward.append(_logsumexp(transitions[i] + (emissions[i + 1] + backward[-1])[None, :], axis=1))
    backward.reverse()
    log_marginals = np.array(forward) + np.array(backward)
    log_marginals -= _logsumexp(log_marginals, axis=1)[:, None]
    marginals = np.exp(log_marginals)
    posterior = marginals[np.arange(n), positions]
    return Assignment(tuple(p - shift for p in positions), posterior, marginals[:, shift:])
