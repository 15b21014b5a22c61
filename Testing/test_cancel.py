"""The cancel hook and the signal handler of long jobs."""

import os
import signal
import threading

from SAFNetSpineLib.cancel import cancel_on_signals, is_cancelled


def test_cancel_hook_forms():
    assert is_cancelled(None) is False
    event = threading.Event()
    assert is_cancelled(event) is False
    event.set()
    assert is_cancelled(event) is True
    assert is_cancelled(lambda: True) is True and is_cancelled(lambda: 0) is False


def test_signal_handler_sets_the_cancel_event_and_is_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with cancel_on_signals() as cancel:
        assert not cancel.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert cancel.is_set()
    assert signal.getsignal(signal.SIGTERM) is previous
