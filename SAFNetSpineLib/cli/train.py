"""``train`` and ``cv``: train a network on case folders, or cross-validate it as in the paper.

Every field of :class:`~SAFNetSpineLib.training.TrainConfig` has a long flag
(``--lr``, ``--plateau-patience``, ``--contrast-gamma LO HI`` ...); unset flags keep the
paper's defaults. Under ``torchrun`` the same command trains on several GPUs/processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import threading
from pathlib import Path

from SAFNetSpineLib.inference.postprocess import CLEANUP_HELP, CLEANUPS, DEFAULT_CLEANUP

_TUPLE_FIELDS = ("contrast_gamma", "elastic_spacing", "elastic_magnitude")
_SPECIAL_FIELDS = ("model_options", "preprocess", "case_repeats")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from SAFNetSpineLib.training import TrainConfig

    group = parser.add_argument_group("training recipe (defaults: the SAFNet paper's)")
    defaults = TrainConfig.__dataclass_fields__
    for item in dataclasses.fields(TrainConfig):
        if item.name in _SPECIAL_FIELDS:
            continue
        flag = "--" + item.name.replace("_", "-")
        default = defaults[item.name].default
        help_text = f"default {default}"
        if item.name in _TUPLE_FIELDS:
            group.add_argument(flag, type=float, nargs=2, metavar=("LO", "HI"), default=None, help=help_text)
        elif isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag, type=type(default), default=None, help=help_text)
    group.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra build_model argument, VALUE read as JSON (e.g. use_aspp=false); repeatable")
    group.add_argument("--repeat", action="append", default=[], metavar="PREFIX=N",
                       help="draw each training case whose id starts with PREFIX N times per epoch "
                            "(oversample a small source, e.g. chu_=4); repeatable")
    group.add_argument("--target-shape", type=int, nargs=3, metavar=("D", "H", "W"), default=None,
                       help="network grid (default 18 256 128)")
    group.add_argument("--ap-crop-fraction", type=float, default=None,
                       help="central anterior-posterior fraction kept (default 0.5)")


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", required=True, type=Path, metavar="DIR",
                        help="dataset folder (imagesTr/labelsTr/dataset.json or MRSpineSeg MR/ + Mask/); repeatable")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    parser.add_argument("--cache", type=Path, metavar="DIR", default=None,
                        help="preprocessed-case cache (default OUT/cache)")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="progress as a bar on stderr, JSON lines on stdout, or none (default bar)")


def add_parser(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a segmentation network on case folders",
                                  description=__doc__)
    _common_flags(train)
    split = train.add_argument_group("validation cases (saved in OUT/split.json and reused)")
    split.add_argument("--val-cases", nargs="+", metavar="ID", default=None,
                       help="validation case ids, or one file listing them (text lines or a JSON list)")
    split.add_argument("--val-fraction", type=float, default=0.1,
                       help="without --val-cases: seeded fraction of each case group held out (default 0.1)")
    split.add_argument("--train-only", action="append", type=Path, default=[], metavar="DIR",
                       help="a --data folder whose cases are never validation cases (e.g. phantoms); repeatable")
    train.add_argument("--resume", action="store_true", help="continue the checkpoint in OUT")
    train.add_argument("--init-weights", type=Path, metavar="DIR", default=None,
                       help="start from this weights folder (its architecture and preprocessing are used)")
    train.add_argument("--version", default="safnet-trained",
                       help="version name in the best weights' manifest (default safnet-trained)")
    _add_config_flags(train)
    train.set_defaults(func=run_train)

    cv = subparsers.add_parser("cv", help="k-fold cross-validation as in the SAFNet paper, with a report",
                               description=__doc__)
    _common_flags(cv)
    cv.add_argument("--folds", type=int, default=5, help="number of folds k (default 5)")
    cv.add_argument("--val-count", type=int, default=4, help="validation cases per fold (paper: 4)")
    cv.add_argument("--split-seed", type=int, default=0, help="seed of splits.json, written once, then reused (default 0)")
    cv.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                    help="run only these folds (1-based), e.g. one per machine; the report covers finished folds")
    _add_config_flags(cv)
    cv.set_defaults(func=run_cv)

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
    evaluate.add_argument("--no-surface", action="store_true", help="skip MSD and HD95 (faster)")
    evaluate.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                          help="progress as a bar on stderr, JSON lines on stdout, or none (default bar)")
    evaluate.set_defaults(func=run_evaluate)


def config_from_args(args: argparse.Namespace):
    """A TrainConfig with the defaults replaced by every flag that was given."""
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.preprocessing import PreprocessConfig
    from SAFNetSpineLib.training import TrainConfig

    changes = {}
    for item in dataclasses.fields(TrainConfig):
        value = getattr(args, item.name, None)
        if item.name not in _SPECIAL_FIELDS and value is not None:
            changes[item.name] = tuple(value) if item.name in _TUPLE_FIELDS else value
    options = {}
    for text in args.model_option:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise SpineInputError("--model-option", f"expected KEY=VALUE, got '{text}'")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    if options:
        changes["model_options"] = options
    repeats = {}
    for text in args.repeat:
        prefix, sep, raw = text.partition("=")
        if not sep or not prefix or not raw.isdigit():
            raise SpineInputError("--repeat", f"expected PREFIX=N with N a whole number, got '{text}'")
        repeats[prefix] = int(raw)
    if repeats:
        changes["case_repeats"] = repeats
    preprocess = {}
    if args.target_shape is not None:
        preprocess["target_shape"] = tuple(args.target_shape)
    if args.ap_crop_fraction is not None:
        preprocess["ap_crop_fraction"] = args.ap_crop_fraction
    if preprocess:
        changes["preprocess"] = PreprocessConfig.from_dict(preprocess).to_dict()
    return TrainConfig(**changes)


def load_all_cases(folders: list[Path]) -> tuple[list, dict[str, Path]]:
    """Cases of several dataset folders, refusing case ids that occur twice; also id -> folder."""
    from SAFNetSpineLib.data.cases import load_case_folder
    from SAFNetSpineLib.errors import SpineInputError

    cases, origin = [], {}
    for folder in folders:
        for case in load_case_folder(folder):
            if case.case_id in origin:
                raise SpineInputError(folder, f"case id '{case.case_id}' also occurs in {origin[case.case_id]}")
            origin[case.case_id] = folder
            cases.append(case)
    return cases, origin


def _requested_val_ids(values: list[str]) -> list[str]:
    from SAFNetSpineLib.errors import SpineInputError

    if len(values) == 1 and Path(values[0]).is_file():
        path = Path(values[0])
        text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if isinstance(data, dict):
            data = data.get("val")
        if not isinstance(data, list):
            raise SpineInputError(path, "expected a JSON list of case ids (or a split.json with 'val')")
        return [str(v) for v in data]
    return list(values)


def _split(args, cases, origin) -> dict:
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.training.splits import holdout_split, load_or_write_splits

    ids = [c.case_id for c in cases]
    train_only = {Path(p).resolve() for p in args.train_only}

    def make() -> dict:
        if args.val_cases:
            val = _requested_val_ids(args.val_cases)
            unknown = [v for v in val if v not in origin]
            if unknown:
                raise SpineInputError("--val-cases", f"unknown case ids {unknown[:5]}")
        else:
            eligible = [c for c in ids if Path(origin[c]).resolve() not in train_only]
            _, val = holdout_split(eligible, args.val_fraction, args.seed if args.seed is not None else 0)
        return {"train": [c for c in ids if c not in set(val)], "val": sorted(val),
                "data": [str(Path(p).resolve()) for p in args.data]}

    split_file = args.out / "split.json"
    if not _is_main_process():
        # Under torchrun rank 0 writes split.json; the split is a pure function of ids and seed.
        return json.loads(split_file.read_text()) if args.resume and split_file.exists() else make()
    if split_file.exists() and not args.resume:
        raise SpineInputError(args.out, "already holds a run (split.json); pass --resume or choose another folder")
    return load_or_write_splits(split_file, make, ids)


def _is_main_process() -> bool:
    """False in torchrun processes other than rank 0 (RANK is set by torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def cancel_on_signals() -> threading.Event:
    """An Event set by SIGINT/SIGTERM, so training stops between batches and keeps its checkpoint."""
    event = threading.Event()

    def handler(signum, frame):
        event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return event


def run_train(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.progress import Progress
    from SAFNetSpineLib.training import train

    config = config_from_args(args)
    cases, origin = load_all_cases(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    split = _split(args, cases, origin)
    by_id = {c.case_id: c for c in cases}
    train_cases = [by_id[c] for c in split["train"]]
    val_cases = [by_id[c] for c in split["val"]]
    folders = ", ".join(Path(p).name for p in args.data)
    cancel = cancel_on_signals()
    result = train(config, train_cases, val_cases, args.out, init_weights=args.init_weights,
                   progress=Progress(args.progress), cancel=cancel, resume=args.resume, cache_dir=args.cache,
                   version=args.version,
                   trained_on=f"{len(train_cases)} cases from {folders}; validated on {len(val_cases)} held-out cases")
    if result.averaged_weights_dir is not None and args.progress != "json":
        print(f"averaged weights ({result.averaged_weights_dir}): validation Dice {result.averaged_val_dice:.4f}",
              flush=True)
    if result.cancelled:
        print(f"cancelled after {result.epochs_run} completed epochs; continue with --resume", flush=True)
        return 130
    if args.progress != "json" and _is_main_process():
        print(f"best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}; "
              f"weights: {result.weights_dir}", flush=True)
    return 0


def run_cv(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.progress import Progress
    from SAFNetSpineLib.training.cv import cross_validate

    config = config_from_args(args)
    cases, _ = load_all_cases(args.data)
    summary = cross_validate(config, cases, args.out, folds=args.folds, n_val=args.val_count,
                             split_seed=args.split_seed, only_folds=args.only_folds, cache_dir=args.cache,
                             progress=Progress(args.progress), cancel=cancel_on_signals())
    if summary.cancelled:
        print("cancelled; run the same command again to continue", flush=True)
        return 130
    print(f"report: {summary.report}", flush=True)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.evaluation import evaluate_model, mean_metric
    from SAFNetSpineLib.evaluation.report import write_report
    from SAFNetSpineLib.io import check_writable_dir
    from SAFNetSpineLib.labels import DISC_IDS, VERTEBRA_IDS
    from SAFNetSpineLib.progress import Progress
    from SAFNetSpineLib.training.distributed import resolve_device
    from SAFNetSpineLib.weights import load_model

    cases, origin = load_all_cases(args.data)
    if args.cases:
        wanted = _requested_val_ids(args.cases)
        unknown = [c for c in wanted if c not in origin]
        if unknown:
            raise SpineInputError("--cases", f"unknown case ids {unknown[:5]}")
        by_id = {c.case_id: c for c in cases}
        cases = [by_id[c] for c in wanted]
    check_writable_dir(args.out)
    device = resolve_device(args.device)
    model, manifest = load_model(args.weights, device)
    rows = evaluate_model(model, manifest, cases, device, surface=not args.no_surface, cleanup=args.cleanup,
                          progress=Progress(args.progress))
    notes = [f"Weights `{args.weights}` (version {manifest.version}, {manifest.architecture} width "
             f"{manifest.model_config.get('width')}); {len(cases)} cases: {', '.join(c.case_id for c in cases)}.",
             f"Scored in each input's own geometry after `segment --cleanup {args.cleanup}` post-processing."]
    path = write_report([{"fold": 1, **r} for r in rows], args.out, title="Evaluation", notes=notes)
    print(f"vertebrae Dice {mean_metric(rows, 'dice', VERTEBRA_IDS):.4f}, discs Dice "
          f"{mean_metric(rows, 'dice', DISC_IDS):.4f}, levels named correctly "
          f"{mean_metric(rows, 'level_ok') * 100:.1f}%; report: {path}", flush=True)
    return 0
