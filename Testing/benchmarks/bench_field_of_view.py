"""Benchmark: how the weights fare when a scan's in-plane field of view is cropped or zero-padded.

Each case's image and expert mask are cropped (factor < 1) or zero-padded (factor > 1) about their
centre along both in-plane axes, then segmented by ``segment``'s own path (``Segmenter``,
``--cleanup levels``). The figure is bodies with names ignored within the annotated levels
(``bench_loso.py``'s "in range"), and whether ``segment`` warns about the field of view
(``inference.field_of_view``). Padding is background, not tissue, so a padded scan is only a
proxy for a scan of a larger field of view (and it leaves the spine at the centre, so it does not test
finding the lumbar spine in a window). With ``--fit-fov off`` a small field of view is segmented on its
own grid, not widened to the trained one first, and a large one whole, not in windows of the trained
size (``Segmenter(fit_fov=...)``). No training; nothing is written.

Usage:
    .venv/bin/python Testing/benchmarks/bench_field_of_view.py --weights Resources/Models/safnet-default \
        --cases myo_05 myo_15 myo_25 myo_35 myo_45 chu_09 chu_16 --factors 0.6 0.7 0.8 1 1.4 1.6 1.8
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loso import names_ignored_body_dice, superior_axis  # noqa: E402

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.preprocessing.orientation import match_network_axes  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"


def refit(image: np.ndarray, label: np.ndarray, in_plane: tuple[int, int], factor: float):
    """Crop or zero-pad both in-plane array axes about their centre to ``factor`` times their size."""
    for axis in in_plane:
        n = image.shape[axis]
        m = int(round(n * factor))
        if m < n:
            keep = [slice(None)] * 3
            keep[axis] = slice((n - m) // 2, (n - m) // 2 + m)
            image, label = image[tuple(keep)], label[tuple(keep)]
        elif m > n:
            pad = [(0, 0)] * 3
            pad[axis] = ((m - n) // 2, m - n - (m - n) // 2)
            image, label = np.pad(image, pad), np.pad(label, pad)
    return image, label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--factors", nargs="+", type=float, default=[0.6, 0.7, 0.8, 1.0, 1.4, 1.6, 1.8])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fit-fov", choices=("on", "off"), default="on")
    args = parser.parse_args()
    if not (args.data / "dataset.json").exists():
        sys.exit(f"{args.data}: no dataset.json (the real data is not here)")
    cases = {c.case_id: c for c in load_case_folder(args.data)}
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32", fit_fov=args.fit_fov == "on")
    print(f"trained field of view: {segmenter.trained_fov_mm} mm; fit-fov {args.fit_fov}")
    table = {f: [] for f in args.factors}
    for case_id in args.cases:
        image, label = load_case(cases[case_id])
        axes, _ = match_network_axes(image.direction)
        row = []
        for factor in args.factors:
            a, b = refit(np.asarray(image.array, np.float32), np.asarray(label.array), (axes[1], axes[2]), factor)
            scan = dataclasses.replace(image, array=a)
            result = segmenter.segment(scan)
            dice = names_ignored_body_dice(np.asarray(result.labels.array), b, cases[case_id].annotated_labels,
                                           range_axis=superior_axis(scan))
            table[factor].append(dice)
            fov = result.field_of_view
            marks = ((" W" if fov["warning"] else "") + (" F" if fov["widened_to_mm"] else "")
                     + (" N" if fov["window_mm"] else ""))
            row.append(f"x{factor:g} {fov['in_plane_mm'][0]:.0f} mm: {dice:.3f}{marks}")
        print(case_id, " | ".join(row), flush=True)
    print("mean in range by factor (W: segment warned; F: widened to the trained field of view; N: narrowed to a "
          "window of it):")
    for factor, values in table.items():
        print(f"  x{factor:g}: {np.nanmean(values):.3f} (min {np.nanmin(values):.3f})")


if __name__ == "__main__":
    main()
