"""``evaluate``: score a weights folder on labelled cases, with a report.

Segments labelled cases with a weights folder and scores every annotated structure in
the input geometry (Dice, MSD, HD95, level naming); writes report.md, metrics.csv and
dice_boxplot.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from SAFNetSpineLib.cli.common import add_progress_option, add_turns_option
from SAFNetSpineLib.data.cases import load_case_folders, read_case_ids, select_cases
from SAFNetSpineLib.inference.postprocess import CLEANUP_HELP, CLEANUPS, DEFAULT_CLEANUP
from SAFNetSpineLib.io import check_writable_dir
from SAFNetSpineLib.labels import DISC_IDS, VERTEBRA_IDS
from SAFNetSpineLib.progress import Progress


def add_parser(subparsers) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="score a weights folder on labelled cases (Dice, MSD, HD95, level naming) with a report",
        description="Segment labelled cases with a weights folder and score every annotated structure in the "
                    "input geometry; writes report.md, metrics.csv and dice_boxplot.png.")
    evaluate.add_argument("--weights", required=True, type=Path, metavar="DIR", help="weights folder")
    evaluate.add_argument("--data", action="append", required=True, type=Path, metavar="DIR",
                          help="dataset folder; repeatable")
    evaluate.add_argument("--cases", nargs="+", metavar="ID", default=None,
                          help="case ids, or one file listing them (text lines, a JSON list, or a train run's "
                               "split.json, whose validation cases are used); default: every case")
    evaluate.add_argument("--out", required=True, type=Path, metavar="DIR", help="report folder")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    evaluate.add_argument("--cleanup", default=DEFAULT_CLEANUP, choices=CLEANUPS, help=CLEANUP_HELP)
    add_turns_option(evaluate)
    evaluate.add_argument("--no-surface", action="store_true", help="skip MSD and HD95 (faster)")
    add_progress_option(evaluate)
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Loaded here, not at parser-building time: they import torch (and matplotlib for the report).
    from SAFNetSpineLib.evaluation import evaluate_model, mean_metric
    from SAFNetSpineLib.evaluation.report import write_report
    from SAFNetSpineLib.runtime import resolve_device
    from SAFNetSpineLib.weights import load_model

    cases, _ = load_case_folders(args.data)
    if args.cases:
        cases = select_cases(cases, read_case_ids(args.cases))
    check_writable_dir(args.out)
    device = resolve_device(args.device)
    model, manifest = load_model(args.weights, device)
    rows = evaluate_model(model, manifest, cases, device, surface=not args.no_surface, cleanup=args.cleanup,
                          turns=args.turns == "on", progress=Progress(args.progress))
    notes = [f"Weights `{args.weights}` (version {manifest.version}, {manifest.architecture} width "
             f"{manifest.model_config.get('width')}); {len(cases)} cases: {', '.join(c.case_id for c in cases)}.",
             f"Scored in each input's own geometry after `segment --cleanup {args.cleanup} --turns {args.turns}`."]
    path = write_report([{"fold": 1, **r} for r in rows], args.out, title="Evaluation", notes=notes)
    print(f"vertebrae Dice {mean_metric(rows, 'dice', VERTEBRA_IDS):.4f}, discs Dice "
          f"{mean_metric(rows, 'dice', DISC_IDS):.4f}, levels named correctly "
          f"{mean_metric(rows, 'level_ok') * 100:.1f}%; report: {path}", flush=True)
    return 0
