"""A child process of the library CLI, read line by line without blocking Slicer.

:class:`ChildJob` starts ``PythonSlicer -m SAFNetSpineLib ...`` with stdout and stderr
merged, reads its lines on a daemon thread into a queue, and hands them out from
:meth:`ChildJob.poll`, which the module calls from a ``qt.QTimer`` on the main thread
(so all MRML and widget work stays on the main thread). ``--progress json`` lines
become :class:`ProgressUpdate` objects; everything else is kept as log text.

Cancelling must stop the whole process tree (a data loader or a CUDA helper may have
spawned children): on POSIX the child leads its own process group and the group gets
SIGTERM, then SIGKILL after a grace period; on Windows ``taskkill /T /F`` ends the tree.

The process started is often not Python itself: ``PythonSlicer`` is a CTK launcher that
starts ``python-real`` and dies on SIGTERM at once (it installs no handler). So the grace
period is measured on the output pipe, which stays open until the last process writing to
it (the real Python) has exited, never on the launcher's exit: the library's "finish the
batch and clean up" handler gets its whole grace period.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Lines of output kept for the error dialog and the log panel.
LOG_LINES_KEPT = 400


@dataclass(frozen=True)
class ProgressUpdate:
    """One ``--progress json`` record.

    Attributes:
        stage: Stage name ("read", "inference", "train", "summary", ...).
        fraction: Overall progress in [0, 1].
        message: Text for people.
        record: The whole JSON object (e.g. the fine-tune ``summary``).
    """

    stage: str
    fraction: float
    message: str
    record: dict = field(default_factory=dict)


def parse_progress_line(line: str) -> ProgressUpdate | None:
    """The progress record in ``line``, or None for any other output."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "stage" not in record or "fraction" not in record:
        return None
    try:
        fraction = min(max(float(record["fraction"]), 0.0), 1.0)
    except (TypeError, ValueError):
        return None
    return ProgressUpdate(str(record["stage"]), fraction, str(record.get("message", "")), record)


class ChildJob:
    """A running library command.

    Args:
        args: Command line, e.g. ``[python, "-m", "SAFNetSpineLib", "segment", ...]``.
        env: Environment of the child (None: inherit).
        cwd: Working folder of the child.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None):
        self.args = [str(a) for a in args]
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.last_progress: ProgressUpdate | None = None
        self.cancel_requested = False
        self.started = time.monotonic()
        self._lines: queue.Queue = queue.Queue()
        self._returncode: int | None = None
        self._output_closed = threading.Event()
        popen_options: dict = {}
        if os.name == "nt":
            popen_options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            popen_options["start_new_session"] = True  # own process group: cancel reaches grandchildren
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
            env=None if env is None else dict(env), cwd=cwd, **popen_options,
        )
        self._reader = threading.Thread(target=self._read_output, name="SAFNetSpine job output", daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self.process.stdout.close()
        self._output_closed.set()  # every process holding the pipe (launcher, real Python, ...) is gone
        self._lines.put(None)  # end of output

    def poll(self) -> list[ProgressUpdate | str]:
        """New output since the last call: progress updates and plain log lines, in order."""
        items: list[ProgressUpdate | str] = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._returncode = self.process.wait()
                continue
            update = parse_progress_line(line)
            if update is None:
                self.log.append(line)
                items.append(line)
            else:
                self.last_progress = update
                items.append(update)
        return items

    @property
    def finished(self) -> bool:
        """True once the process ended and all its output was handed out by :meth:`poll`."""
        return self._returncode is not None

    @property
    def returncode(self) -> int | None:
        """Exit code once :attr:`finished`, else None."""
        return self._returncode

    @property
    def elapsed_s(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def log_tail(self, count: int = 20) -> str:
        """The last ``count`` non-progress output lines (for an error dialog)."""
        return "\n".join(list(self.log)[-count:])

    def cancel(self, grace_s: float = 10.0) -> None:
        """Stop the process tree: a polite signal now, a kill after ``grace_s`` seconds.

        Returns at once; :attr:`finished` turns True when the process is gone.
        """
        self.cancel_requested = True
        if self.process.poll() is not None and os.name == "nt":
            return
        if os.name == "nt":
            # /T ends the child's whole tree; the library writes atomically, so a hard stop loses nothing.
            subprocess.run(["taskkill", "/PID", str(self.process.pid), "/T", "/F"],
                           capture_output=True, creationflags=subprocess.CREATE_NO_WINDOW, check=False)
            return
        self._signal_group(signal.SIGTERM)
        threading.Thread(target=self._kill_after, args=(grace_s,), daemon=True).start()

    def finish_cancel(self, timeout_s: float) -> None:
        """Block until a :meth:`cancel` has ended the process tree: SIGKILL once the output closes or at timeout.

        For Slicer's exit: the kill that :meth:`cancel` leaves to a daemon thread dies with the
        application, so a child ignoring SIGTERM would outlive it.
        """
        if os.name != "nt":  # on Windows taskkill /T /F has already ended the tree
            self._output_closed.wait(timeout=max(timeout_s, 0.0))
            self._signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=max(timeout_s, 0.0) + 1.0)
        except subprocess.TimeoutExpired:
            pass

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)  # the child's pid is its process group id
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_after(self, grace_s: float) -> None:
        # Not process.wait(): a launcher dies at once while the real Python is still cleaning up.
        self._output_closed.wait(timeout=grace_s)
        # Also reaches grandchildren that closed their output and are still running.
        self._signal_group(signal.SIGKILL)

    def wait(self, timeout_s: float | None = None) -> int:
        """Block until the process ends and its output is read (tests, the in-Slicer self-test).

        Raises:
            TimeoutError: if it is still running after ``timeout_s`` seconds.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.finished:
            self.poll()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(self.args[:4])} still running after {timeout_s} s")
            time.sleep(0.02)
        return self._returncode  # type: ignore[return-value]


def python_child_environment(library_root: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child running ``-m SAFNetSpineLib`` from ``library_root``.

    The library folder goes first on PYTHONPATH (the installed extension is not on
    PythonSlicer's path by default) and output is unbuffered so progress arrives live.
    """
    env = dict(os.environ if base is None else base)
    paths = [library_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != library_root]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env
