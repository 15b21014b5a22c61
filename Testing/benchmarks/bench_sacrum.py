"""Benchmark: does the S piece cover the visible sacrum, or only the top of S1?

For each case, ``segment``'s own path (``Segmenter``, ``--cleanup levels``) runs once. On the
mid-sagittal slice with most L5 voxels (network axes: left-right, superior-inferior,
anterior-posterior; the image's own voxels, never resampled) the script measures, in mm along
the superior-inferior axis:

* ``L5``: the height of the L5 piece (the scale of one vertebra);
* ``below``: how much image lies below L5's lowest voxel (how much sacrum can be in view);
* ``S``: the superior-inferior extent of the S piece.

A case whose field of view holds more than 1.5 L5 heights below L5 (S1 and more of the sacrum)
is counted as *covered* when the S piece reaches at least 1.5 L5 heights, i.e. clearly past S1.
That is a numeric screen, not ground truth (no case labels the sacrum): with ``--png DIR`` an
overlay per case is written for review by eye (outside the repository; the images are patients').

Usage:
    .venv/bin/python Testing/benchmarks/bench_sacrum.py --weights Resources/Models/safnet-default \
        --cases myo_05 myo_15 myo_25 myo_35 myo_45 chu_09 chu_16 ivd_25 [--png /tmp/sacrum_png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.inference.overlay import write_overlay_png  # noqa: E402
from SAFNetSpineLib.labels import L5_ID, SACRUM_ID  # noqa: E402
from SAFNetSpineLib.preprocessing.orientation import reorient_to_network_axes  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
#: S must reach this many L5 heights to count as more than S1 (S1 is about one L5 height tall).
COVER_HEIGHTS = 1.5


def sacrum_extent(labels) -> dict:
    """Superior-inferior extents (mm) on the mid-sagittal slice with most L5: L5, image below L5, S.

    Args:
        labels: Label Volume (any orientation).

    Returns:
        {"L5": mm or nan, "below": mm or nan, "S": mm (0 without S)}.
    """
    network = reorient_to_network_axes(labels)
    array, step = np.asarray(network.array), float(network.spacing[1])
    per_slice = (array == L5_ID).reshape(array.shape[0], -1).sum(axis=1)
    if per_slice.max() == 0:
        return {"L5": float("nan"), "below": float("nan"), "S": 0.0}
    mid = array[int(np.argmax(per_slice))]
    rows_l5 = np.where((mid == L5_ID).any(axis=1))[0]
    rows_s = np.where((mid == SACRUM_ID).any(axis=1))[0]
    # Superior-inferior axis 1 of the network axes runs superior -> inferior.
    below = (mid.shape[0] - 1 - rows_l5.max()) * step
    extent = (rows_s.max() - rows_s.min() + 1) * step if len(rows_s) else 0.0
    return {"L5": (rows_l5.max() - rows_l5.min() + 1) * step, "below": below, "S": extent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--png", type=Path, help="write a mid-sagittal overlay per case here (outside the repository)")
    args = parser.parse_args()
    if not (args.data / "dataset.json").exists():
        sys.exit(f"{args.data}: no dataset.json (the real data is not here)")
    cases = {c.case_id: c for c in load_case_folder(args.data)}
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32")
    in_view = covered = 0
    for case_id in args.cases:
        image, _ = load_case(cases[case_id])
        result = segmenter.segment(image)
        e = sacrum_extent(result.labels)
        room = e["below"] > COVER_HEIGHTS * e["L5"]
        ok = room and e["S"] >= COVER_HEIGHTS * e["L5"]
        in_view, covered = in_view + room, covered + ok
        print(f"{case_id}: L5 {e['L5']:.0f} mm, image below L5 {e['below']:.0f} mm, S piece {e['S']:.0f} mm"
              f" -> {'covers past S1' if ok else ('S1 only or less' if room else 'field of view ends near S1')}")
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            write_overlay_png(image, result.labels, args.png / f"{case_id}.png", result.naming.naming)
    print(f"sacrum in view past S1: {in_view} of {len(args.cases)} cases; S piece covers past S1 in {covered} of them")


if __name__ == "__main__":
    main()
