"""Progress reporting for long jobs: a text bar for people, JSON lines for the Slicer module.

With ``mode="json"`` every update is one line on stdout::

    {"stage": "inference", "fraction": 0.42, "message": "fold 1 of 2"}

and the Slicer module parses each line as it arrives.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Literal, TextIO

ProgressMode = Literal["bar", "json", "none"]
#: The modes, as ``--progress`` offers them.
PROGRESS_MODES: tuple[str, ...] = ("bar", "json", "none")


class Progress:
    """Report (stage, fraction, message) updates.

    Args:
        mode: "bar" (one rewritten line on stderr), "json" (JSON lines on stdout) or "none".
        stream: Override the output stream (tests).
    """

    def __init__(self, mode: ProgressMode = "bar", stream: TextIO | None = None):
        if mode not in PROGRESS_MODES:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._start = time.perf_counter()

    def __call__(self, stage: str, fraction: float, message: str = "", **extra) -> None:
        """Report that ``stage`` is ``fraction`` (0..1) done; ``extra`` goes into JSON only."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.mode == "json":
            record = {"stage": stage, "fraction": round(fraction, 4), "message": message, **extra}
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
        elif self.mode == "bar":
            filled = int(round(fraction * 30))
            elapsed = time.perf_counter() - self._start
            line = f"\r{stage:<12} [{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% {elapsed:6.1f}s {message}"
            self.stream.write(line[:120].ljust(120))
            if fraction >= 1.0:
                self.stream.write("\n")
                _OPEN_LINES.discard(self.stream)
            else:
                _OPEN_LINES.add(self.stream)
            self.stream.flush()


#: Streams on which a bar line was drawn and not yet ended with a newline.
_OPEN_LINES: set = set()


def end_open_lines() -> None:
    """End any progress bar line left open, so that the next message (an error) starts on its own line."""
    for stream in list(_OPEN_LINES):
        try:
            stream.write("\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stream: nothing to tidy
    _OPEN_LINES.clear()
