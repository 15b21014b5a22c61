"""Options several subcommands share: ``--progress``, ``--level-hint``, ``--turns``, file-name options, flags
generated from a config dataclass, and how input warnings are shown.

A config dataclass (``TrainConfig``, ``FinetuneConfig``) is the one place its defaults and
meanings are written: :func:`add_config_flags` gives every field a long flag
(``batch_size`` -> ``--batch-size``) whose help is the field's line in the class's
Google-style ``Attributes:`` section, and :func:`config_changes` collects the flags that
were given, so that unset flags keep the dataclass defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import warnings
from collections.abc import Collection

from SAFNetSpineLib.errors import SpineInputError, SpineInputWarning
from SAFNetSpineLib.progress import PROGRESS_MODES


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """The one ``--progress`` option (see :class:`SAFNetSpineLib.progress.Progress`)."""
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                        help="progress as a bar on stderr, JSON lines on stdout (one object per line, "
                             "see docs/INTERFACES.md), or none (default bar)")


def add_turns_option(parser: argparse.ArgumentParser) -> None:
    """The one ``--turns on|off`` option (see :mod:`SAFNetSpineLib.inference.turns`); ``args.turns`` is "on" or "off"."""
    from SAFNetSpineLib.inference.turns import DEFAULT_TURNS, TURN_ANGLES_DEG

    angles = ", ".join(f"{a:+.0f}" for a in TURN_ANGLES_DEG)
    parser.add_argument("--turns", choices=("on", "off"), default="on" if DEFAULT_TURNS else "off",
                        help=f"also run the network on the image turned in its sagittal plane ({angles} deg) and "
                             "read each part of the spine from the pass that stands it upright: steep endplates "
                             f"come out less flattened, at {len(TURN_ANGLES_DEG) + 1} passes' cost "
                             f"(default {'on' if DEFAULT_TURNS else 'off'})")


def add_fit_fov_option(parser: argparse.ArgumentParser) -> None:
    """The one ``--fit-fov on|off`` option (see :mod:`SAFNetSpineLib.inference.field_of_view` and
    :mod:`~SAFNetSpineLib.inference.windows`); ``args.fit_fov`` is "on" or "off"."""
    from SAFNetSpineLib.inference.field_of_view import DEFAULT_FIT_FOV

    default = "on" if DEFAULT_FIT_FOV else "off"
    parser.add_argument("--fit-fov", choices=("on", "off"), default=default,
                        help="on: an in-plane field of view at most 0.75 times the smallest of the training scans' "
                             "is widened to that size (the scan centred, background around), and one at least "
                             "1.15 times the largest is segmented in windows of that size, keeping the one with "
                             "the sacrum, so the vertebrae have a size the network learnt; off: the grid fits the "
                             f"whole scan (default {default})")


def level_hint_option(text: str | None):
    """The parsed ``--level-hint`` (a :class:`~SAFNetSpineLib.inference.naming.LevelHint`), None when not given.

    Raises:
        SpineInputError: an empty or blank value (it would otherwise be ignored), or one
            :func:`~SAFNetSpineLib.inference.naming.parse_level_hint` refuses.
    """
    if text is None:
        return None
    if not text.strip():
        raise SpineInputError(None, "--level-hint is empty; give NAME=R,A,S (e.g. L3=12.5,-30,40) or leave it out")
    from SAFNetSpineLib.inference.naming import parse_level_hint

    return parse_level_hint(text)


def check_plain_name(flag: str, value: str | None) -> None:
    """Refuse a file-name option that is not a plain name in the output folder (``../x``, ``a/b``, ``..``).

    Raises:
        SpineInputError: naming the option and the value.
    """
    if value is None:
        return
    separators = [sep for sep in (os.sep, os.altsep, "/", "\\") if sep]
    if value.strip() in ("", ".", "..") or any(sep in value for sep in separators) or "\0" in value:
        raise SpineInputError(None, f"{flag} {value!r}: must be a plain file name, without folders "
                                    "(outputs stay in -o)")


def show_input_warnings_in_one_line() -> None:
    """Print each :class:`SpineInputWarning` as one ``warning: FILE: problem`` line on stderr.

    Other warnings are shown as Python shows them. Installing twice is harmless.
    """
    shown = warnings.showwarning
    if getattr(shown, "spine_one_line", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SpineInputWarning):
            from SAFNetSpineLib.progress import end_open_lines

            end_open_lines()  # never glue the warning to a progress bar
            print(f"warning: {message}", file=file or sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.spine_one_line = True
    warnings.showwarning = show


def attribute_docs(cls: type) -> dict[str, str]:
    """{field name: description} from the ``Attributes:`` section of a class's docstring."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        return docs
    current = None
    for line in lines[lines.index("Attributes:") + 1:]:
        if not line.strip():
            break
        depth = len(line) - len(line.lstrip())
        name, sep, text = line.strip().partition(":")
        if depth <= 4 and sep and name.isidentifier():
            current = name
            docs[name] = text.strip()
        elif current is not None:
            docs[current] += " " + line.strip()
    return docs


def add_config_flags(group, cls: type, skip: Collection[str] = (), pairs: Collection[str] = (),
                     defaults: object | None = None) -> None:
    """A long flag per field of dataclass ``cls`` (except ``skip``); all default to None (= not given).

    Args:
        group: Parser or argument group to add to.
        cls: The config dataclass.
        skip: Fields that get no generated flag (the caller adds its own, or none).
        pairs: Fields holding a (low, high) pair of floats: ``--flag LO HI``.
        defaults: An instance of ``cls`` whose values the help shows as defaults (default: the class's).
    """
    docs = attribute_docs(cls)
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        flag = "--" + item.name.replace("_", "-")
        default = item.default if defaults is None else getattr(defaults, item.name)
        doc = docs.get(item.name, "").rstrip(".")
        help_text = (f"{doc} (default {default})" if doc else f"default {default}").replace("%", "%%")
        if item.name in pairs:
            group.add_argument(flag, type=float, nargs=2, metavar=("LO", "HI"), default=None, help=help_text)
        elif isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag, type=str if default is None else type(default), default=None, help=help_text)


def config_changes(args: argparse.Namespace, cls: type, skip: Collection[str] = (),
                   pairs: Collection[str] = ()) -> dict:
    """{field: value} for every generated flag of :func:`add_config_flags` that was given."""
    changes = {}
    for item in dataclasses.fields(cls):
        value = getattr(args, item.name, None)
        if item.name not in skip and value is not None:
            changes[item.name] = tuple(value) if item.name in pairs else value
    return changes
