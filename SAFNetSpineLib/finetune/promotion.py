"""Promotion of a fine-tuned version from paired per-case Dice, honest about how few cases there are.

With a handful of corrected cases, one validation case decides nothing: its Dice moves
by more than the effect being looked for. So every stored case is scored twice on the
same case, by the parent and by a fine-tuned version that did not train on it
(cross-validation over the store, :mod:`.folds`), and the decision looks at all the
paired differences ``d_i = after_i - before_i``:

* ``improvement``: their mean;
* ``confidence``: the share of bootstrap resamples of the cases (seeded) whose mean
  difference is positive, a plain reading of "how sure are we that it helps";
* ``ci90``: the bootstrap 90 % interval of the mean difference;
* ``sign_test_p``: the exact one-sided sign-test p-value of "no more cases improve
  than get worse" (ties dropped);
* ``wins`` / ``losses`` / ``ties`` (|d| <= 0.001 counts as a tie).

The version is promoted when ``improvement >= 0`` and ``confidence >=
min_confidence``. Five cases that all improve give confidence 1.0; four that gain 0.10
and one that loses 0.09 still promote; a single case's gain or loss never decides alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: |after - before| at or below this is a tie (Dice round-off between two runs of one model).
TIE = 1e-3
BOOTSTRAP_RESAMPLES = 4000


@dataclass(frozen=True)
class PairedEvidence:
    """What the paired per-case differences say.

    Attributes:
        cases: Number of paired cases.
        improvement: Mean of after - before over the cases (Dice, -1..1).
        ci90: (low, high) bootstrap 90 % interval of that mean.
        confidence: Share of bootstrap resamples with a positive mean difference (0..1).
        sign_test_p: One-sided exact sign-test p-value (wins against losses, ties dropped).
        wins: Cases whose Dice rose by more than TIE.
        losses: Cases whose Dice fell by more than TIE.
        ties: The rest.
    """

    cases: int
    improvement: float
    ci90: tuple[float, float]
    confidence: float
    sign_test_p: float
    wins: int
    losses: int
    ties: int

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ci90"] = list(self.ci90)
        return data

    def strength(self) -> str:
        """A word for the evidence: "strong" (confidence >= 0.95), "moderate" (>= 0.8) or "weak"."""
        if self.confidence >= 0.95:
            return "strong"
        return "moderate" if self.confidence >= 0.8 else "weak"


def sign_test_p(wins: int, losses: int) -> float:
    """P(at least ``wins`` of ``wins + losses`` fair coin flips come up heads)."""
    total = wins + losses
    if total == 0:
        return 1.0
    return float(sum(math.comb(total, k) for k in range(wins, total + 1)) / 2**total)


def paired_evidence(before: Sequence[float], after: Sequence[float], seed: int = 0) -> PairedEvidence:
    """Summarise paired per-case scores of the parent (``before``) and the fine-tuned version (``after``).

    Args:
        before: (N,) Dice of the parent per case.
        after: (N,) Dice of a version that did not train on that case, same order.
        seed: Seed of the bootstrap (same inputs and seed, same figures).

    Returns:
        PairedEvidence.

    Raises:
        ValueError: for empty or differently long inputs, or non-finite scores.
    """
    before_array = np.asarray(before, dtype=np.float64)
    after_array = np.asarray(after, dtype=np.float64)
    if before_array.shape != after_array.shape or before_array.ndim != 1 or before_array.size == 0:
        raise ValueError("before and after need the same, non-zero number of cases")
    if not (np.isfinite(before_array).all() and np.isfinite(after_array).all()):
        raise ValueError("per-case scores must be finite")
    differences = after_array - before_array
    wins, losses = int((differences > TIE).sum()), int((differences < -TIE).sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(BOOTSTRAP_RESAMPLES, differences.size))
    means = differences[picks].mean(axis=1)  # (BOOTSTRAP_RESAMPLES,)
    low, high = np.quantile(means, [0.05, 0.95])
    return PairedEvidence(
        cases=int(differences.size),
        improvement=float(differences.mean()),
        ci90=(float(low), float(high)),
        confidence=float((means > 0).mean()),
        sign_test_p=sign_test_p(wins, losses),
        wins=wins,
        losses=losses,
        ties=int(differences.size - wins - losses),
    )


def decide(evidence: PairedEvidence, min_confidence: float) -> tuple[bool, str]:
    """(promote?, one sentence why) from the paired evidence.

    Args:
        evidence: From :func:`paired_evidence`.
        min_confidence: Bootstrap confidence needed to promote (0..1).
    """
    figures = (
        f"mean Dice change {evidence.improvement:+.4f} over {evidence.cases} case(s) scored by versions that "
        f"did not train on them (90% interval {evidence.ci90[0]:+.4f} to {evidence.ci90[1]:+.4f}; "
        f"{evidence.wins} better, {evidence.losses} worse, {evidence.ties} tied; "
        f"confidence {evidence.confidence:.2f}, {evidence.strength()}; sign test p={evidence.sign_test_p:.3f})"
    )
    promote = evidence.improvement >= 0 and evidence.confidence >= min_confidence
    if promote:
        return True, f"{figures}; confidence >= {min_confidence:.2f}: promoted to active"
    return False, f"{figures}; confidence below {min_confidence:.2f}: kept as candidate, active model unchanged"
