"""Benchmark: what each `segment --cleanup` mode does to Dice and level naming on real cases.

The network runs once per case; its label map (restored to the input grid) is then cleaned
up each way ("none", "largest", "levels") and, as ``segment`` does, named by the count
(inference.naming, the one namer; with "none" the count only judges) and scored against
the reference on the case's annotated structures only. Prints one line per case and a summary per mode: mean Dice of
vertebral bodies and of discs, and how many annotated levels were named correctly
(evaluation.metrics.level_named_correctly).

Usage:
    .venv/bin/python Testing/benchmarks/bench_cleanup.py [--weights DIR] [--cases ID ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.evaluation.metrics import score_case  # noqa: E402
from SAFNetSpineLib.inference import CLEANUPS, Segmenter, clean_up  # noqa: E402
from SAFNetSpineLib.inference.naming import ClassEvidence, name_levels  # noqa: E402
from SAFNetSpineLib.labels import DISC_IDS  # noqa: E402
from SAFNetSpineLib.preprocessing import preprocess_image, restore_labels  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
HELD_OUT = ["myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16", "ivd_25"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", nargs="+", default=HELD_OUT)
    args = parser.parse_args()
    cases = {c.case_id: c for c in load_case_folder(args.data)}
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32", cleanup="none")
    scores: dict[str, list[tuple[int, float, float]]] = {mode: [] for mode in CLEANUPS}
    print(f"weights {args.weights} ({segmenter.version}); cases: {' '.join(args.cases)}")
    print(f"{'case':8} " + " ".join(f"{mode + ' Dice/named':>22}" for mode in CLEANUPS))
    for case_id in args.cases:
        case = cases[case_id]
        image, reference = load_case(case)
        network_input, grid = preprocess_image(image, segmenter.preprocess_config)
        probabilities = segmenter.predict_probabilities(network_input).numpy()
        raw = restore_labels(probabilities, grid, image)
        evidence = ClassEvidence(probabilities, grid.affine_lps)
        cells = []
        for mode in CLEANUPS:
            named = name_levels(clean_up(raw, mode), evidence, rename=mode != "none")
            labels = np.asarray(named.labels.array).astype(np.int64)
            result = score_case(labels, reference.array, image.spacing, case.annotated_labels, surface=False)
            rows = [(label_id, v["dice"], v["level_ok"]) for label_id, v in result.items()]
            scores[mode] += rows
            cells.append(f"{np.mean([d for _, d, _ in rows]):.3f} {int(sum(ok for *_, ok in rows))}/{len(rows)}")
        print(f"{case_id:8} " + " ".join(f"{cell:>22}" for cell in cells), flush=True)
    print()
    for mode, rows in scores.items():
        bodies = [d for label_id, d, _ in rows if label_id not in DISC_IDS]
        discs = [d for label_id, d, _ in rows if label_id in DISC_IDS]
        named = int(sum(ok for *_, ok in rows))
        print(f"{mode:8} bodies Dice {np.mean(bodies) if bodies else float('nan'):.3f} (n {len(bodies)})  "
              f"discs Dice {np.mean(discs) if discs else float('nan'):.3f} (n {len(discs)})  "
              f"named correctly {named}/{len(rows)}")


if __name__ == "__main__":
    main()
