"""``finetune``: fine-tune the active model on corrected cases.

``finetune --store DIR --models MODELSDIR [--from WEIGHTS]`` trains the next version
``NAME-vN`` into MODELSDIR and activates it only if the per-patient evidence says it helps.
Every field of :class:`~SAFNetSpineLib.finetune.FinetuneConfig` has a long flag
(``--epochs``, ``--steps``, ``--promotion``, ``--folds``, ``--min-confidence``,
``--val-fraction``, ``--name``), and so has every field of its training recipe
(:class:`~SAFNetSpineLib.training.TrainConfig`: ``--lr``, ``--batch-size``, ``--anchor-weight``,
``--dice-loss-weight``, ``--device``, ``--augment/--no-augment``, ``--seed`` ..., plus
``--augment-option KEY=VALUE``) except those taken from the parent (architecture, width,
preprocessing); unset flags keep the fine-tuning defaults.
With ``--progress json`` stdout carries one JSON object per line; the last one has
``"stage": "summary"`` and the run's summary under ``"summary"``. SIGINT/SIGTERM
cancel cleanly (exit code 130): the store and the active model stay unchanged.
Every path (``--summary``, the models folder) is checked before the training starts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from SAFNetSpineLib.atomic import TEMP_PREFIX, os_error_reason, write_json_atomic
from SAFNetSpineLib.cancel import cancel_on_signals
from SAFNetSpineLib.cli.common import add_config_flags, add_progress_option, config_changes
from SAFNetSpineLib.cli.train import SPECIAL_FIELDS, key_values
from SAFNetSpineLib.errors import SpineOutputError
from SAFNetSpineLib.finetune import FinetuneCancelled, FinetuneConfig, finetune
from SAFNetSpineLib.finetune.config import NOT_FROM_RECIPE
from SAFNetSpineLib.progress import Progress
from SAFNetSpineLib.training.config import TrainConfig

#: TrainConfig fields without a generated flag here: taken from the parent or the schedule, or set otherwise.
TRAINING_SKIP = (*NOT_FROM_RECIPE, *SPECIAL_FIELDS)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune the active model on corrected cases",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", required=True, type=Path, metavar="DIR", help="corrected-case store folder")
    parser.add_argument("--models", required=True, type=Path, metavar="MODELSDIR",
                        help="folder of model versions (the new version is written here)")
    parser.add_argument("--from", dest="from_weights", type=Path, metavar="WEIGHTS",
                        help="starting weights folder (default: the active version of --models, else the bundled "
                             "default)")
    add_config_flags(parser.add_argument_group("fine-tuning"), FinetuneConfig, skip=("train",))
    training = parser.add_argument_group("training recipe (defaults: fine-tuning's)")
    add_config_flags(training, TrainConfig, skip=TRAINING_SKIP, defaults=FinetuneConfig().train)
    training.add_argument("--augment-option", action="append", default=[], metavar="KEY=VALUE",
                          help="augmentation setting (AugmentConfig field), VALUE read as JSON; repeatable")
    parser.add_argument("--summary", type=Path, metavar="FILE", help="also write the summary JSON to FILE")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def check_summary_path(path: Path) -> None:
    """Refuse a ``--summary`` path that could not be written after the fine-tune (a folder, no such folder).

    Raises:
        SpineOutputError: naming the path.
    """
    if path.is_dir():
        raise SpineOutputError(path, "--summary is a folder; give a file path")
    try:
        with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=path.parent if str(path.parent) else "."):
            pass
    except OSError as error:
        raise SpineOutputError(path, f"cannot write the summary here ({os_error_reason(error)})") from None


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig with the defaults replaced by every flag that was given."""
    training = config_changes(args, TrainConfig, skip=TRAINING_SKIP)
    augmentation = key_values(args.augment_option, "--augment-option", json_only=True)
    if augmentation:
        training["augmentation"] = augmentation
    return FinetuneConfig(**config_changes(args, FinetuneConfig, skip=("train",))).replace(**training)


def run(args: argparse.Namespace) -> int:
    progress = Progress(args.progress)
    config = config_from_args(args)
    if args.summary is not None:
        check_summary_path(args.summary)
    with cancel_on_signals() as cancel:
        try:
            result = finetune(args.store, args.from_weights, args.models, config, progress=progress, cancel=cancel)
        except FinetuneCancelled:
            if args.progress == "json":
                progress("cancelled", 0.0, "fine-tuning cancelled; store and active model unchanged")
            print("cancelled: fine-tuning stopped; the case store and the active model are unchanged",
                  file=sys.stderr)
            return 130
    summary = result.to_dict()
    if args.summary is not None:
        write_json_atomic(summary, args.summary)
    if args.progress == "json":
        progress("summary", 1.0, result.reason, summary=summary)
    else:
        print(f"{result.version}: {result.status} ({result.reason})")
        print(f"  weights: {result.folder}")
        if result.patient_grouping_guessed:
            print(f"  patients: {result.patient_grouping}; record them with `cases add --patient`")
    return 0
