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
from SAFNetSpineLib.inference import Segmenter, windows  # noqa: E402
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


def stack_above(image: np.ndarray, label: np.ndarray, si_axis: int, inferior_up: bool, copies: int,
                keep: float = 0.6):
    """A taller field of view with vertebrae in it everywhere: ``copies`` copies of the scan's superior ``keep``
    fraction (no sacrum, unlabelled) stacked above the scan along its superior-inferior array axis.

    Args:
        image, label: The case's arrays.
        si_axis: The superior-inferior array axis.
        inferior_up: True when the index grows towards inferior (the superior end is index 0).
        copies: How many copies go above.
        keep: The superior fraction of the scan copied.
    """
    n = image.shape[si_axis]
    part = int(round(keep * n))
    top = np.take(image, range(part) if inferior_up else range(n - part, n), axis=si_axis)
    blank = np.zeros_like(np.take(label, range(part), axis=si_axis))
    images, labels = [top] * copies, [blank] * copies
    if inferior_up:
        return np.concatenate([*images, image], axis=si_axis), np.concatenate([*labels, label], axis=si_axis)
    return np.concatenate([image, *images], axis=si_axis), np.concatenate([label, *labels], axis=si_axis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--factors", nargs="+", type=float, default=[0.6, 0.7, 0.8, 1.0, 1.4, 1.6, 1.8])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fit-fov", choices=("on", "off"), default="on")
    parser.add_argument("--window-placement", choices=("sacrum", "grid"), default="sacrum",
                        help="grid: keep the chosen half-overlapping window as it is, not placed again on its "
                             "sacrum (inference.windows.PLACE_ON_SACRUM)")
    parser.add_argument("--stack", type=int, default=0, metavar="K",
                        help="instead of cropping or padding: K copies of each scan's superior 0.6 stacked above it "
                             "(vertebrae without a sacrum in the windows above; --factors is then ignored)")
    parser.add_argument("--cut-sacrum", choices=("skip", "count"), default="skip",
                        help="count: a sacrum at a window's inferior edge inside the scan counts when the window is "
                             "chosen (inference.windows.SKIP_CUT_SACRUM)")
    parser.add_argument("--window-at", type=float, default=None,
                        help="cut an extent of at least this many times the largest trained field into windows "
                             "(default inference.windows.WINDOW_AT)")
    args = parser.parse_args()
    if not (args.data / "dataset.json").exists():
        sys.exit(f"{args.data}: no dataset.json (the real data is not here)")
    cases = {c.case_id: c for c in load_case_folder(args.data)}
    windows.PLACE_ON_SACRUM = args.window_placement == "sacrum"
    windows.SKIP_CUT_SACRUM = args.cut_sacrum == "skip"
    if args.window_at is not None:
        windows.WINDOW_AT = args.window_at
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32", fit_fov=args.fit_fov == "on")
    print(f"trained field of view: {segmenter.trained_fov_mm} mm; fit-fov {args.fit_fov}; "
          f"windows placed: {args.window_placement}, from {windows.WINDOW_AT} x the largest, cut sacrum: "
          f"{args.cut_sacrum}")
    table = {f: [] for f in ([0.0] if args.stack else args.factors)}
    for case_id in args.cases:
        image, label = load_case(cases[case_id])
        axes, signs = match_network_axes(image.direction)
        row = []
        for factor in [0.0] if args.stack else args.factors:
            if args.stack:
                a, b = stack_above(np.asarray(image.array, np.float32), np.asarray(label.array), axes[1],
                                   signs[1] > 0, args.stack)
            else:
                a, b = refit(np.asarray(image.array, np.float32), np.asarray(label.array), (axes[1], axes[2]), factor)
            scan = dataclasses.replace(image, array=a)
            result = segmenter.segment(scan)
            dice = names_ignored_body_dice(np.asarray(result.labels.array), b, cases[case_id].annotated_labels,
                                           range_axis=superior_axis(scan))
            table[factor].append(dice)
            fov = result.field_of_view
            marks = ((" W" if fov["warning"] else "") + (" F" if fov["widened_to_mm"] else "")
                     + (" N" if fov["window_mm"] else ""))
            tag = f"stack {args.stack}" if args.stack else f"x{factor:g}"
            row.append(f"{tag} {fov['in_plane_mm'][0]:.0f} mm: {dice:.3f}{marks}")
        print(case_id, " | ".join(row), flush=True)
    print("mean in range by factor (W: segment warned; F: widened to the trained field of view; N: narrowed to a "
          "window of it):")
    for factor, values in table.items():
        tag = f"stack {args.stack}" if args.stack else f"x{factor:g}"
        print(f"  {tag}: {np.nanmean(values):.3f} (min {np.nanmin(values):.3f})")


if __name__ == "__main__":
    main()
