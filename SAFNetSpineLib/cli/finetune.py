"""``finetune`` and ``models``: fine-tune from corrected cases; list, activate and roll back versions.

``finetune --store DIR --models MODELSDIR [--from WEIGHTS]`` trains the next version
``NAME-vN`` into MODELSDIR and activates it only if validation Dice did not drop.
With ``--progress json`` stdout carries one JSON object per line; the last one has
``"stage": "summary"`` and the run's summary under ``"summary"``. SIGINT/SIGTERM
cancel cleanly (exit code 130): the store and the active model stay unchanged.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune the active model on corrected cases",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--store", required=True, type=Path, metavar="DIR", help="corrected-case store folder"
    )
    parser.add_argument(
        "--models",
        required=True,
        type=Path,
        metavar="MODELSDIR",
        help="folder of model versions (the new version is written here)",
    )
    parser.add_argument(
        "--from",
        dest="from_weights",
        type=Path,
        metavar="WEIGHTS",
        help="starting weights folder (default: the active version of --models, else the bundled default)",
    )
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--batch-size", type=int, default=2, help="cases per optimiser step (default 2)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of cases used for validation, by case-id hash (default 0.2)",
    )
    parser.add_argument(
        "--name", help="version family name (default: the architecture, e.g. safnet -> safnet-vN)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of shuffling and augmentation")
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="train without augmentation"
    )
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N")
    parser.add_argument("--summary", type=Path, metavar="FILE", help="also write the summary JSON to FILE")
    parser.add_argument(
        "--progress",
        default="bar",
        choices=("bar", "json", "none"),
        help="progress display; json: one JSON object per line on stdout",
    )
    parser.set_defaults(func=run_finetune)

    models = subparsers.add_parser(
        "models",
        help="list, activate or roll back model versions",
        description="Model versions of a models folder, plus the bundled default.",
    )
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list versions (* marks the active one)")
    listing.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_models_list)
    activate = actions.add_parser("activate", help="make a version the active model")
    activate.add_argument(
        "name", metavar="NAME", help="version name as listed (e.g. safnet-v2, safnet-default)"
    )
    activate.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    activate.set_defaults(func=run_models_activate)
    rollback = actions.add_parser("rollback", help="re-activate the previously active version")
    rollback.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    rollback.set_defaults(func=run_models_rollback)


@contextmanager
def cancel_on_signals():
    """Yield an event set by the first SIGINT/SIGTERM; a second one interrupts at once.

    The handlers are installed only in the main thread (Python's rule) and restored on exit.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        print("cancelling (finishing the current batch) ...", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_finetune(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.atomic import write_json_atomic
    from SAFNetSpineLib.finetune import finetune
    from SAFNetSpineLib.finetune.finetune import FinetuneCancelled
    from SAFNetSpineLib.progress import Progress

    progress = Progress(args.progress)
    with cancel_on_signals() as cancel:
        try:
            result = finetune(
                args.store,
                args.from_weights,
                args.models,
                epochs=args.epochs,
                device=args.device,
                val_fraction=args.val_fraction,
                lr=args.lr,
                batch_size=args.batch_size,
                name=args.name,
                seed=args.seed,
                augment=args.augment,
                progress=progress,
                cancel=cancel,
            )
        except FinetuneCancelled:
            if args.progress == "json":
                progress("cancelled", 0.0, "fine-tuning cancelled; store and active model unchanged")
            print(
                "cancelled: fine-tuning stopped; the case store and the active model are unchanged",
                file=sys.stderr,
            )
            return 130
    summary = result.to_dict()
    if args.summary is not None:
        write_json_atomic(summary, args.summary)
    if args.progress == "json":
        progress("summary", 1.0, result.reason, summary=summary)
    else:
        print(f"{result.version}: {result.status} ({result.reason})")
        print(f"  weights: {result.folder}")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.finetune import ModelStore

    store = ModelStore(args.models)
    versions = store.versions()
    active = store.active_name()
    if args.json:
        record = {
            "models_dir": str(store.models_dir),
            "active": active,
            "versions": [v.to_dict() for v in versions],
        }
        print(json.dumps(record, indent=1))
        return 0
    if not versions:
        print(f"no model versions in {store.models_dir} and no bundled default")
        return 0
    print(f"  {'name':<24} {'status':<10} {'Dice before -> after':<22} {'parent':<20} created")
    for v in versions:
        summary = v.summary or {}
        before, after = summary.get("dice_before"), summary.get("dice_after")
        dice = f"{before:.4f} -> {after:.4f}" if before is not None and after is not None else ""
        print(
            f"{'*' if v.active else ' '} {v.name:<24} {v.status:<10} {dice:<22} "
            f"{v.parent_version or '':<20} {v.created}"
        )
    return 0


def run_models_activate(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.finetune import ModelStore

    folder = ModelStore(args.models).activate(args.name)
    print(f"active: {args.name} ({folder})")
    return 0


def run_models_rollback(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.finetune import ModelStore

    store = ModelStore(args.models)
    name = store.rollback()
    print(f"active: {name} ({store.active()})")
    return 0
