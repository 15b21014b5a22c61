"""One command line, one subcommand per job.

``python -m SAFNetSpineLib segment|phantom|train|cv|finetune|models|evaluate ...``

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the
parser's ``func(args)`` calls library functions and returns an exit code. Bad input
(:class:`SpineInputError`) becomes one line on stderr and exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from SAFNetSpineLib import __version__
from SAFNetSpineLib.errors import SpineInputError

#: Modules under SAFNetSpineLib.cli that each add one or more subcommands.
SUBCOMMAND_MODULES = ("segment", "phantom", "train", "finetune")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m SAFNetSpineLib",
        description="Level-by-level spine MRI segmentation with SAFNet.",
    )
    parser.add_argument("--version", action="version", version=f"SAFNetSpineLib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"SAFNetSpineLib.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpineInputError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: cancelled", file=sys.stderr)
        return 130
