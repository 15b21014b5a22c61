"""Benchmark: what ``segment`` adds over the network forward pass, and its peak memory.

Target (issue 2): for a 15 x 512 x 512 sagittal volume, ``segment`` end to end adds at
most 1 s of I/O and resampling over the forward pass, with peak memory under 2 GB.

Each repetition runs ``python -m SAFNetSpineLib segment`` in a fresh child process
(as the Slicer module does), which reports its own stage timings in NAME_seg.json
and its peak resident memory (ru_maxrss of the child). The forward pass is timed
inside the same child (the "network" stage), so the overhead is
``read + preprocess + restore + postprocess + write`` of the same run.

Usage:
    .venv/bin/python Testing/benchmarks/bench_segment.py [--weights DIR] [--repeats 3] [--precision auto] [--turns on|off]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom  # noqa: E402
from SAFNetSpineLib.io import write_volume  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir, read_manifest  # noqa: E402


def run_segments(work: Path, args: argparse.Namespace) -> list[tuple]:
    """Write the synthetic 15 x 512 x 512 input into ``work`` and segment it ``args.repeats`` times in child processes.

    Returns:
        One (forward s, overhead s, load s, process wall s, peak GB, stage timings) per run.
    """
    pixel = 390.0 / 512
    image, _ = make_phantom(7, PhantomOptions(slices=(15, 15), inplane_spacing_mm=(pixel, pixel),
                                              fov_mm=(390.0, 390.0), random_orientation=False))
    source = write_volume(image.with_array(np.round(image.array).astype(np.int16)), work / "sag15x512x512.nii.gz")
    manifest = read_manifest(args.weights)
    print(f"input {image.shape} voxels, weights {args.weights} ({manifest.version}, width "
          f"{manifest.model_config.get('width')})")

    rows = []
    for repeat in range(args.repeats):
        out = work / f"out{repeat}"
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "SAFNetSpineLib", "segment", str(source), "-o", str(out), "--weights",
             str(args.weights), "--device", "cpu", "--precision", args.precision, "--turns", args.turns,
             "--progress", "none"],
            capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - start
        if child.returncode:
            sys.exit(child.stderr)
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        timings = json.loads((out / "sag15x512x512_seg.json").read_text())["timings_s"]
        overhead = sum(timings[k] for k in ("read", "preprocess", "restore", "postprocess", "write"))
        rows.append((timings["network"], overhead, timings["load_model"], wall, peak_gb, timings))

    print(f"{'run':>3} {'forward s':>9} {'overhead s':>10} {'load s':>7} {'process wall s':>14} {'peak GB':>8}")
    for i, (net, over, load, wall, peak, _) in enumerate(rows):
        print(f"{i:>3} {net:>9.3f} {over:>10.3f} {load:>7.3f} {wall:>14.2f} {peak:>8.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--turns", choices=("on", "off"), default="off",
                        help="segment --turns: the turned passes count in the forward time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-segment-") as folder:  # removed afterwards, even on failure
        rows = run_segments(Path(folder), args)
    best = min(rows, key=lambda r: r[1])
    print("stage timings of the run with the least overhead:", json.dumps(best[5]))
    median_overhead = float(np.median([r[1] for r in rows]))
    print(f"median overhead {median_overhead:.3f} s (target <= 1 s); "
          f"peak memory {max(r[4] for r in rows):.2f} GB (target < 2 GB; max over runs, ru_maxrss of children)")


if __name__ == "__main__":
    main()
