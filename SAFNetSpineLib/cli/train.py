"""``train``: train a network on case folders.

Every field of :class:`~SAFNetSpineLib.training.TrainConfig` has a long flag
(``--lr``, ``--plateau-patience`` ...), and so has every field of its augmentation
(:class:`~SAFNetSpineLib.training.augment_config.AugmentConfig`: ``--rotate-prob``,
``--gamma-range LO HI`` ...); unset flags keep the paper's defaults. Under ``torchrun`` the same command trains on several GPUs/processes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from SAFNetSpineLib.cancel import cancel_on_signals
from SAFNetSpineLib.cli.common import add_config_flags, add_progress_option, config_changes
from SAFNetSpineLib.data.cases import load_case_folders, read_case_ids
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.preprocessing.config import WIDEN_FILLS, PreprocessConfig
from SAFNetSpineLib.progress import Progress
from SAFNetSpineLib.training.augment_config import RANGE_FIELDS, AugmentConfig
from SAFNetSpineLib.training.config import TrainConfig

SPECIAL_FIELDS = ("model_options", "preprocess", "case_repeats", "augmentation", "synthesis")


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per TrainConfig and AugmentConfig field, plus --model-option, --repeat, --target-shape,
    --ap-crop-fraction, --min-fov-mm."""
    group = parser.add_argument_group("training recipe (defaults: the SAFNet paper's)")
    add_config_flags(group, TrainConfig, skip=SPECIAL_FIELDS)
    add_config_flags(parser.add_argument_group("augmentation"), AugmentConfig, pairs=RANGE_FIELDS)
    group.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra build_model argument, VALUE read as JSON (e.g. use_aspp=false); repeatable")
    group.add_argument("--augment-option", action="append", default=[], metavar="KEY=VALUE",
                       help="augmentation setting (training/augment_config.py AugmentConfig field), VALUE read "
                            "as JSON (e.g. noise_prob=0.5, fov_keep=[0.5,0.9], invert_prob=0); repeatable")
    group.add_argument("--synth-option", action="append", default=[], metavar="KEY=VALUE",
                       help="synthesis setting (training/synth_config.py SynthConfig field), VALUE read as JSON "
                            "(e.g. slice_mm=[2,8], std_range=[0,0.05]); repeatable")
    group.add_argument("--repeat", action="append", default=[], metavar="PREFIX=N",
                       help="draw each training case whose id starts with PREFIX N times per epoch "
                            "(oversample a small source, e.g. chu_=4); repeatable")
    group.add_argument("--target-shape", type=int, nargs=3, metavar=("D", "H", "W"), default=None,
                       help="network grid (default 18 256 128; H and W multiples of 16); with --init-weights, "
                            "another grid replaces the weights'")
    group.add_argument("--ap-crop-fraction", type=float, default=None,
                       help="central anterior-posterior fraction kept (default 0.5)")
    group.add_argument("--min-fov-mm", type=float, default=None,
                       help="widen a smaller in-plane field of view to this many mm before the grid is laid "
                            "(default 0: the grid fits each scan's own field of view)")
    group.add_argument("--widen-fill", choices=WIDEN_FILLS, default=None,
                       help="with --min-fov-mm, what the grid holds past the scan: image_zero (default; the image's 0, "
                            "then the whole grid z-scored) or network_zero (the scan z-scored alone, 0 around it)")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """--data, --out, --cache and --progress (train and cv)."""
    parser.add_argument("--data", action="append", required=True, type=Path, metavar="DIR",
                        help="dataset folder (imagesTr/labelsTr/dataset.json or MRSpineSeg MR/ + Mask/); repeatable")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    parser.add_argument("--cache", type=Path, metavar="DIR", default=None,
                        help="preprocessed-case cache (default OUT/cache)")
    add_progress_option(parser)


def add_parser(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a segmentation network on case folders",
                                  description=__doc__)
    add_run_flags(train)
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
    add_recipe_flags(train)
    train.set_defaults(func=run)


def key_values(texts: list[str], flag: str, json_only: bool) -> dict:
    """{KEY: value} from ``KEY=VALUE`` flags; VALUE is read as JSON, else (unless ``json_only``) kept as text."""
    values = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise SpineInputError(flag, f"expected KEY=VALUE, got '{text}'")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            if json_only:
                raise SpineInputError(flag, f"VALUE of {key} is not JSON (a number or [lo, hi])") from None
            values[key] = raw
    return values


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig with the defaults replaced by every flag that was given."""
    changes = config_changes(args, TrainConfig, skip=SPECIAL_FIELDS)
    options = key_values(args.model_option, "--model-option", json_only=False)
    if options:
        changes["model_options"] = options
    augmentation = {**key_values(args.augment_option, "--augment-option", json_only=True),
                    **config_changes(args, AugmentConfig, pairs=RANGE_FIELDS)}
    if augmentation:
        changes["augmentation"] = augmentation
    synthesis = key_values(args.synth_option, "--synth-option", json_only=True)
    if synthesis:
        changes["synthesis"] = synthesis
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
    if args.min_fov_mm is not None:
        preprocess["min_fov_mm"] = args.min_fov_mm
    if args.widen_fill is not None:
        preprocess["widen_fill"] = args.widen_fill
    if preprocess:
        changes["preprocess"] = PreprocessConfig.from_dict(preprocess)
    return TrainConfig(**changes)


def run(args: argparse.Namespace) -> int:
    # Loaded here, not at parser-building time: the training loop imports torch and MONAI.
    from SAFNetSpineLib.training import train
    from SAFNetSpineLib.training.distributed import is_main_process
    from SAFNetSpineLib.training.splits import train_validation_split

    config = config_from_args(args)
    cases, origin = load_case_folders(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    train_cases, val_cases = train_validation_split(
        cases, origin, args.out, val_ids=read_case_ids(args.val_cases) if args.val_cases else None,
        val_fraction=args.val_fraction, seed=config.seed, train_only=args.train_only, resume=args.resume)
    folders = ", ".join(Path(p).name for p in args.data)
    with cancel_on_signals() as cancel:
        result = train(config, train_cases, val_cases, args.out, init_weights=args.init_weights,
                       progress=Progress(args.progress), cancel=cancel, resume=args.resume, cache_dir=args.cache,
                       version=args.version, trained_on=f"{len(train_cases)} cases from {folders}; "
                                                        f"validated on {len(val_cases)} held-out cases")
    if result.averaged_weights_dir is not None and args.progress != "json":
        print(f"averaged weights ({result.averaged_weights_dir}): validation Dice {result.averaged_val_dice:.4f}",
              flush=True)
    if result.cancelled:
        print(f"cancelled after {result.epochs_run} completed epochs; continue with --resume", flush=True)
        return 130
    if args.progress != "json" and is_main_process():
        print(f"best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}; "
              f"weights: {result.weights_dir}", flush=True)
    return 0
