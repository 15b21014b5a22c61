"""Benchmark: level naming by counting (inference.naming) — its cost, and what it does on real cases.

1. Speed: ``name_levels`` on a synthetic sacrum-to-T12 spine on an oblique 0.7 x 0.7 x 4 mm
   grid, from its labels alone and with network-sized probabilities.
2. Real cases (skipped when the data is absent or with ``--no-real``): the network runs once
   per case, ``--cleanup levels`` names its levels, then the count renames them. For each
   case: annotated levels named wrong before and after the count
   (evaluation.metrics.level_named_correctly), and the naming status, anchor and reason;
   at the end the totals and the confident/uncertain split.

Usage:
    .venv/bin/python Testing/benchmarks/bench_naming.py [--weights DIR] [--cases ID ...] [--no-real]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "Testing" / "inference")]

from spine_maps import DIRECTIONS, FULL, grid, layers, paint  # noqa: E402

from SAFNetSpineLib.evaluation.metrics import level_named_correctly  # noqa: E402
from SAFNetSpineLib.inference.naming import ClassEvidence, name_levels  # noqa: E402
from SAFNetSpineLib.labels import NUM_CLASSES  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
HELD_OUT = ["myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16", "ivd_25"]


def bench_speed(repeats: int = 3) -> None:
    length = layers(FULL)[-1][2]
    labels = paint(grid(DIRECTIONS["oblique"], length, thick_mm=4.0, fine_mm=0.7), FULL)
    probabilities = np.full((NUM_CLASSES, 18, 256, 128), 1.0 / NUM_CLASSES, np.float32)
    network = grid(np.eye(3), length, thick_mm=3.0, fine_mm=1.4)  # an affine only; probabilities flat
    evidence = ClassEvidence(probabilities, network.affine_lps)
    for name, kwargs in (("labels only", {}), ("with probabilities", {"evidence": evidence})):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = name_levels(labels, **kwargs)
            times.append(time.perf_counter() - started)
        print(f"name_levels {name}: grid {labels.shape} ({np.prod(labels.shape) / 1e6:.1f} M voxels), "
              f"median {np.median(times):.3f} s over {repeats}; status {result.naming['status']}")


def bench_real(weights: Path, data: Path, case_ids: list[str]) -> None:
    from SAFNetSpineLib.data.cases import load_case, load_case_folder, select_cases
    from SAFNetSpineLib.inference import Segmenter, clean_up
    from SAFNetSpineLib.preprocessing import preprocess_image, restore_labels

    segmenter = Segmenter([weights], device="cpu", precision="fp32", cleanup="none")
    totals = {"before": [0, 0], "after": [0, 0]}
    split = {"confident": 0, "uncertain": 0}
    for case in select_cases(load_case_folder(data), case_ids):
        image, reference = load_case(case)
        network_input, network_grid = preprocess_image(image, segmenter.preprocess_config)
        probabilities = segmenter.predict_probabilities(network_input).numpy()
        ordered = clean_up(restore_labels(probabilities, network_grid, image), "levels")
        started = time.perf_counter()
        counted = name_levels(ordered, ClassEvidence(probabilities, network_grid.affine_lps))
        naming_s = time.perf_counter() - started
        line = [case.case_id]
        for key, labels in (("before", ordered.array), ("after", counted.labels.array)):
            named = [level_named_correctly(np.asarray(labels), np.asarray(reference.array), i)
                     for i in case.annotated_labels if i]
            named = [v for v in named if not math.isnan(v)]
            wrong = sum(1 for v in named if v == 0.0)
            totals[key][0] += wrong
            totals[key][1] += len(named)
            line.append(f"{key}: {wrong}/{len(named)} wrong")
        split[counted.naming["status"]] += 1
        print(f"{', '.join(line)} | {counted.naming['status']} (anchor {counted.naming['anchor']}, "
              f"{naming_s:.2f} s): {counted.naming['reason']}", flush=True)
    print(f"levels named wrong: before the count {totals['before'][0]}/{totals['before'][1]}, "
          f"after {totals['after'][0]}/{totals['after'][1]}; confident {split['confident']}, "
          f"uncertain {split['uncertain']}")


def main() -> None:
    from SAFNetSpineLib.weights import default_weights_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", nargs="+", default=HELD_OUT)
    parser.add_argument("--no-real", action="store_true", help="only the speed benchmark")
    args = parser.parse_args()
    bench_speed()
    if not args.no_real and (args.data / "dataset.json").is_file():
        bench_real(args.weights, args.data, args.cases)


if __name__ == "__main__":
    main()
