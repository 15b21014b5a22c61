"""The panel's child processes by role, driven by one timer on Slicer's main thread.

Each role ("segment", "finetune", "models", "devices", "measure") runs at most one
:class:`~.jobs.ChildJob` at a time. :meth:`JobBoard.poll` hands every new output item to
the role's ``on_item`` callback and, once the job has ended, calls ``on_done`` with the
job and the context given at start, then the job's ``cleanup`` (removing its temporary
files), which :meth:`JobBoard.stop_all` also runs when the panel closes mid-job. A start on a busy role either is refused or, with
``queue=True``, is remembered (the newest one only) and started when the running job ends:
that is how a second "models list" waits for the first instead of running beside it.

No Qt here: the module owns the ``qt.QTimer`` and calls :meth:`poll` from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .jobs import ChildJob, ProgressUpdate

#: ``on_item(job, item)``: one progress update or log line.
ItemCallback = Callable[[ChildJob, "ProgressUpdate | str"], None]
#: ``on_done(job, context)``: the job has ended and all its output was handed out.
DoneCallback = Callable[[ChildJob, Any], None]
#: ``cleanup()``: removes what the job leaves behind (a temporary copy of the patient image).
Cleanup = Callable[[], None]


@dataclass
class _Handlers:
    """What the caller of :meth:`JobBoard.start` gave for a job, besides its command line."""

    on_done: DoneCallback
    on_item: ItemCallback | None
    context: Any = None
    cleanup: Cleanup | None = None


@dataclass
class _Slot:
    job: ChildJob
    handlers: _Handlers


@dataclass
class _Request:
    args: list[str]
    handlers: _Handlers


@dataclass
class JobBoard:
    """Running jobs by role.

    Args:
        start_job: Starts a child for a command line (the Logic's ``startJob``).
    """

    start_job: Callable[[Sequence[str]], ChildJob]
    _slots: dict[str, _Slot] = field(default_factory=dict)
    _queued: dict[str, _Request] = field(default_factory=dict)

    def start(self, role: str, args: Sequence[str], on_done: DoneCallback, on_item: ItemCallback | None = None,
              context: Any = None, queue: bool = False, cleanup: Cleanup | None = None) -> ChildJob | None:
        """Start ``args`` for ``role``; returns the job, or None when the role is busy.

        With ``queue`` a busy role remembers this request (replacing an older queued one)
        and starts it when the running job ends. ``cleanup`` runs after ``on_done``, or at
        :meth:`stop_all`; when None is returned the caller cleans up.

        Raises:
            OSError: if the process cannot be started (the program is missing).
        """
        return self._start(role, args, _Handlers(on_done, on_item, context, cleanup), queue)

    def _start(self, role: str, args: Sequence[str], handlers: _Handlers, queue: bool) -> ChildJob | None:
        if role in self._slots:
            if queue:
                self._drop_queued(role)
                self._queued[role] = _Request(list(args), handlers)
            return None
        job = self.start_job(args)
        self._slots[role] = _Slot(job, handlers)
        return job

    def busy(self, role: str) -> bool:
        """True while ``role`` has a running job."""
        return role in self._slots

    def job(self, role: str) -> ChildJob | None:
        """The running job of ``role``, if any."""
        slot = self._slots.get(role)
        return slot.job if slot else None

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles with a running job, sorted."""
        return tuple(sorted(self._slots))

    @property
    def active(self) -> bool:
        """True while any job runs or waits in the queue."""
        return bool(self._slots or self._queued)

    def cancel(self, role: str, grace_s: float = 10.0) -> bool:
        """Ask ``role``'s job to stop (see :meth:`ChildJob.cancel`) and drop its queued start."""
        self._drop_queued(role)
        slot = self._slots.get(role)
        if slot is None:
            return False
        slot.job.cancel(grace_s=grace_s)
        return True

    def stop_all(self, grace_s: float = 2.0) -> None:
        """Stop everything before returning (Slicer is closing or the module reloads): no process, no file left.

        Every process tree gets SIGTERM, then SIGKILL once its output closes or ``grace_s``
        seconds after the stop began; then every job's ``cleanup`` runs (``on_done`` does not:
        the panel is going away). Queued starts are dropped.
        """
        for role in list(self._queued):
            self._drop_queued(role)
        slots = list(self._slots.values())
        self._slots.clear()
        for slot in slots:
            slot.job.cancel(grace_s=grace_s)
        deadline = time.monotonic() + grace_s
        for slot in slots:
            try:
                slot.job.finish_cancel(deadline - time.monotonic())
            finally:
                if slot.handlers.cleanup is not None:
                    slot.handlers.cleanup()

    def _drop_queued(self, role: str) -> None:
        request = self._queued.pop(role, None)
        if request is not None and request.handlers.cleanup is not None:
            request.handlers.cleanup()

    def poll(self) -> bool:
        """Hand out new output, finish ended jobs, start queued ones; True while anything is left."""
        for role, slot in list(self._slots.items()):
            handlers = slot.handlers
            for item in slot.job.poll():
                if handlers.on_item is not None:
                    handlers.on_item(slot.job, item)
            if slot.job.finished:
                del self._slots[role]
                try:
                    handlers.on_done(slot.job, handlers.context)
                finally:
                    if handlers.cleanup is not None:
                        handlers.cleanup()
                    request = self._queued.pop(role, None)
                    if request is not None:
                        self._start(role, request.args, request.handlers, queue=False)
        return self.active
