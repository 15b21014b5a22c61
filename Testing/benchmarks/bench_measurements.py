"""Benchmark: how far the model's measurements are from the expert masks' on real cases.

For each case of the development set (../shared/data/spine-mri) the expert mask and
the bundled model's label map of the same image are measured the same way
(``SAFNetSpineLib.measurements.measure_spine``), and every measurement present in
both is compared: mean absolute difference (MAD) per measurement, over all pairs,
and over the held-out cases only (never seen in training: myo_05 myo_15 myo_25 myo_35
myo_45 chu_09 chu_16 ivd_25). The masks cover bodies (myo_: L1-L5, chu_: T11-L5) or
discs (ivd_: L1/L2-L5/S1) only, so lordosis is L1-L5 and no L1-S1 is compared.

With ``--list-grades`` it also lists every body that the ratios alone grade 1 or more, on the
masks and on the model's maps, with its grade as reported (confirmed against the neighbours,
``definitions.genant_grade``).

Usage:
    .venv/bin/python Testing/benchmarks/bench_measurements.py [--cases chu_05 chu_09 ...] [--json out.json]
        [--list-grades]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.cli.common import add_turns_option  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.io import read_volume  # noqa: E402
from SAFNetSpineLib.measurements import measure_spine  # noqa: E402
from SAFNetSpineLib.measurements.definitions import genant_grade  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"
HELD_OUT = {"myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16", "ivd_25"}
DEFAULT_CASES = ["chu_05", "chu_06", "chu_07", "chu_09", "chu_12", "chu_13", "chu_14", "chu_16", "chu_17",
                 "myo_01", "myo_02", "myo_05", "myo_15", "myo_25", "myo_35", "myo_45",
                 "ivd_11", "ivd_20", "ivd_25"]
BODY_FIELDS = ("anterior_height_mm", "middle_height_mm", "posterior_height_mm", "ap_depth_mm")
DISC_FIELDS = ("anterior_height_mm", "middle_height_mm", "posterior_height_mm")


def paired_values(expert: dict, model: dict) -> dict[str, list[float]]:
    """Measurement name -> [expert - model, ...] for every value both documents hold."""
    out: dict[str, list[float]] = defaultdict(list)
    for section, fields in (("vertebrae", BODY_FIELDS), ("discs", DISC_FIELDS)):
        for level, entry in expert[section].items():
            other = model[section].get(level, {})
            for field in fields:
                if field in entry and field in other:
                    out[f"{section[:-1] if section == 'discs' else 'body'} {field}"].append(entry[field] - other[field])
    for level, angle in expert["angles_deg"]["segmental"].items():
        if level in model["angles_deg"]["segmental"]:
            out["segmental angle deg"].append(angle - model["angles_deg"]["segmental"][level])
    for key in ("lumbar_lordosis_L1_L5", "lumbar_lordosis_L1_S1"):
        if key in expert["angles_deg"] and key in model["angles_deg"]:
            out[key.replace("lumbar_lordosis_", "lordosis ") + " deg"].append(
                expert["angles_deg"][key] - model["angles_deg"][key])

    def signed(slip: dict) -> float:
        return slip["slip_mm"] * (1 if slip["direction"] == "anterior" else -1)

    for level, slip in expert["listhesis"].items():
        if level in model["listhesis"]:
            out["slip mm"].append(signed(slip) - signed(model["listhesis"][level]))
    for level, entry in expert["vertebrae"].items():
        if "genant_grade" in entry and "genant_grade" in model["vertebrae"].get(level, {}):
            out["Genant grade (agreement)"].append(float(entry["genant_grade"] == model["vertebrae"][level]["genant_grade"]))
    return out


def graded_bodies(measured: dict) -> list[str]:
    """One line per body that its height ratios alone grade 1 or more: ratios, and the grade as reported."""
    lines = []
    for level, body in measured["vertebrae"].items():
        if "genant_grade" not in body:
            continue
        by_ratios = genant_grade(body["height_ratio_anterior_posterior"], body["height_ratio_middle_posterior"])
        if by_ratios >= 1:
            lines.append(f"{level}: ratios {body['height_ratio_anterior_posterior']:.3f} / "
                         f"{body['height_ratio_middle_posterior']:.3f}, neighbours "
                         f"{body.get('height_ratio_neighbours', float('nan')):.3f}; grade by the ratios {by_ratios}, "
                         f"reported {body['genant_grade']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    parser.add_argument("--json", type=Path, help="also write every case's pairs here")
    parser.add_argument("--list-grades", action="store_true",
                        help="list every body the height ratios alone grade, on masks and model maps")
    add_turns_option(parser)
    args = parser.parse_args()
    if not (DATA / "dataset.json").is_file():
        sys.exit(f"real data not found at {DATA}")

    segmenter = Segmenter([args.weights], device="cpu", turns=args.turns == "on")
    pooled: dict[str, list[float]] = defaultdict(list)
    held: dict[str, list[float]] = defaultdict(list)
    per_case = {}
    counts = {"mask": [0, 0, 0], "model": [0, 0, 0]}  # bodies graded at all, by the ratios, reported
    started = time.perf_counter()
    for case in args.cases:
        t0 = time.perf_counter()
        image = read_volume(DATA / "imagesTr" / f"{case}.nii.gz")
        expert = measure_spine(read_volume(DATA / "labelsTr" / f"{case}.nii.gz", is_label=True))
        model = measure_spine(segmenter.segment(image).labels)
        pairs = paired_values(expert, model)
        per_case[case] = {"held_out": case in HELD_OUT, "differences": pairs,
                          "expert_not_measured": expert["not_measured"], "model_not_measured": model["not_measured"]}
        for name, values in pairs.items():
            pooled[name].extend(values)
            if case in HELD_OUT:
                held[name].extend(values)
        print(f"{case}{' (held out)' if case in HELD_OUT else ''}: {sum(len(v) for v in pairs.values())} pairs, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        if args.list_grades:
            for who, measured in (("mask", expert), ("model", model)):
                lines = graded_bodies(measured)
                bodies = [b for b in measured["vertebrae"].values() if "genant_grade" in b]
                counts[who][0] += len(bodies)
                counts[who][1] += len(lines)
                counts[who][2] += sum(b["genant_grade"] >= 1 for b in bodies)
                for line in lines:
                    print(f"  {who} {line}")

    def cell(values: list[float], agreement: bool) -> str:
        if not values:
            return "-"
        if agreement:
            return f"{100 * np.mean(values):.0f} % (n={len(values)})"
        return f"{np.mean(np.abs(values)):.2f} (n={len(values)})"

    print(f"\n{len(args.cases)} cases in {time.perf_counter() - started:.0f} s, weights {args.weights}\n")
    if args.list_grades:
        for who, (graded, by_ratios, reported) in counts.items():
            print(f"{who}: {graded} bodies graded, {by_ratios} graded 1 or more by the ratios alone, "
                  f"{reported} reported (confirmed by the neighbours)")
    print("| measurement | MAD, all cases | median abs. diff. | MAD, held-out cases | bias (expert - model) |")
    print("|---|---|---|---|---|")
    for name in sorted(pooled):
        agreement = name.startswith("Genant")
        bias = "-" if agreement else f"{np.mean(pooled[name]):+.2f}"
        median = "-" if agreement else f"{np.median(np.abs(pooled[name])):.2f}"
        print(f"| {name} | {cell(pooled[name], agreement)} | {median} | {cell(held.get(name, []), agreement)} "
              f"| {bias} |")
    if args.json:
        args.json.write_text(json.dumps(per_case, indent=1))


if __name__ == "__main__":
    main()
