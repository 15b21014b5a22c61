"""``cv``: k-fold cross-validation as in the SAFNet paper, with a report.

Takes the ``train`` recipe flags. ``OUT/splits.json`` is written once and reused; each
fold trains in ``OUT/fold_K/`` (resumable), so running the same command again continues.
"""

from __future__ import annotations

import argparse

from SAFNetSpineLib.cancel import cancel_on_signals
from SAFNetSpineLib.cli.train import add_recipe_flags, add_run_flags, config_from_args
from SAFNetSpineLib.data.cases import load_case_folders
from SAFNetSpineLib.progress import Progress


def add_parser(subparsers) -> None:
    cv = subparsers.add_parser("cv", help="k-fold cross-validation as in the SAFNet paper, with a report",
                               description=__doc__)
    add_run_flags(cv)
    cv.add_argument("--folds", type=int, default=5, help="number of folds k (default 5)")
    cv.add_argument("--val-count", type=int, default=4, help="validation cases per fold (paper: 4)")
    cv.add_argument("--split-seed", type=int, default=0, help="seed of splits.json, written once, then reused (default 0)")
    cv.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                    help="run only these folds (1-based), e.g. one per machine; the report covers finished folds")
    add_recipe_flags(cv)
    cv.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Loaded here, not at parser-building time: training imports torch and MONAI.
    from SAFNetSpineLib.training.cv import cross_validate

    config = config_from_args(args)
    cases, _ = load_case_folders(args.data)
    with cancel_on_signals() as cancel:
        summary = cross_validate(config, cases, args.out, folds=args.folds, n_val=args.val_count,
                                 split_seed=args.split_seed, only_folds=args.only_folds, cache_dir=args.cache,
                                 progress=Progress(args.progress), cancel=cancel)
    if summary.cancelled:
        print("cancelled; run the same command again to continue", flush=True)
        return 130
    print(f"report: {summary.report}", flush=True)
    return 0
