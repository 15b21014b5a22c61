"""``models``: list, activate or roll back the model versions of a models folder (plus the bundled default)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from SAFNetSpineLib.cli.cases import terminal_text
from SAFNetSpineLib.stores import ModelStore


def add_parser(subparsers) -> None:
    models = subparsers.add_parser(
        "models",
        help="list, activate or roll back model versions",
        description="Model versions of a models folder, plus the bundled default.",
    )
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list versions (* marks the active one)")
    listing.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)
    activate = actions.add_parser("activate", help="make a version the active model")
    activate.add_argument("name", metavar="NAME", help="version name as listed (e.g. safnet-v2, safnet-default)")
    activate.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    activate.set_defaults(func=run_activate)
    rollback = actions.add_parser("rollback", help="re-activate the previously active version")
    rollback.add_argument("--models", required=True, type=Path, metavar="MODELSDIR")
    rollback.set_defaults(func=run_rollback)


def run_list(args: argparse.Namespace) -> int:
    store = ModelStore(args.models)
    removed, left = store.clean_leftovers()
    for path in removed:
        print(f"removed {path}: left by a fine-tune or activation that was killed", file=sys.stderr)
    for path in left:
        print(f"warning: {path}: left by a killed run, or a run still in progress", file=sys.stderr)
    for problem in store.disagreements():  # the version list against active.json (e.g. after a hand edit)
        print(f"warning: {store.models_dir}: {problem}", file=sys.stderr)
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
        if v.status in ("invalid", "missing"):
            print(f"    {terminal_text(summary.get('reason'))}")  # why it cannot be used, under its row
    return 0


def run_activate(args: argparse.Namespace) -> int:
    folder = ModelStore(args.models).activate(args.name)
    print(f"active: {args.name} ({folder})")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    store = ModelStore(args.models)
    name = store.rollback()
    print(f"active: {name} ({store.active()})")
    return 0
