"""Benchmark: the most a whole-image body Dice can score against a partial reference.

The development references label some vertebral bodies only (``chu_``: T11-L5; ``myo_``:
L1-L5), while the scans show more (T9-T10 above, the sacrum below). The whole-image figure of
``bench_loso.py`` ("body Dice, names ignored") counts every predicted vertebra, so a network
that marks an unlabelled vertebra correctly loses for it. This script estimates, per case, the
figure a segmentation would get if it were perfect on the labelled bodies *and* marked the
vertebrae in view outside the annotated range, as any correct segmentation does:

    ceiling = 2 |R| / (2 |R| + |U|)

with R the reference's body voxels and U the vertebra voxels (S included; "S aside": without
it) that ``weights`` predicts outside the annotated range along the superior-inferior axis
(the range of ``bench_loso.py``'s "in range"). U is an estimate of the unlabelled anatomy: a
network that misses part of it makes the ceiling too high, one that overshoots too low.

Usage:
    .venv/bin/python Testing/benchmarks/bench_whole_image_ceiling.py \\
        --weights Resources/Models/safnet-default --prefix chu_
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loso import DATA, mean, outside_annotated_range, superior_axis  # noqa: E402

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.labels import SACRUM_ID, VERTEBRA_IDS  # noqa: E402


def whole_image_ceiling(prediction: np.ndarray, reference: np.ndarray, annotated, range_axis: int,
                        sacrum_aside: bool = False) -> float:
    """2|R| / (2|R| + |U|) for one case; NaN without annotated bodies.

    Args:
        prediction: Label map of a network (the estimate of the unlabelled anatomy), MRSpineSeg ids.
        reference: Expert label map, same shape.
        annotated: Ids the reference annotates.
        range_axis: The array axis running superior-inferior.
        sacrum_aside: Leave the predicted S out of U when the reference does not annotate it
            (as ``bench_loso.py``'s "S aside").
    """
    bodies = [i for i in annotated if i in VERTEBRA_IDS]
    truth = np.isin(reference, bodies) if bodies else np.zeros(reference.shape, bool)
    if not truth.any():
        return float("nan")
    aside = {SACRUM_ID} if sacrum_aside and SACRUM_ID not in annotated else set()
    found = np.isin(prediction, sorted(set(VERTEBRA_IDS) - aside))
    unlabelled = np.logical_and(found, outside_annotated_range(truth, range_axis)).sum()
    return float(2.0 * truth.sum() / (2.0 * truth.sum() + unlabelled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="the network whose prediction estimates U")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--prefix", required=True, help="source prefix of the cases (chu_, myo_)")
    args = parser.parse_args()
    cases = [c for c in load_case_folder(args.data) if c.case_id.startswith(args.prefix)]
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32")
    whole, aside = [], []
    for case in cases:
        image, reference = load_case(case)
        prediction = np.asarray(segmenter.segment(image).labels.array)
        truth, annotated, axis = np.asarray(reference.array), [i for i in case.annotated_labels if i], superior_axis(reference)
        whole.append(whole_image_ceiling(prediction, truth, annotated, axis))
        aside.append(whole_image_ceiling(prediction, truth, annotated, axis, sacrum_aside=True))
        print(f"{case.case_id}: ceiling {whole[-1]:.3f} (S aside {aside[-1]:.3f})", flush=True)
    whole, aside = [v for v in whole if v == v], [v for v in aside if v == v]
    print(f"{args.weights} on {len(whole)} {args.prefix} cases with bodies: whole-image ceiling mean {mean(whole):.3f} "
          f"(min {min(whole):.3f}, max {max(whole):.3f}); S aside {mean(aside):.3f} "
          f"(min {min(aside):.3f}, max {max(aside):.3f})")


if __name__ == "__main__":
    main()
