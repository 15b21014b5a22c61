"""Benchmark: level naming by counting (inference.naming) — its cost, and what it does on real cases.

1. Speed: ``name_levels`` on a synthetic sacrum-to-T12 spine on an oblique 0.7 x 0.7 x 4 mm
   grid, from its labels alone and with network-sized probabilities.
2. Real cases (skipped when the data is absent or with ``--no-real``): ``segment``'s own path
   (``--cleanup levels``, then the count; with ``--hint-l3`` an L3 hint at the expert L3
   centre). For each case: annotated levels named wrong
   (evaluation.metrics.level_named_correctly), the naming status, where the count starts
   and the reason; at the end the totals, the confident / uncertain / out-of-range split,
   the confident cases with a level named wrong, and the calibration table: annotated levels
   per ``name_confidence`` bin of the name given, and the fraction named right. With
   ``--keep-superior F`` each scan and its mask are first cut to their superior fraction F along
   superior-inferior (a scan that ends above the sacrum: no anchor to count from).

Usage:
    .venv/bin/python Testing/benchmarks/bench_naming.py [--weights DIR ...] [--cases ID ...] [--hint-l3] [--no-real] [--turns on|off]
        [--keep-superior F]
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
#: name_confidence bins of the calibration table.
CALIBRATION_EDGES = (0.0, 0.5, 0.7, 0.9, 1.0)


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


def calibration_rows(pairs: list[tuple[float, bool]], edges=CALIBRATION_EDGES) -> list[tuple[str, int, int]]:
    """(bin, levels, named right) per ``name_confidence`` bin, from (confidence, right) pairs."""
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = [right for value, right in pairs if low <= value < high or (high == edges[-1] and value == high)]
        rows.append((f"[{low:.1f}, {high:.1f}{']' if high == edges[-1] else ')'}", len(inside), sum(inside)))
    return rows


def superior_part(image, reference, keep: float):
    """``image`` and ``reference`` cut to their superior fraction ``keep`` along superior-inferior."""
    import dataclasses

    from SAFNetSpineLib.preprocessing.orientation import match_network_axes

    axes, signs = match_network_axes(image.direction)
    n = image.shape[axes[1]]
    part = int(round(keep * n))
    rows = range(part) if signs[1] > 0 else range(n - part, n)  # rows run towards inferior where signs[1] > 0
    first = rows[0]
    origin = image.origin + image.direction[:, axes[1]] * image.spacing[axes[1]] * first
    cut = [dataclasses.replace(v, array=np.take(np.asarray(v.array), rows, axis=axes[1]), origin=origin)
           for v in (image, reference)]
    return cut[0], cut[1]


def bench_real(weights: list[Path], data: Path, case_ids: list[str], hint_l3: bool = False,
               turns: bool = False, keep_superior: float | None = None) -> None:
    """``segment``'s own path on real cases: names, status, where the count starts, calibration."""
    from SAFNetSpineLib.data.cases import load_case, load_case_folder, select_cases
    from SAFNetSpineLib.inference import Segmenter
    from SAFNetSpineLib.inference.naming import LevelHint
    from SAFNetSpineLib.labels import L5_ID, L5_S_ID, neighbour
    from SAFNetSpineLib.volume import LPS_TO_RAS

    segmenter = Segmenter(weights, device="cpu", precision="fp32", turns=turns)
    wrong_total, levels_total, confident_wrong = 0, 0, 0
    split = {"confident": 0, "uncertain": 0, "out_of_range": 0}
    pairs: list[tuple[float, bool]] = []
    for case in select_cases(load_case_folder(data), case_ids):
        image, reference = load_case(case)
        if keep_superior is not None:
            image, reference = superior_part(image, reference, keep_superior)
        truth = np.asarray(reference.array)
        hint = None
        if hint_l3:  # the expert centre of L3 (of L3/L4 where only discs are annotated)
            target = neighbour(L5_ID, 4) if neighbour(L5_ID, 4) in case.annotated_labels else neighbour(L5_S_ID, 4)
            centre = np.argwhere(truth == target).mean(axis=0)
            lps = reference.affine_lps[:3, :3] @ centre + reference.affine_lps[:3, 3]
            hint = LevelHint(target, tuple(float(v) for v in LPS_TO_RAS @ lps))
        result = segmenter.segment(image, level_hint=hint)
        prediction = np.asarray(result.labels.array)
        confidence = result.naming.name_confidence
        wrong = []
        for label_id in (i for i in case.annotated_labels if i):
            right = level_named_correctly(prediction, truth, label_id)
            if math.isnan(right):
                continue
            inside = prediction[truth == label_id]
            inside = inside[inside > 0]
            named = int(np.bincount(inside).argmax()) if inside.size else 0
            pairs.append((float(confidence.get(named, 0.0)), right == 1.0))
            if right == 0.0:
                wrong.append(label_id)
        naming = result.naming.naming
        split[naming["status"]] += 1
        confident_wrong += int(naming["status"] == "confident" and bool(wrong))
        wrong_total += len(wrong)
        levels_total += sum(1 for i in case.annotated_labels if i and (truth == i).any())
        print(f"{case.case_id}: named wrong {len(wrong)} | {naming['status']} ({naming['counted_from']}): "
              f"{naming['reason']}", flush=True)
    print(f"levels named wrong {wrong_total}/{levels_total}; confident {split['confident']}, uncertain "
          f"{split['uncertain']}, out of range {split['out_of_range']}; confident with a level named wrong "
          f"{confident_wrong}")
    print("name_confidence bin | annotated levels | named right | fraction right")
    for label, n, right in calibration_rows(pairs):
        print(f"{label:>10} | {n:>5} | {right:>5} | {right / n if n else float('nan'):.3f}")


def main() -> None:
    from SAFNetSpineLib.cli.common import add_turns_option
    from SAFNetSpineLib.weights import default_weights_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, action="append", help="weights folder (repeat: ensemble); "
                        "default: the bundled weights")
    parser.add_argument("--hint-l3", action="store_true", help="give an L3 hint at the expert L3 centre "
                        "(L3/L4 on disc-only cases)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", nargs="+", default=HELD_OUT)
    parser.add_argument("--no-real", action="store_true", help="only the speed benchmark")
    parser.add_argument("--keep-superior", type=float, default=None, metavar="F",
                        help="cut each scan and mask to their superior fraction F (0-1) along superior-inferior first")
    add_turns_option(parser)
    args = parser.parse_args()
    bench_speed()
    if not args.no_real and (args.data / "dataset.json").is_file():
        bench_real(args.weights or [default_weights_dir()], args.data, args.cases, args.hint_l3,
                   args.turns == "on", args.keep_superior)


if __name__ == "__main__":
    main()
