"""Cancelling long jobs: the cancel hook the library checks, and the signal handler the CLI installs.

Long library functions (``train``, ``cross_validate``, ``finetune``) take ``cancel``:
None, a ``threading.Event`` or a callable returning bool, checked between steps or
batches. The CLI passes the event of :func:`cancel_on_signals`, so SIGINT/SIGTERM (the
Slicer module's Cancel button) stop the job cleanly at the next check.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def is_cancelled(cancel) -> bool:
    """True if ``cancel`` (None, a threading.Event or a callable returning bool) says stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


@contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
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
