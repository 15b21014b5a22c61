"""Promotion of a fine-tuned version from paired Dice per patient, honest about how few patients there are.

With a handful of corrected cases, one validation case decides nothing: its Dice moves
by more than the effect being looked for. So every stored case is scored twice on the
same case, by the parent and by a fine-tuned version that did not train on it nor on any
other series of its patient (cross-validation over the store by patient, :mod:`.crossval`).
The promise is about the *next patient*, so the unit of evidence is the patient: each
patient's cases are averaged (:func:`patient_pairs`), and the decision looks at the paired
per-patient differences ``d_i = after_i - before_i``:

* ``improvement``: their mean;
* ``confidence``: the share of bootstrap resamples of the cases (seeded) whose mean
  difference is positive, a plain reading of "how sure are we that it helps";
* ``ci90``: the bootstrap 90 % interval of the mean difference;
* ``sign_test_p``: the exact one-sided sign-test p-value of "no more cases improve
  than get worse" (ties dropped);
* ``wins`` / ``losses`` / ``ties`` (|d| <= 0.001 counts as a tie).

The version is promoted (:func:`decide`, a typed :class:`Decision`) when there are at least
:data:`~SAFNetSpineLib.stores.patients.MIN_PATIENTS` patients, ``improvement >= min_gain`` and ``confidence >=
min_confidence``. Five patients who all improve give confidence 1.0; four who gain 0.10 and
one who loses 0.09 still promote; a single patient's gain or loss never decides alone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from SAFNetSpineLib.stores.patients import MIN_PATIENTS

#: |after - before| at or below this is a tie (Dice round-off between two runs of one model).
TIE = 1e-3
BOOTSTRAP_RESAMPLES = 4000
#: How a version that is not promoted is described.
KEPT = "kept as candidate, active model unchanged (it may still be activated by hand)"


@dataclass(frozen=True)
class PairedEvidence:
    """What the paired per-patient differences say.

    Attributes:
        cases: Number of scored cases behind the pairs.
        improvement: Mean of after - before over the patients (Dice, -1..1).
        ci90: (low, high) bootstrap 90 % interval of that mean (patients resampled).
        confidence: Share of bootstrap resamples with a positive mean difference (0..1).
        sign_test_p: One-sided exact sign-test p-value (wins against losses, ties dropped).
        wins: Patients whose Dice rose by more than TIE.
        losses: Patients whose Dice fell by more than TIE.
        ties: The rest.
        patients: Number of paired patients (the unit of the figures above).
    """

    cases: int
    improvement: float
    ci90: tuple[float, float]
    confidence: float
    sign_test_p: float
    wins: int
    losses: int
    ties: int
    patients: int = 0

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


def patient_pairs(scores: Sequence) -> tuple[list[float], list[float], list[str]]:
    """(before, after, patient keys): each patient's mean over its cases, patients in order of first appearance.

    Args:
        scores: :class:`~.crossval.CaseScore` entries (``patient`` "" counts the case as its own patient).
    """
    groups: dict[str, list] = {}
    for score in scores:
        groups.setdefault(score.patient or f"case:{score.case_id}", []).append(score)
    keys = list(groups)
    return ([float(np.mean([s.before for s in groups[k]])) for k in keys],
            [float(np.mean([s.after for s in groups[k]])) for k in keys], keys)


def paired_evidence(before: Sequence[float], after: Sequence[float], seed: int = 0,
                    cases: int | None = None) -> PairedEvidence:
    """Summarise paired per-patient scores of the parent (``before``) and the fine-tuned version (``after``).

    Args:
        before: (N,) Dice of the parent per patient (or per case, each its own patient).
        after: (N,) Dice of versions that did not train on that patient, same order.
        seed: Seed of the bootstrap (same inputs and seed, same figures).
        cases: Scored cases behind the N pairs (default N).

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
        cases=int(differences.size if cases is None else cases),
        improvement=float(differences.mean()),
        ci90=(float(low), float(high)),
        confidence=float((means > 0).mean()),
        sign_test_p=sign_test_p(wins, losses),
        wins=wins,
        losses=losses,
        ties=int(differences.size - wins - losses),
        patients=int(differences.size),
    )


class Verdict(enum.Enum):
    """Why a version is or is not promoted (the value is written to ``finetune.json`` as "decision")."""

    PROMOTED = "promoted"
    DICE_DROPPED = "dice-dropped"
    LOW_CONFIDENCE = "low-confidence"
    SMALL_GAIN = "small-gain"
    TOO_FEW_PATIENTS = "too-few-patients"


@dataclass(frozen=True)
class Decision:
    """The promotion decision as data.

    Attributes:
        verdict: The reason as a :class:`Verdict`.
        figures: The evidence in words (patients, mean change, interval, confidence, sign test).
        conclusion: What follows from it, in words.
    """

    verdict: Verdict
    figures: str
    conclusion: str

    @property
    def promote(self) -> bool:
        """True when the evidence says the version helps the next patient."""
        return self.verdict is Verdict.PROMOTED

    @property
    def sentence(self) -> str:
        """Figures and conclusion, for the summary and the CLI."""
        return f"{self.figures}; {self.conclusion}" if self.figures else self.conclusion


def decide(evidence: PairedEvidence, min_confidence: float, min_patients: int = MIN_PATIENTS, *,
           min_gain: float = 0.0) -> Decision:
    """The promotion decision from the paired per-patient evidence.

    Args:
        evidence: From :func:`paired_evidence`.
        min_confidence: Bootstrap confidence needed to promote (0..1).
        min_patients: Fewest patients that can say anything about a new patient.
        min_gain: Smallest mean per-patient Dice change that promotes: a smaller gain, however
            consistent over the stored patients, says too little about the next one.
    """
    figures = (
        f"mean Dice change {evidence.improvement:+.4f} over {evidence.patients} patient(s) "
        f"({evidence.cases} case(s)) scored by versions that did not train on that patient "
        f"(90% interval {evidence.ci90[0]:+.4f} to {evidence.ci90[1]:+.4f}; "
        f"{evidence.wins} better, {evidence.losses} worse, {evidence.ties} tied; "
        f"confidence {evidence.confidence:.2f}, {evidence.strength()}; sign test p={evidence.sign_test_p:.3f})"
    )
    if evidence.patients < min_patients:
        return too_few_patients(evidence.patients, min_patients, figures)
    if evidence.improvement < 0:
        return Decision(Verdict.DICE_DROPPED, figures, f"Dice dropped on patients the version did not train on: {KEPT}")
    if evidence.improvement < min_gain:
        return Decision(Verdict.SMALL_GAIN, figures, f"mean gain below {min_gain:.3f}: {KEPT}")
    if evidence.confidence < min_confidence:
        return Decision(Verdict.LOW_CONFIDENCE, figures, f"confidence below {min_confidence:.2f}: {KEPT}")
    return Decision(Verdict.PROMOTED, figures, f"confidence >= {min_confidence:.2f}: promoted to active")


def too_few_patients(patients: int, min_patients: int = MIN_PATIENTS, figures: str = "") -> Decision:
    """The decision for a store of fewer than ``min_patients`` patients: a candidate, whatever the figures."""
    return Decision(Verdict.TOO_FEW_PATIENTS, figures,
                    f"{patients} patient(s), fewer than {min_patients}, give no evidence for a new patient: {KEPT}")
