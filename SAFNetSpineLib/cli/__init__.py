"""One command line, one subcommand per job.

``python -m SAFNetSpineLib segment|phantom|train|cv|evaluate|finetune|models|measure|relabel|cases ...``

Each subcommand lives in its own module ``cli/NAME.py`` exposing ``add_parser(subparsers)``
and listed in :data:`SUBCOMMAND_MODULES`; the parser's ``func(args)`` calls library
functions and returns an exit code. Shared options (``--progress``, flags generated from
a config dataclass) come from :mod:`.common`. Bad input
(:class:`SpineInputError`) becomes one line on stderr and exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from SAFNetSpineLib import __version__
from SAFNetSpineLib.errors import SpineInputError

#: Modules under SAFNetSpineLib.cli that each add one or more subcommands.
SUBCOMMAND_MODULES = ("segment", "phantom", "train", "cv", "evaluate", "finetune", "models", "measure", "relabel", "cases")


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
    _accept_debug_anywhere(parser)
    return parser


def _accept_debug_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--debug`` follow the subcommand too (``segment ... --debug``), at every level."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if "--debug" not in sub._option_string_actions:
                    # SUPPRESS: when absent after the subcommand, the value given before it stays.
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                     help="show full tracebacks on errors")
                _accept_debug_anywhere(sub)


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the process exit code.

    Exit codes: 0 done, 2 bad input, an output that could not be written or memory run out
    (one line on stderr), 130 cancelled (Ctrl-C), 143 terminated (SIGTERM); with ``--debug`` the
    traceback is shown instead of the line.
    """
    from SAFNetSpineLib.cli.common import show_input_warnings_in_one_line
    from SAFNetSpineLib.progress import end_open_lines

    args = build_parser().parse_args(argv)
    show_input_warnings_in_one_line()
    previous = _install_sigterm()
    try:
        return int(args.func(args) or 0)
    except (SpineInputError, MemoryError, KeyboardInterrupt, Terminated) as error:
        if args.debug:
            raise
        message, code = _failure(error)
        end_open_lines()  # never glue the error to a progress bar
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _failure(error: BaseException) -> tuple[str, int]:
    """The one line (after ``error:``) and the exit code of an error that ends a command."""
    if isinstance(error, SpineInputError):
        return str(error), 2
    if isinstance(error, MemoryError):  # the input checks estimate memory from the header; this is the fallback
        return "out of memory; close other programs or give a smaller (cropped) image", 2
    if isinstance(error, KeyboardInterrupt):
        return "cancelled", 130
    return "terminated (SIGTERM); files already written are complete, the one in progress was not written", 143


def _install_sigterm():
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only); returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)
