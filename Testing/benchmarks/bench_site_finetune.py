"""Benchmark: a new site on real data. Store a few corrected cases of an unseen source, fine-tune, score the rest.

The parent weights must never have seen the source (a leave-one-source-out run, e.g.
trained without ``chu_``). The script

1. stores ``--store-cases`` in a fresh corrected-case store (each case's annotated
   structures as its reviewed ones), as an annotator would with ``cases add``;
2. runs ``finetune`` (the product's own path: schedule, training, promotion rule) with
   the recipe's defaults, or the values given;
3. scores the parent and the fine-tuned version on ``--score-cases`` (same source, never
   stored) with ``bench_loso``'s figures: body Dice with names ignored, Dice per structure,
   levels named wrong, the naming status.

Usage:
    .venv/bin/python Testing/benchmarks/bench_site_finetune.py --weights LOSO_RUN/best \\
        --store-cases chu_05 chu_06 chu_07 chu_12 chu_13 --score-cases chu_09 chu_14 chu_16 chu_17 \\
        --work /tmp/site [--promotion holdout] [--dice-loss-weight 0] [--below-lumbar-weight 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loso import DATA, score_cases, summary_line  # noqa: E402

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.finetune import CaseStore, FinetuneConfig, finetune  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="parent weights that never saw the source")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--store-cases", nargs="+", required=True, metavar="ID")
    parser.add_argument("--score-cases", nargs="+", required=True, metavar="ID")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    parser.add_argument("--promotion", default=FinetuneConfig.promotion)
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    parser.add_argument("--dice-loss-weight", type=float, default=FinetuneConfig.dice_loss_weight)
    parser.add_argument("--below-lumbar-weight", type=float, default=FinetuneConfig.below_lumbar_weight)
    parser.add_argument("--skip-parent", action="store_true", help="do not score the parent (already known)")
    args = parser.parse_args()
    overlap = set(args.store_cases) & set(args.score_cases)
    if overlap:
        parser.error(f"cases both stored and scored: {sorted(overlap)}")

    by_id = {c.case_id: c for c in load_case_folder(args.data)}
    shutil.rmtree(args.work, ignore_errors=True)
    store = CaseStore(args.work / "store")
    for case_id in args.store_cases:
        image, label = load_case(by_id[case_id])
        store.add(image, label, [i for i in by_id[case_id].annotated_labels if i], "parent", case_id=case_id)
    config = FinetuneConfig(promotion=args.promotion, steps=args.steps, dice_loss_weight=args.dice_loss_weight,
                            below_lumbar_weight=args.below_lumbar_weight, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; parent {args.weights}; "
          f"{len(args.store_cases)} stored, {len(args.score_cases)} scored; recipe "
          f"{json.dumps({k: v for k, v in config.to_dict().items() if k not in ('name',)})}", flush=True)
    started = time.perf_counter()
    result = finetune(store, args.weights, args.work / "models", config, bundled_dir=args.weights)
    seconds = time.perf_counter() - started
    print(f"finetune: {result.status} in {seconds:.0f} s ({result.reason}); stored cases "
          f"{result.dice_before:.3f} -> {result.dice_after:.3f} ({result.promotion})", flush=True)
    scored = [by_id[i] for i in args.score_cases]
    if not args.skip_parent:
        print(f"parent on {len(scored)} scored cases: {summary_line(score_cases(args.weights, scored, 'parent '))}")
    print(f"fine-tuned on {len(scored)} scored cases: "
          f"{summary_line(score_cases(result.folder, scored, 'fine-tuned '))}")


if __name__ == "__main__":
    main()
