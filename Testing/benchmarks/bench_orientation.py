"""Benchmark: endplate tilts of the model's bodies against the expert masks', with the scan turned in-plane.

Radiologists read lordosis and segmental angles off endplate tilts. For each held-out case
of the development set that labels bodies (myo_05 myo_15 myo_25 myo_35 myo_45 chu_09
chu_16), the image and its expert mask are turned together in the sagittal plane by each
angle (``scipy.ndimage.rotate``: linear for the image, nearest for the mask; the volumes'
in-plane voxels are square), the turned image is segmented, and the superior-endplate tilt
of every lumbar body (L1-L5) is measured on both label maps with the same code
(``SAFNetSpineLib.measurements.measure_spine``); the model's body is the one overlapping the
expert's most, whatever its name. Angle 0 is the scan as acquired; other
angles stand for patients lying or curved differently from the training scans.

Per angle the script prints: the number of bodies, the mean absolute tilt error, the mean
signed error (model - expert) and the slope of the model's tilt against the expert's (1: no
compression; below 1: tilts pulled towards the image's rows, which flattens lordosis). It
also bins the errors by the expert tilt as it lies in the turned image, and by level.

Usage:
    .venv/bin/python Testing/benchmarks/bench_orientation.py [--weights DIR] [--angles -20 -10 0 10 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.cli.common import add_turns_option  # noqa: E402
from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.labels import VERTEBRA_IDS, structure, structure_by_name  # noqa: E402
from SAFNetSpineLib.measurements import measure_spine  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
HELD_OUT_BODIES = ["myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16"]
LUMBAR = ("L1", "L2", "L3", "L4", "L5")
FIELD = "superior_endplate_tilt_deg"


def turned(volume, degrees: float, order: int):
    """``volume`` turned in its sagittal plane (array axes 1, 2) about the array's centre, same grid."""
    from scipy import ndimage

    if degrees == 0:
        return volume
    array = ndimage.rotate(volume.array, degrees, axes=(1, 2), reshape=False, order=order,
                           mode="nearest" if order else "constant")
    return dataclasses.replace(volume, array=array.astype(volume.array.dtype))


def overlapping_body(mask: np.ndarray, labels: np.ndarray, level: str) -> str | None:
    """The model's vertebra overlapping the expert's ``level`` most (names ignored), or None."""
    inside = labels[mask == structure_by_name(level).label_id]
    counts = np.bincount(inside[np.isin(inside, VERTEBRA_IDS)], minlength=max(VERTEBRA_IDS) + 1)
    return structure(int(counts.argmax())).short_name if counts.any() else None


def tilt_pairs(expert: dict, model: dict, mask: np.ndarray, labels: np.ndarray) -> list[tuple[str, float, float]]:
    """(level, expert tilt, model tilt) in degrees for every lumbar body both documents measure.

    The model's body is the one overlapping the expert's most, whatever its name, so a count one
    level off compares the same bone (naming has its own benchmark).
    """
    pairs = []
    for level in LUMBAR:
        a = expert["vertebrae"].get(level, {}).get(FIELD)
        found = overlapping_body(mask, labels, level) if a is not None else None
        b = model["vertebrae"].get(found, {}).get(FIELD) if found else None
        if a is not None and b is not None:
            pairs.append((level, a, b))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=HELD_OUT_BODIES)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--angles", nargs="+", type=float, default=[-20.0, -10.0, 0.0, 10.0, 20.0])
    add_turns_option(parser)
    args = parser.parse_args()
    if not (DATA / "dataset.json").is_file():
        sys.exit(f"real data not found at {DATA}")

    segmenter = Segmenter([args.weights], device="cpu", turns=args.turns == "on")
    rows = []  # (case, level, angle, expert tilt, model tilt)
    started = time.perf_counter()
    cases = [c for c in load_case_folder(DATA) if c.case_id in args.cases]
    for case in cases:
        image, mask = load_case(case)
        for angle in args.angles:
            truth = turned(mask, angle, order=0)
            labels = segmenter.segment(turned(image, angle, order=1)).labels
            pairs = tilt_pairs(measure_spine(truth), measure_spine(labels), truth.array, labels.array)
            rows += [(case.case_id, level, angle, a, b) for level, a, b in pairs]
        print(f"{case.case_id}: {time.perf_counter() - started:.0f} s", flush=True)

    data = np.array([(r[2], r[3], r[4]) for r in rows], dtype=np.float64).reshape(-1, 3)
    levels = np.array([r[1] for r in rows])
    angle, expert, model = data.T
    error = model - expert
    print(f"\n{len(cases)} cases, {len(rows)} body-angle pairs in {time.perf_counter() - started:.0f} s, "
          f"weights {args.weights}\n")
    print("| turned (deg) | bodies | mean abs. error (deg) | mean error, model - expert | slope, model on expert |")
    print("|---|---|---|---|---|")
    for value in args.angles:
        pick = angle == value
        if pick.sum() < 3:
            continue
        slope = np.polyfit(expert[pick], model[pick], 1)[0]
        print(f"| {value:+.0f} | {pick.sum()} | {np.abs(error[pick]).mean():.2f} | {error[pick].mean():+.2f} "
              f"| {slope:.2f} |")
    print("\n| expert tilt in the turned image (deg) | bodies | mean error | mean abs. error |")
    print("|---|---|---|---|")
    for low in range(-40, 40, 10):
        pick = (expert >= low) & (expert < low + 10)
        if pick.any():
            print(f"| {low:+d} to {low + 10:+d} | {pick.sum()} | {error[pick].mean():+.2f} | "
                  f"{np.abs(error[pick]).mean():.2f} |")
    print("\n| level (the expert's) | bodies | mean expert tilt (deg) | mean error | mean abs. error |")
    print("|---|---|---|---|---|")
    for level in LUMBAR:
        pick = levels == level
        if pick.any():
            print(f"| {level} | {pick.sum()} | {expert[pick].mean():+.1f} | {error[pick].mean():+.2f} | "
                  f"{np.abs(error[pick]).mean():.2f} |")


if __name__ == "__main__":
    main()
