"""Benchmark: synthetic wedge fractures on real held-out scans. Does the model outline and grade them?

For each case and level, the image and the expert mask are turned into network axes (native
voxels, nothing resampled) and the level's body is collapsed towards its inferior endplate,
image and mask alike (``training.augment_spatial.collapse_body``: the anterior wall kept to
``--keep`` 0.6, the posterior to 0.95, so the built ratio is about 0.63, Genant grade 2; every
sagittal slice alike). ``segment``'s own path runs on the result and both label maps are measured
the same way (``measure_spine``). Reported per fracture: the mask's grade (the construction as
measured), the model's grade of the level of the same name, the collapsed body's Dice (names
counted), and any other body the model grades where the mask grades none (false flags).

The collapse is the training augmentation's own (``--collapse-prob``), so weights trained with it
are favoured here. A synthetic wedge is cleaner than a fracture: no oedema, no fracture line.

Usage:
    .venv/bin/python Testing/benchmarks/bench_collapse.py --weights Resources/Models/safnet-default \
        [--cases myo_05 myo_15 myo_25 myo_35 myo_45 chu_09 chu_16] [--levels L1 L3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.labels import structure_by_name  # noqa: E402
from SAFNetSpineLib.measurements import measure_spine  # noqa: E402
from SAFNetSpineLib.preprocessing.orientation import reorient_to_network_axes  # noqa: E402
from SAFNetSpineLib.training.augment_spatial import collapse_body  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
HELD_OUT_WITH_BODIES = ["myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16"]


def fractured(image, mask, level: str, keep: tuple[float, float]):
    """(image, mask) Volumes in network axes with ``level``'s body collapsed; None when the mask lacks it."""
    image, mask = reorient_to_network_axes(image), reorient_to_network_axes(mask)
    label_id = structure_by_name(level).label_id
    if not (np.asarray(mask.array) == label_id).any():
        return None
    new_image, new_mask = collapse_body(torch.from_numpy(np.asarray(image.array, np.float32)),
                                        torch.from_numpy(np.asarray(mask.array).astype(np.int64)), label_id, keep)
    return image.with_array(new_image.numpy()), mask.with_array(new_mask.numpy().astype(np.uint8), is_label=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=HELD_OUT_WITH_BODIES)
    parser.add_argument("--levels", nargs="+", default=["L1", "L3"])
    parser.add_argument("--keep", type=float, nargs=2, default=(0.6, 0.95), metavar=("ANTERIOR", "POSTERIOR"))
    args = parser.parse_args()
    if not (DATA / "dataset.json").is_file():
        sys.exit(f"real data not found at {DATA}")
    cases = {c.case_id: c for c in load_case_folder(DATA)}
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32")
    scored = graded = exact = false_flags = 0
    dices = []
    started = time.perf_counter()
    for case_id in args.cases:
        image, mask = load_case(cases[case_id])
        for level in args.levels:
            made = fractured(image, mask, level, tuple(args.keep))
            if made is None:
                continue
            broken, truth = made
            built = measure_spine(truth)["vertebrae"].get(level, {})
            if built.get("genant_grade", 0) < 1:  # the mask's own measurement must see the fracture
                print(f"{case_id} {level}: the collapsed mask is not measured as graded ({built.get('genant_grade')})")
                continue
            result = segmenter.segment(broken)
            model = measure_spine(result.labels)["vertebrae"]
            label_id = structure_by_name(level).label_id
            a, b = np.asarray(truth.array) == label_id, np.asarray(result.labels.array) == label_id
            dice = 2 * (a & b).sum() / max(1, a.sum() + b.sum())
            grade = model.get(level, {}).get("genant_grade")
            others = [n for n, body in model.items()
                      if n != level and body.get("genant_grade", 0) >= 1]
            scored += 1
            graded += int((grade or 0) >= 1)
            exact += int(grade == built["genant_grade"])
            false_flags += len(others)
            dices.append(dice)
            print(f"{case_id} {level}: mask grade {built['genant_grade']} (ratio "
                  f"{built['height_ratio_anterior_posterior']:.2f}), model grade {grade} (ratio "
                  f"{model.get(level, {}).get('height_ratio_anterior_posterior', float('nan')):.2f}), Dice {dice:.3f}, "
                  f"names {result.naming.naming['status']}, other bodies graded: {others or 'none'}", flush=True)
    print(f"\n{scored} fractures in {time.perf_counter() - started:.0f} s, weights {args.weights}: graded 1 or more "
          f"{graded}/{scored}, the mask's grade {exact}/{scored}, collapsed body Dice {np.mean(dices):.3f}, "
          f"other bodies graded {false_flags}")


if __name__ == "__main__":
    main()
