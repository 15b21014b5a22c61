"""Promotion from paired per-case Dice: no single case decides, figures are exact and seeded."""

from __future__ import annotations

import pytest

from SAFNetSpineLib.finetune.crossval import CaseScore
from SAFNetSpineLib.finetune.promotion import Verdict, decide, paired_evidence, patient_pairs, sign_test_p


def test_sign_test_against_the_binomial():
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(4, 1) == pytest.approx(6 / 32)
    assert sign_test_p(0, 3) == pytest.approx(1.0)
    assert sign_test_p(0, 0) == 1.0


def test_all_cases_better_promotes_with_strong_confidence():
    evidence = paired_evidence([0.5, 0.6, 0.4, 0.55, 0.5], [0.6, 0.7, 0.45, 0.6, 0.58])
    assert evidence.wins == 5 and evidence.losses == 0 and evidence.confidence == 1.0
    assert evidence.improvement == pytest.approx(0.076)
    assert evidence.ci90[0] > 0 and evidence.strength() == "strong"
    decision = decide(evidence, 0.8)
    assert decision.promote and decision.verdict is Verdict.PROMOTED
    assert "promoted" in decision.sentence and "5 better, 0 worse" in decision.sentence


def test_one_case_cannot_decide_either_way():
    # The site: most cases gained, its single validation case dropped by 0.09.
    mixed = paired_evidence([0.3, 0.32, 0.35, 0.3, 0.566], [0.42, 0.44, 0.45, 0.41, 0.476])
    assert mixed.losses == 1 and decide(mixed, 0.8).promote
    # One case gains a lot, four lose a little: no promotion on the strength of one case.
    lucky = paired_evidence([0.3, 0.5, 0.5, 0.5, 0.5], [0.6, 0.48, 0.47, 0.49, 0.46])
    assert lucky.improvement > 0 and not decide(lucky, 0.8).promote
    assert decide(lucky, 0.8).verdict is Verdict.LOW_CONFIDENCE and "kept as candidate" in decide(lucky, 0.8).sentence
    worse = paired_evidence([0.6, 0.6, 0.6], [0.5, 0.55, 0.5])
    assert worse.confidence == 0.0 and not decide(worse, 0.8).promote


def test_ties_seed_and_bad_input():
    evidence = paired_evidence([0.5, 0.5, 0.5], [0.5, 0.5005, 0.5])
    assert evidence.ties == 3 and evidence.wins == 0
    a = paired_evidence([0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.35, 0.3], seed=3)
    assert a == paired_evidence([0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.35, 0.3], seed=3)
    assert a.to_dict()["ci90"] == list(a.ci90)
    for before, after in (([], []), ([0.1], [0.1, 0.2]), ([float("nan")], [0.1])):
        with pytest.raises(ValueError):
            paired_evidence(before, after)


def test_a_drop_is_called_a_drop_even_at_zero_confidence_needed():
    # Issue 25 item 10: with --min-confidence 0 a drop was reported as "confidence below 0.00".
    drop = decide(paired_evidence([0.6, 0.6, 0.6], [0.5, 0.55, 0.5]), 0.0)
    assert drop.verdict is Verdict.DICE_DROPPED and not drop.promote
    assert "Dice dropped" in drop.sentence and "confidence below" not in drop.sentence


def test_fewer_than_three_patients_stay_a_candidate_whatever_the_figures():
    two = decide(paired_evidence([0.2, 0.3], [0.9, 0.95]), 0.0)
    assert two.verdict is Verdict.TOO_FEW_PATIENTS and not two.promote
    assert "2 patient(s), fewer than 3" in two.sentence and "activated by hand" in two.sentence


def test_evidence_counts_patients_not_series():
    # Issue 24: two patients with two series each, all four series better: still two patients.
    scores = [CaseScore("a-t1", 0, 0.5, 0.9, "patient:A"), CaseScore("a-t2", 0, 0.5, 0.7, "patient:A"),
              CaseScore("b-t1", 1, 0.4, 0.6, "patient:B"), CaseScore("b-t2", 1, 0.6, 0.6, "patient:B")]
    before, after, keys = patient_pairs(scores)
    assert keys == ["patient:A", "patient:B"]
    assert before == pytest.approx([0.5, 0.5]) and after == pytest.approx([0.8, 0.6])
    evidence = paired_evidence(before, after, cases=len(scores))
    assert evidence.patients == 2 and evidence.cases == 4 and evidence.wins == 2
    assert not decide(evidence, 0.8).promote


def test_a_small_gain_however_consistent_does_not_promote():
    # The benchmark's anchored versions: all 3 stored patients a little better, the next patients worse.
    small = paired_evidence([0.88, 0.89, 0.88], [0.884, 0.8945, 0.8845])
    assert small.wins == 3 and small.confidence == 1.0 and 0 < small.improvement < 0.01
    assert decide(small, 0.8).promote  # without a minimum gain it would be promoted
    kept = decide(small, 0.8, min_gain=0.01)
    assert kept.verdict is Verdict.SMALL_GAIN and not kept.promote and "mean gain below 0.010" in kept.sentence
    assert decide(paired_evidence([0.1, 0.1, 0.2], [0.3, 0.25, 0.3]), 0.8, min_gain=0.01).promote
