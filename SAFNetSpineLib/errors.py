"""The one error type the library raises for bad input.

Every message names the file (or case) and the problem on one line, so that the CLI
can print it without a traceback and the Slicer module can show it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class SpineInputError(Exception):
    """Bad input: a file, folder, case or argument the library cannot use.

    Args:
        subject: The file, folder or case the problem is about (may be None).
        problem: What is wrong, in a few words.
    """

    def __init__(self, subject: str | Path | None, problem: str):
        self.subject = None if subject is None else str(subject)
        self.problem = problem
        text = problem if subject is None else f"{subject}: {problem}"
        super().__init__(" ".join(text.split()))
