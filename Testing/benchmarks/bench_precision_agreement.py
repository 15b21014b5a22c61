"""Benchmark: do bf16-autocast label maps agree with fp32 ones on real cases?

Issue 2 makes bf16 autocast (with channels_last_3d) the CPU default only where the label
maps agree with fp32 (Dice >= 0.99 between the two) on real cases and the CPU has native
bf16. This script segments real cases both ways with the same weights and reports the
Dice between the two label maps (mean over the structures either one contains) and the
time of each forward pass. On a CPU without native bf16 the bf16 numbers are exact but
the timings are those of PyTorch's slow fallback kernels.

Usage:
    .venv/bin/python Testing/benchmarks/bench_precision_agreement.py [--weights DIR] [--cases ID ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.cases import load_case_folder  # noqa: E402
from SAFNetSpineLib.evaluation.metrics import dice_per_structure  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.io import read_volume  # noqa: E402
from SAFNetSpineLib.runtime import cpu_has_native_bf16  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", nargs="+", default=["myo_05", "myo_15", "myo_25", "myo_35", "myo_45",
                                                      "chu_09", "chu_16", "ivd_25"])
    args = parser.parse_args()
    cases = [c for c in load_case_folder(args.data) if c.case_id in set(args.cases)]
    fp32 = Segmenter([args.weights], device="cpu", precision="fp32")
    bf16 = Segmenter([args.weights], device="cpu", precision="bf16")
    print(f"weights {args.weights} ({fp32.version}); native bf16 on this CPU: {cpu_has_native_bf16()}")
    print(f"{'case':<8} {'Dice bf16 vs fp32':>17} {'fp32 net s':>10} {'bf16 net s':>10}")
    scores = []
    for case in cases:
        image = read_volume(case.image_path)
        a, b = fp32.segment(image), bf16.segment(image)
        ids = sorted((set(np.unique(a.labels.array)) | set(np.unique(b.labels.array))) - {0})
        dice = dice_per_structure(b.labels.array, a.labels.array, ids)
        mean = float(np.nanmean(list(dice.values()))) if dice else 1.0
        scores.append(mean)
        print(f"{case.case_id:<8} {mean:>17.4f} {a.timings_s['network']:>10.3f} {b.timings_s['network']:>10.3f}")
    print(f"mean Dice bf16 vs fp32 over {len(scores)} cases: {np.mean(scores):.4f} (min {np.min(scores):.4f}); "
          f"criterion >= 0.99 -> {'met' if np.min(scores) >= 0.99 else 'NOT met'} for every case")


if __name__ == "__main__":
    main()
