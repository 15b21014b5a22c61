"""The error (and warning) types the library raises for bad input and for outputs it cannot write.

Every message names the file (or case) and the problem on one line, so that the CLI
can print it without a traceback and the Slicer module can show it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


def one_line(subject: str | Path | None, problem: str) -> str:
    """"SUBJECT: problem" (or just the problem) with every run of white space made one space."""
    text = problem if subject is None else f"{subject}: {problem}"
    return " ".join(text.split())


class SpineInputError(Exception):
    """Bad input: a file, folder, case or argument the library cannot use.

    Args:
        subject: The file, folder or case the problem is about (may be None).
        problem: What is wrong, in a few words.
    """

    def __init__(self, subject: str | Path | None, problem: str):
        self.subject = None if subject is None else str(subject)
        self.problem = problem
        super().__init__(one_line(subject, problem))


class SpineOutputError(SpineInputError):
    """An output could not be written completely (full disk, read-only folder, immutable file).

    A subclass of :class:`SpineInputError`, so every caller that turns bad input into
    one line (the CLI: exit code 2) does the same for it; the earlier file of that name,
    if any, is untouched.

    Args:
        subject: The file or folder that could not be written.
        problem: The whole one-line problem.
        reason: Just the cause ("no space left on the disk"), for callers that word
            their own message; defaults to ``problem``.
    """

    def __init__(self, subject: str | Path | None, problem: str, reason: str | None = None):
        super().__init__(subject, problem)
        self.reason = reason or problem


class SpineInputWarning(UserWarning):
    """An input the library can use but whose reader had to assume something (e.g. no orientation in a header).

    Emitted with :func:`warnings.warn`; the command line prints it as one ``warning:`` line.

    Args:
        subject: The file the warning is about (may be None).
        problem: What was assumed, in a few words.
    """

    def __init__(self, subject: str | Path | None, problem: str):
        self.subject = None if subject is None else str(subject)
        self.problem = problem
        super().__init__(one_line(subject, problem))
