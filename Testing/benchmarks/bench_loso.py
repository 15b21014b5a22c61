"""Benchmark: a weights folder on the cases of one source it never trained on (leave-one-source-out).

For each case, ``segment``'s own path (``Segmenter``: ``--cleanup levels``, then naming by
counting) runs once, and the script prints

* body Dice with names ignored: every predicted vertebra id (S, L5 ... T9) against every
  annotated vertebral body, as one mask (the figure the issues quote for new sites; a
  sacrum the network finds below an L5-only reference counts against it), and the same
  with the predicted S left out where the reference does not annotate it ("S aside": a
  network that marks the whole unlabelled sacrum loses nothing for it), and the same within
  the annotated range ("in range": only predictions between the top of the highest and the
  bottom of the lowest annotated body, along the image's superior-inferior axis, count;
  visible vertebrae the reference leaves unlabelled above or below, such as T9-T10 on a
  T11-L5 reference, and the sacrum, then cost nothing: as issue 27's prototype scored,
  "within the annotated L1-L5 range");
* mean Dice per annotated structure, names counted;
* annotated levels named wrong (majority prediction inside each reference structure);
* the naming status and anchor, and at the end the confident/uncertain split and how many
  confident cases had a level named wrong (the "silently wrong" count).

Usage (train without a source first, e.g. ``train --data DATA_WITHOUT_chu ...``):
    .venv/bin/python Testing/benchmarks/bench_loso.py --weights RUN/best --prefix chu_
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.cli.common import add_turns_option  # noqa: E402
from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.evaluation.metrics import dice_per_structure, level_named_correctly  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.inference.turns import DEFAULT_TURNS  # noqa: E402
from SAFNetSpineLib.labels import DISC_IDS, SACRUM_ID, VERTEBRA_IDS  # noqa: E402
from SAFNetSpineLib.preprocessing.orientation import match_network_axes  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"


def outside_annotated_range(truth: np.ndarray, range_axis: int) -> np.ndarray:
    """Boolean mask of the slabs along ``range_axis`` that no annotated body reaches.

    Args:
        truth: Boolean mask of the annotated bodies, any shape.
        range_axis: The array axis running superior-inferior.

    Returns:
        Mask of ``truth``'s shape, True outside the span of the annotated bodies.
    """
    spanned = np.flatnonzero(truth.any(axis=tuple(a for a in range(truth.ndim) if a != range_axis)))
    outside = np.ones(truth.shape[range_axis], bool)
    outside[spanned[0]:spanned[-1] + 1] = False
    shape = [1] * truth.ndim
    shape[range_axis] = truth.shape[range_axis]
    return np.broadcast_to(outside.reshape(shape), truth.shape)


def names_ignored_body_dice(prediction: np.ndarray, reference: np.ndarray, annotated,
                            sacrum_aside: bool = False, range_axis: int | None = None) -> float:
    """Dice of (any predicted vertebra) vs (any annotated vertebral body); NaN without bodies.

    Args:
        prediction: Label map (any shape), MRSpineSeg ids.
        reference: Expert label map, same shape.
        annotated: Ids the reference annotates.
        sacrum_aside: Leave the predicted S out when the reference does not annotate it.
        range_axis: Array axis running superior-inferior: count predictions only within the
            index range the annotated bodies span along it (None: everywhere).
    """
    bodies = [i for i in annotated if i in VERTEBRA_IDS]
    if not bodies:
        return float("nan")
    truth = np.isin(reference, bodies)
    if not truth.any():
        return float("nan")
    aside = {SACRUM_ID} if sacrum_aside and SACRUM_ID not in annotated else set()
    found = np.isin(prediction, sorted(set(VERTEBRA_IDS) - aside))
    if range_axis is not None:
        found = np.logical_and(found, ~outside_annotated_range(truth, range_axis))
    return float(2.0 * np.logical_and(truth, found).sum() / max(truth.sum() + found.sum(), 1))


def superior_axis(volume) -> int:
    """The array axis of ``volume`` along the superior-inferior direction (the one preprocessing maps onto H)."""
    axes, _ = match_network_axes(volume.direction)
    return axes[1]


def mean(values) -> float:
    return float(np.mean(values)) if values else float("nan")


def score_cases(weights: Path, cases: list, label: str = "", turns: bool = DEFAULT_TURNS) -> dict:
    """Segment every case with ``weights`` (``segment``'s path) and print a line per case.

    Returns:
        {"body_dice": names-ignored body Dice (mean), "body_dice_s_aside", "body_dice_in_range" (see the
        module docstring), "named_dice": Dice per structure (mean),
        "disc_dice", "wrong", "total", "confident", "uncertain", "silently_wrong"}.
    """
    segmenter = Segmenter([weights], device="cpu", precision="fp32", turns=turns)
    body_dice, body_dice_s_aside, body_dice_in_range, named_dice, disc_dice, wrong, total = [], [], [], [], [], 0, 0
    split = {"confident": 0, "uncertain": 0, "out_of_range": 0}
    silently_wrong = 0
    for case in cases:
        image, reference = load_case(case)
        result = segmenter.segment(image)
        prediction, truth = np.asarray(result.labels.array), np.asarray(reference.array)
        annotated = [i for i in case.annotated_labels if i]
        body_dice.append(names_ignored_body_dice(prediction, truth, annotated))
        body_dice_s_aside.append(names_ignored_body_dice(prediction, truth, annotated, sacrum_aside=True))
        body_dice_in_range.append(names_ignored_body_dice(prediction, truth, annotated,
                                                          range_axis=superior_axis(reference)))
        per = dice_per_structure(prediction, truth, annotated)
        named_dice += [v for v in per.values() if not math.isnan(v)]
        disc_dice += [v for k, v in per.items() if k in DISC_IDS and not math.isnan(v)]
        named = [level_named_correctly(prediction, truth, i) for i in annotated]
        named = [v for v in named if not math.isnan(v)]
        case_wrong = sum(1 for v in named if v == 0.0)
        wrong, total = wrong + case_wrong, total + len(named)
        status = result.naming.naming["status"]
        split[status] += 1
        silently_wrong += int(status == "confident" and case_wrong > 0)
        print(f"{label}{case.case_id}: body Dice (names ignored) {body_dice[-1]:.3f} "
              f"(S aside {body_dice_s_aside[-1]:.3f}, in range {body_dice_in_range[-1]:.3f}), named wrong "
              f"{case_wrong}/{len(named)}, {status} (anchor {result.naming.naming['anchor']}): "
              f"{result.naming.naming['reason']}", flush=True)
    return {"body_dice": mean([v for v in body_dice if not math.isnan(v)]),
            "body_dice_s_aside": mean([v for v in body_dice_s_aside if not math.isnan(v)]),
            "body_dice_in_range": mean([v for v in body_dice_in_range if not math.isnan(v)]),
            "named_dice": mean(named_dice),
            "disc_dice": mean(disc_dice), "wrong": wrong, "total": total, "silently_wrong": silently_wrong, **split}


def summary_line(score: dict) -> str:
    return (f"body Dice names ignored {score['body_dice']:.3f} (S aside {score['body_dice_s_aside']:.3f}, "
            f"in the annotated range {score['body_dice_in_range']:.3f}), "
            f"mean Dice per structure {score['named_dice']:.3f} "
            f"(discs {score['disc_dice']:.3f}), levels named wrong {score['wrong']}/{score['total']}, "
            f"confident {score['confident']}, uncertain {score['uncertain']}, "
            f"confident with a wrong name {score['silently_wrong']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--prefix", help="source prefix of the cases to score (chu_, myo_, ivd_)")
    chosen.add_argument("--cases", nargs="+", metavar="ID", help="case ids to score instead (e.g. the held-out split)")
    add_turns_option(parser)
    args = parser.parse_args()
    cases = [c for c in load_case_folder(args.data)
             if (c.case_id in args.cases if args.cases else c.case_id.startswith(args.prefix))]
    score = score_cases(args.weights, cases, turns=args.turns == "on")
    print(f"{args.weights} on {len(cases)} {args.prefix or 'chosen'} cases: {summary_line(score)}")


if __name__ == "__main__":
    main()
