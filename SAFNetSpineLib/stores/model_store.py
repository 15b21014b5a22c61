"""`ModelStore`: versioned fine-tuned weights, the active pointer, and rollback.

Layout::

    MODELS/
      active.json            {"active": "safnet-v2", "history": [null, "safnet-v1"], "pending": null, ...}
      safnet-v1/             a weights folder (model.safetensors + model.json)
        finetune.json        how it was made and whether it was promoted or kept as candidate
      safnet-v2/
      .tmp-*                 unfinished work (ignored; left by a crash)
      .lock                  lock file: one process at a time changes active.json

``"active": null`` (or no ``active.json``) means the bundled default weights.
``history`` lists the previously active versions, most recent last, so that
:meth:`ModelStore.rollback` can step back one activation at a time. Version folders
appear by an atomic folder rename and are never modified or deleted afterwards.

Every change of ``active.json`` happens under :meth:`ModelStore.lock`. A fine-tuning run
publishes its version with :meth:`ModelStore.publishing`, a compare-and-swap: the version
becomes active only if the model it was measured against is still the active one when
the lock is held; a run that started from a model another run has since replaced stays a
candidate (its evidence says nothing about the replacement).
Every file is read as untrusted data: a malformed ``finetune.json`` marks its version
"invalid" without hiding the others, and ``active.json`` may only name a folder
directly inside the models folder; ``models activate`` refuses a folder that links out of
it or whose tensor file no longer matches its checksum.

Publishing a promoted version is crash-consistent. Under the lock: (1) the caller writes the
version into ``.tmp-NAME-*``; (2) ``active.json`` records ``"pending": NAME`` (a rename);
(3) the folder is renamed to ``NAME``; (4) ``active.json`` names it active (a rename). A
reader resolves a pending name whose folder exists as the active version, and ignores one
whose folder does not, so ``models list`` and ``active.json`` agree after a kill at any
step; the next holder of the lock writes the resolved pointer down and removes what the
kill left (``.tmp-NAME-*``, ``.tmp-active.json.*``), :meth:`ModelStore.recover`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from SAFNetSpineLib.atomic import (
    TEMP_PREFIX,
    exclusive_lock,
    file_sha256,
    os_error_reason,
    publish_folder,
    write_json_atomic,
)
from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.json_files import read_json_object
from SAFNetSpineLib.stores.versions import (
    SUMMARY_FILE,
    ModelVersion,
    natural_key,
    read_summary,
    version_number,
)

ACTIVE_FILE = "active.json"
#: Lock file in the models folder, held while ``active.json`` is read and rewritten.
LOCK_FILE = ".lock"
#: In a fine-tuning work folder: the process that owns it (so a later run can clean up after a kill).
WORK_OWNER_FILE = "owner.json"
#: A version (folder) name: starts with a letter or digit, at most 100 characters.
VERSION_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Publication:
    """A version being published (:meth:`ModelStore.publishing`).

    Attributes:
        name: Its version name, ``<base>-vN``.
        folder: Temporary folder to fill with the weights folder and its ``finetune.json``.
        activates: True when it becomes the active model (the compare-and-swap succeeded).
        active: The model active when the lock was taken (:meth:`ModelStore.active_name`).
    """

    name: str
    folder: Path
    activates: bool
    active: str


class ModelStore:
    """Versions in ``models_dir`` plus the bundled default.

    Args:
        models_dir: Folder of fine-tuned versions (created when first written).
        bundled_dir: The bundled default weights folder; defaults to
            :func:`SAFNetSpineLib.weights.default_weights_dir`.
    """

    def __init__(self, models_dir: str | Path, bundled_dir: str | Path | None = None):
        from SAFNetSpineLib.weights import default_weights_dir

        self.models_dir = Path(models_dir)
        if self.models_dir.exists() and not self.models_dir.is_dir():
            raise SpineInputError(self.models_dir, "models path exists but is not a folder")
        self.bundled_dir = Path(bundled_dir) if bundled_dir is not None else default_weights_dir()

    @property
    def bundled_name(self) -> str:
        """Name under which the bundled default is listed and activated."""
        return self.bundled_dir.name

    # ---- the active pointer -------------------------------------------------------

    def _read_pointer(self) -> dict:
        """{"active", "history", "pending"} with a pending activation resolved (see the module)."""
        path = self.models_dir / ACTIVE_FILE
        if not path.is_file():
            return {"active": None, "history": [], "pending": None}
        data = read_json_object(path, "active-model pointer")
        active, history, pending = data.get("active"), data.get("history", []), data.get("pending")
        if not isinstance(history, list):
            raise SpineInputError(path, "active-model pointer's 'history' is not a list")
        for name in [active, *history, pending]:
            if name is None:
                continue
            if not isinstance(name, str):
                raise SpineInputError(path, "active-model pointer holds non-text version names")
            if not VERSION_NAME_PATTERN.fullmatch(name):
                raise SpineInputError(
                    path, f"names '{name[:120]}', which is not a version folder inside {self.models_dir}; "
                    "activate a version with `models activate`",
                )
        if pending is not None and pending != active and (self.models_dir / pending).is_dir():
            # Killed between the version's rename and the pointer's: the activation happened.
            return {"active": pending, "history": [*history, active], "pending": pending}
        return {"active": active, "history": list(history), "pending": pending}

    def _write_pointer(self, active: str | None, history: list[str | None], pending: str | None = None) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "active": active,
            "history": history,
            "pending": pending,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(record, self.models_dir / ACTIVE_FILE)

    def check_writable(self) -> None:
        """Create the models folder if needed and prove a file can be written in it (before any long work).

        Raises:
            SpineOutputError: naming the folder (under a file, read-only, full disk).
        """
        if self.models_dir.exists() and not self.models_dir.is_dir():
            raise SpineOutputError(self.models_dir, "models path exists but is not a folder")
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=self.models_dir) as probe:
                probe.write(b"0")
        except OSError as error:
            raise SpineOutputError(self.models_dir, f"cannot write in the models folder "
                                                    f"({os_error_reason(error)})") from None

    def leftovers(self) -> list[Path]:
        """What a killed publish or activation left: ``.tmp-*`` entries other than fine-tuning work folders."""
        if not self.models_dir.is_dir():
            return []
        return sorted(p for p in self.models_dir.iterdir()
                      if p.name.startswith(TEMP_PREFIX) and not p.name.startswith(f"{TEMP_PREFIX}finetune-"))

    def recover(self) -> list[Path]:
        """Finish or undo a publish a kill interrupted, and remove its leftovers; the caller holds the lock.

        Only a holder of the lock writes ``active.json`` or version temporary folders, so
        whatever of that kind exists now was left by a process that died.

        Returns:
            The removed leftovers.
        """
        pointer = self._read_pointer()
        if pointer["pending"] is not None:
            self._write_pointer(pointer["active"], pointer["history"])
        removed = []
        for path in self.leftovers():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(OSError):
                    path.unlink()
            if not path.exists():
                removed.append(path)
        return removed

    def clean_leftovers(self) -> tuple[list[Path], list[Path]]:
        """:meth:`recover` if the lock is free now, and remove killed runs' work folders (they hold
        preprocessed patient images); (removed, left: lock busy or folder read-only)."""
        removed = self.remove_stale_work_folders()
        if not self.leftovers() and not (self.models_dir / ACTIVE_FILE).is_file():
            return removed, []
        try:
            with exclusive_lock(self.models_dir / LOCK_FILE, timeout_s=0.0):
                removed += self.recover()
        except SpineOutputError:
            pass  # read-only models folder, or another process holds the lock: report only
        return removed, self.leftovers()

    def active_name(self) -> str:
        """Name of the active version (the bundled default's name when none is set)."""
        active = self._read_pointer()["active"]
        return self.bundled_name if active is None else active

    def active(self) -> Path:
        """The weights folder segmentation and fine-tuning should start from.

        Raises:
            SpineInputError: if ``active.json`` names a version whose folder is gone.
        """
        active = self._read_pointer()["active"]
        if active is None:
            return self.bundled_dir
        folder = self.models_dir / active
        if not folder.is_dir():
            raise SpineInputError(
                self.models_dir / ACTIVE_FILE,
                f"active version '{active}' has no folder; activate another version",
            )
        if folder.resolve().parent != self.models_dir.resolve():
            raise SpineInputError(
                self.models_dir / ACTIVE_FILE,
                f"active version '{active}' links outside {self.models_dir}; activate another version",
            )
        return folder

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the models folder's lock (other processes' activations wait); not re-entrant."""
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SpineInputError(self.models_dir, f"cannot create the models folder ({error.strerror})") from None
        with exclusive_lock(self.models_dir / LOCK_FILE):
            self.recover()
            yield

    def folder_of(self, name: str) -> Path:
        """The weights folder of a version name (or the bundled default's name).

        Raises:
            SpineInputError: for an unknown name or a folder that is not a valid weights folder.
        """
        from SAFNetSpineLib.weights import read_manifest

        if name == self.bundled_name and not (self.models_dir / name).is_dir():
            folder = self.bundled_dir
        elif VERSION_NAME_PATTERN.fullmatch(name) and (self.models_dir / name).is_dir():
            folder = self.models_dir / name
            if folder.is_symlink() or folder.resolve().parent != self.models_dir.resolve():
                raise SpineInputError(folder, f"links outside {self.models_dir}; only a version folder "
                                              "inside the models folder can be activated")
        else:
            known = ", ".join(v.name for v in self.versions()) or "none"
            raise SpineInputError(f"model {name}", f"no such version in {self.models_dir} (known: {known})")
        read_manifest(folder)
        return folder

    def _check_tensors(self, folder: Path) -> None:
        """Refuse weights whose tensor file no longer matches the checksum in their manifest."""
        from SAFNetSpineLib.weights import MANIFEST_FILE, TENSOR_FILE, read_manifest

        if read_manifest(folder).sha256 != file_sha256(folder / TENSOR_FILE):
            raise SpineInputError(folder / TENSOR_FILE, f"checksum does not match {MANIFEST_FILE} (file changed "
                                                        "or corrupt); not activated")

    def activate(self, name: str) -> Path:
        """Make ``name`` the active version (the previous one goes onto the rollback history).

        Returns:
            The activated weights folder.
        """
        folder = self.folder_of(name)
        self._check_tensors(folder)
        with self.lock():
            self._point_to(folder, name)
        return folder

    def _point_to(self, folder: Path, name: str) -> None:
        """Rewrite ``active.json`` to ``name`` (resolving any pending activation); the caller holds the lock."""
        pointer = self._read_pointer()
        new = None if folder == self.bundled_dir else name
        if new != pointer["active"]:
            self._write_pointer(new, [*pointer["history"], pointer["active"]])
        elif pointer["pending"] is not None:
            self._write_pointer(pointer["active"], pointer["history"])

    @contextmanager
    def publishing(self, base: str, activate_if_active: str | None = None) -> Iterator[Publication]:
        """Publish the next ``<base>-vN``: the caller fills ``publication.folder`` inside the block.

        Everything happens in one hold of the lock: the name is chosen and the active model is
        compared first, so the version's own files can record whether it became active (the
        folder is never changed after its rename). When the block ends normally the folder is
        renamed into place and, if ``publication.activates``, made active (see the module for
        the crash-consistent order). An exception in the block publishes nothing.

        Args:
            base: Version family name ("safnet").
            activate_if_active: Activate the new version only if this model (a name as
                :meth:`active_name` gives it) is still the active one: a compare-and-swap.
                None publishes a candidate.

        Yields:
            The :class:`Publication`.

        Raises:
            SpineOutputError: if a folder of that name appeared meanwhile (written without the lock).
        """
        with self.lock():
            current = self.active_name()
            activates = activate_if_active is not None and current == activate_if_active
            name = self.next_version_name(base)
            publication = Publication(name, self.make_temp_folder(name), activates, current)
            pointer, intended = self._read_pointer(), False
            try:
                yield publication
                if activates:  # step 2: the intent, before the folder appears
                    self._write_pointer(pointer["active"], pointer["history"], pending=name)
                    intended = True
                try:
                    publish_folder(publication.folder, self.models_dir / name)
                except FileExistsError:
                    raise SpineOutputError(self.models_dir / name, "appeared while this version was being "
                                                                   "published; run again") from None
                intended = False  # the folder is in place: the pending name now reads as active
                if activates:
                    self._point_to(self.models_dir / name, name)
            except BaseException:
                if intended:  # undo it (the name may belong to a folder that is not this version)
                    with suppress(SpineInputError, OSError):
                        self._write_pointer(pointer["active"], pointer["history"])
                raise
            finally:
                if publication.folder.exists():
                    shutil.rmtree(publication.folder, ignore_errors=True)

    def rollback(self) -> str:
        """Re-activate the previously active version; returns its name.

        Raises:
            SpineInputError: when there is no earlier version, or its folder is gone.
        """
        with self.lock():
            pointer = self._read_pointer()
            if not pointer["history"]:
                raise SpineInputError(self.models_dir, "no earlier active model to roll back to")
            previous = pointer["history"][-1]
            folder = self.bundled_dir if previous is None else self.models_dir / previous
            if not folder.is_dir():
                raise SpineInputError(folder, "cannot roll back: the previously active version's folder is gone")
            self._write_pointer(previous, pointer["history"][:-1])
        return self.bundled_name if previous is None else previous

    def disagreements(self) -> list[str]:
        """Where the version list and ``active.json`` disagree (empty when they agree); ``models list`` warns of each.

        The version flagged active must be the one ``active.json`` names, a version whose
        summary says "promoted" must be active or on the history, and none may be "missing"
        or "invalid".
        """
        problems = []
        versions = self.versions()
        active = self.active_name()
        flagged = [v.name for v in versions if v.active]
        if flagged != [active]:
            problems.append(f"listed active {flagged}, {ACTIVE_FILE} says {active}")
        pointer = self._read_pointer()
        activated = {pointer["active"], *pointer["history"]}
        for v in versions:
            if v.status == "promoted" and v.name != active and v.name not in activated:
                problems.append(f"{v.name} says promoted but was never activated")
            if v.status in ("missing", "invalid"):
                problems.append(f"{v.name} is {v.status}: {(v.summary or {}).get('reason')}")
        return problems

    # ---- versions ----------------------------------------------------------------

    def versions(self) -> list[ModelVersion]:
        """The bundled default (if present), every version folder in name order, and a missing active one.

        A folder whose manifest or summary is damaged is listed as "invalid" with the
        reason; a version ``active.json`` names whose folder is gone is listed last as
        "missing".
        """
        from SAFNetSpineLib.weights import MANIFEST_FILE

        active = self._read_pointer()["active"]
        found = []
        if (self.bundled_dir / MANIFEST_FILE).is_file():
            found.append(self._describe(self.bundled_dir, self.bundled_name, "bundled", active is None))
        if self.models_dir.is_dir():
            folders = sorted(
                (p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: natural_key(p.name),
            )
            for folder in folders:
                if (folder / MANIFEST_FILE).is_file() or (folder / SUMMARY_FILE).is_file():
                    found.append(self._describe(folder, folder.name, None, active == folder.name))
        if active is not None and not any(v.name == active and v.folder != self.bundled_dir for v in found):
            held = "holds no weights" if (self.models_dir / active).is_dir() else "is gone"
            reason = f"{ACTIVE_FILE} names this version but its folder {held}; activate another version"
            found.append(ModelVersion(active, self.models_dir / active, "missing", True, "", None, "", "",
                                      summary={"reason": reason}))
        return found

    def _describe(self, folder: Path, name: str, status: str | None, active: bool) -> ModelVersion:
        from SAFNetSpineLib.weights import read_manifest

        def invalid(reason: str) -> ModelVersion:
            # One damaged folder must not hide the others from the list.
            return ModelVersion(name, folder, "invalid", active, "", None, "", "", summary={"reason": reason})

        try:
            manifest = read_manifest(folder)
        except SpineInputError as error:
            return invalid(str(error))
        summary = None
        if (folder / SUMMARY_FILE).is_file():
            try:
                summary = read_summary(folder / SUMMARY_FILE)
            except SpineInputError as error:
                return invalid(str(error))
        if status is None:
            status = summary["status"] if summary is not None else "imported"
        return ModelVersion(
            name=name,
            folder=folder,
            status=status,
            active=active,
            version=manifest.version,
            parent_version=manifest.parent_version,
            created=manifest.created,
            architecture=manifest.architecture,
            metrics=dict(manifest.metrics),
            summary=summary,
        )

    def next_version_name(self, base: str) -> str:
        """``<base>-vN`` with N one more than the highest existing (temporary folders excluded)."""
        if not VERSION_NAME_PATTERN.fullmatch(base):
            raise SpineInputError(f"model name {base}", "use letters, digits, '.', '_' or '-'")
        numbers = [0]
        if self.models_dir.is_dir():
            numbers += [
                n for p in self.models_dir.iterdir() if (n := version_number(p.name, base)) is not None
            ]
        return f"{base}-v{max(numbers) + 1}"

    def make_temp_folder(self, purpose: str) -> Path:
        """A fresh ``.tmp-<purpose>-*`` folder inside the models folder (same file system)."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{purpose}-", dir=self.models_dir))

    def make_work_folder(self) -> Path:
        """A ``.tmp-finetune-*`` folder for one run's training files, marked with its owner process."""
        folder = self.make_temp_folder("finetune")
        write_json_atomic({"pid": os.getpid(), "host": socket.gethostname()}, folder / WORK_OWNER_FILE)
        return folder

    def remove_stale_work_folders(self) -> list[Path]:
        """Delete work folders left by fine-tuning runs that were killed (their process is gone).

        Only folders whose owner ran on this host and no longer exists are removed, so a
        run in progress (in another process) keeps its files.

        Returns:
            The removed folders.
        """
        removed = []
        if not self.models_dir.is_dir():
            return removed
        for folder in self.models_dir.glob(f"{TEMP_PREFIX}finetune-*"):
            try:
                owner = json.loads((folder / WORK_OWNER_FILE).read_text(encoding="utf-8"))
                pid, host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours to judge
            if host == socket.gethostname() and pid != os.getpid() and not _process_exists(pid):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def _process_exists(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process on Windows; keep the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or the platform cannot tell: keep its folder
    return True
