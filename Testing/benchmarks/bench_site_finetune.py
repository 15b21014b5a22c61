"""Benchmark: does the promotion rule tell a version that helps the next patient from one that does not?

Real stores hold several series per patient (one exam: T1, T2, STIR). The script builds
such a store from real development cases: each patient's case as stored, plus a
contrast-remapped copy of it (a gamma curve on the intensities: another weighting of the
same spine, on the same grid) as that patient's second series. It then runs the product's
``finetune`` on the same cases, once per grouping:

* ``case``: every series recorded as its own patient, which is what the folds were before
  issue 24 (a version scored on a series may have trained on its sibling);
* ``patient``: each series recorded with its patient (``cases add --patient``);
* ``guessed``: no patient ids, so the product guesses from the image grids (series of one
  exam share one; so do all cases of a resampled data set, which are then one "exam").

For each (and for each L2-SP ``--anchor-weights`` value: how strongly fine-tuning is held
near the parent's weights) it reports the cross-validated evidence and the decision, and
scores the published version and the parent on patients that were never stored, which
the parent also never trained on (``bench_loso``'s figures: body Dice with names ignored,
Dice per structure, levels named wrong); the parent's score minus the version's is what
fine-tuning forgot.

Usage (defaults: the bundled weights, cases they never trained on)::

    .venv/bin/python Testing/benchmarks/bench_site_finetune.py --work /tmp/site-bench \\
        [--patients myo_05 myo_15 myo_25] [--unseen myo_35 myo_45 chu_09 chu_16 ivd_25] [--steps 40] [--folds 0] \\
        [--anchor-weights 0 0.1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loso import DATA, score_cases, summary_line  # noqa: E402

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.finetune import FinetuneConfig, finetune  # noqa: E402
from SAFNetSpineLib.stores import CaseStore  # noqa: E402
from SAFNetSpineLib.weights import default_weights_dir  # noqa: E402

#: The bundled weights' held-out validation cases (model.json "trained_on"): never trained on.
HELD_OUT = ("myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16", "ivd_25")


def remapped(image, gamma: float = 0.5):
    """The same grid with a gamma-remapped contrast (another series of the same exam)."""
    values = np.asarray(image.array, dtype=np.float32)
    low, high = np.percentile(values, [0.5, 99.5])
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    return image.with_array((scaled ** gamma * (high - low) + low).astype(np.float32))


def build_store(folder: Path, cases: list, grouping: str) -> CaseStore:
    """Each case and its remapped copy, with the patient ids ``grouping`` asks for (see the module)."""
    store = CaseStore(folder)
    for case in cases:
        image, label = load_case(case)
        reviewed = [i for i in case.annotated_labels if i]
        for suffix, series in (("a", image), ("b", remapped(image))):
            case_id = f"{case.case_id}-{suffix}"
            patient = {"case": case_id, "patient": case.case_id, "guessed": None}[grouping]
            store.add(series, label, reviewed, "parent", case_id=case_id, patient_id=patient)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=default_weights_dir(), help="parent weights")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--patients", nargs="+", default=list(HELD_OUT[:3]), metavar="ID",
                        help="stored patients (each stored twice: as is and contrast-remapped)")
    parser.add_argument("--unseen", nargs="+", default=list(HELD_OUT[3:]), metavar="ID",
                        help="patients never stored, scored before and after")
    parser.add_argument("--groupings", nargs="+", default=["case", "patient"], choices=["case", "patient", "guessed"])
    parser.add_argument("--skip-parent", action="store_true", help="do not score the parent (already known)")
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per training (0: the product's)")
    parser.add_argument("--folds", type=int, default=0, help="cross-validation folds (0: the product's, 3)")
    parser.add_argument("--anchor-weights", nargs="+", type=float, default=[FinetuneConfig().train.anchor_weight],
                        metavar="ALPHA", help="L2-SP weights towards the parent to compare (default: the product's)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if set(args.patients) & set(args.unseen):
        parser.error(f"patients both stored and unseen: {sorted(set(args.patients) & set(args.unseen))}")

    by_id = {c.case_id: c for c in load_case_folder(args.data)}
    shutil.rmtree(args.work, ignore_errors=True)
    config = FinetuneConfig().replace(steps=args.steps, folds=args.folds, device="cpu")
    runs = [(grouping, alpha) for grouping in args.groupings for alpha in args.anchor_weights]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; parent {args.weights}; "
          f"{len(args.patients)} stored patients x 2 series, {len(args.unseen)} unseen patients; steps {args.steps}",
          flush=True)
    unseen = [by_id[i] for i in args.unseen]
    figures = {}
    if not args.skip_parent:
        figures["parent"] = score_cases(args.weights, unseen, "parent ")
        print(f"parent on unseen patients: {summary_line(figures['parent'])}", flush=True)
    for grouping, alpha in runs:
        name = f"{grouping}-anchor{alpha:g}"
        store = build_store(args.work / f"store-{name}", [by_id[i] for i in args.patients], grouping)
        started = time.perf_counter()
        result = finetune(store, args.weights, args.work / f"models-{name}", config, bundled_dir=args.weights,
                          anchor_weight=alpha)
        seconds = time.perf_counter() - started
        evidence = result.evidence
        print(f"[{name}] {result.status} ({result.decision}) in {seconds:.0f} s: {result.reason}", flush=True)
        score = score_cases(result.folder, unseen, f"{name} version ")
        print(f"[{name}] on unseen patients: {summary_line(score)}", flush=True)
        figures[name] = {"grouping": grouping, "anchor_weight": alpha,
            "status": result.status, "decision": result.decision, "patients": result.patients,
            "improvement": evidence.get("improvement"), "ci90": evidence.get("ci90"),
            "confidence": evidence.get("confidence"), "sign_test_p": evidence.get("sign_test_p"),
            "wins": evidence.get("wins"), "losses": evidence.get("losses"),
            "stored_dice_before": result.dice_before, "stored_dice_after": result.dice_after,
            "steps": result.schedule.get("steps"), "seconds": round(seconds), "unseen": score,
        }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
