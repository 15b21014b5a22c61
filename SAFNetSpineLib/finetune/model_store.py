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

Every change of ``active.json`` happens under :meth:`ModelStore.lock`, and a
fine-tuning run promotes its result with :meth:`ModelStore.promote`, which re-checks
under that lock which model is active *now*: a run that started from a model another
run has since replaced is compared with the replacement, not with its starting point.
Every file is read as untrusted data: a malformed ``finetune.json`` marks its version
"invalid" without hiding the others, and ``active.json`` may only name a folder
directly inside the models folder; ``models activate`` refuses a folder that links out of
it or whose tensor file no longer matches its checksum.

Publishing a promoted version is crash-consistent. Under the lock: (1) the version is
written into ``.tmp-NAME-*``; (2) ``active.json`` records ``"pending": NAME`` (a rename);
(3) the folder is renamed to ``NAME``; (4) ``active.json`` names it active (a rename). A
reader resolves a pending name whose folder exists as the active version, and ignores one
whose folder does not, so ``models list`` and ``active.json`` agree after a kill at any
step; the next holder of the lock writes the resolved pointer down and removes what the
kill left (``.tmp-NAME-*``, ``.tmp-active.json.*``), :meth:`ModelStore.recover`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
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
from SAFNetSpineLib.finetune.versions import (  # noqa: F401  (SUMMARY_FILE, version_number: re-exported)
    SUMMARY_FILE,
    SUMMARY_STATUSES,
    ModelVersion,
    Promotion,
    natural_key,
    read_summary,
    version_number,
)
from SAFNetSpineLib.json_files import read_json_object

ACTIVE_FILE = "active.json"
#: Lock file in the models folder, held while ``active.json`` is read and rewritten.
LOCK_FILE = ".lock"
#: In a fine-tuning work folder: the process that owns it (so a later run can clean up after a kill).
WORK_OWNER_FILE = "owner.json"
#: A version (folder) name: starts with a letter or digit, at most 100 characters.
VERSION_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


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

    def compare_with_active(
        self,
        score: float,
        started_from: str | None,
        score_of_active: Callable[[str, Path], float] | None = None,
        tolerance: float = 1e-9,
    ) -> Promotion:
        """Would a model scoring ``score`` be at least as good as the model active *now*? Call under :meth:`lock`.

        The caller has already found its model at least as good as ``started_from``. If
        that is still the active model, the answer is yes. Otherwise (another run
        activated a model meanwhile, or the caller compared with other weights) the
        active model is scored with ``score_of_active``, on the caller's validation
        cases with the caller's code, and the answer is ``score >= its score - tolerance``.

        Args:
            score: The new model's validation score (e.g. mean Dice, higher is better).
            started_from: Name of the version active when the run started
                (:meth:`active_name` then), if ``score`` was compared with it; None when
                the run compared with other weights, so the active model is always scored.
            score_of_active: ``score_of_active(active name, active folder)``; None
                answers no whenever the active model is not ``started_from``.
            tolerance: Score difference that still counts as "not worse".

        Returns:
            The decision (``active`` is the model active now) and why.
        """
        current = self.active_name()
        if current == started_from:
            return Promotion(True, current, f"{current} is still the active model")
        changed = "" if started_from is None else f", activated while this run trained from {started_from}"
        if score_of_active is None:
            if started_from is None:
                return Promotion(False, current, f"it was compared with other weights than the active model "
                                                 f"{current}; kept as candidate")
            return Promotion(False, current, f"the active model is now {current}{changed}; kept as candidate")
        try:
            current_score = float(score_of_active(current, self.active()))
        except SpineInputError as error:
            return Promotion(False, current, f"the active model {current} could not be scored ({error}); "
                                             "kept as candidate")
        if math.isfinite(current_score) and score < current_score - tolerance:
            return Promotion(False, current, f"the active model {current}{changed}, scores {current_score:.4f} "
                                             f"> {score:.4f}; kept as candidate")
        return Promotion(True, current, f"{score:.4f} >= {current_score:.4f} of the active model {current}{changed}")

    def promote(
        self,
        name: str,
        score: float,
        started_from: str | None,
        score_of_active: Callable[[str, Path], float] | None = None,
        tolerance: float = 1e-9,
    ) -> Promotion:
        """Activate the published version ``name`` if :meth:`compare_with_active` says so, all under the lock.

        Returns:
            The decision; ``active`` is the model active after the call.
        """
        folder = self.folder_of(name)
        with self.lock():
            decision = self.compare_with_active(score, started_from, score_of_active, tolerance)
            if decision.promoted:
                self._point_to(folder, name)
                return replace(decision, active=name)
            return decision

    def publish_and_promote(
        self,
        base: str,
        write: Callable[[Path, str, Promotion], None],
        score: float,
        started_from: str | None,
        score_of_active: Callable[[str, Path], float] | None = None,
        eligible: bool = True,
        tolerance: float = 1e-9,
    ) -> tuple[str, Promotion]:
        """Decide, publish the next ``<base>-vN`` and activate it if promoted, in one hold of the lock.

        Deciding first lets the version's own files (``finetune.json``) record the final
        status: the folder is never changed after its rename.

        Args:
            base: Version family name.
            write: ``write(folder, name, decision)`` fills the temporary version folder.
            score, started_from, score_of_active, tolerance: See :meth:`compare_with_active`.
            eligible: False when the run already lost against its starting model; it is
                then published as a candidate without scoring anything.

        Returns:
            (version name, decision).
        """
        with self.lock():
            if eligible:
                decision = self.compare_with_active(score, started_from, score_of_active, tolerance)
            else:
                decision = Promotion(False, self.active_name(), "kept as candidate")
            before_rename = None
            if decision.promoted:
                pointer = self._read_pointer()

                def before_rename(version: str) -> None:  # step 2: the intent, before the folder appears
                    self._write_pointer(pointer["active"], pointer["history"], pending=version)

            try:
                name = self.publish_version(base, lambda folder, version: write(folder, version, decision),
                                            before_rename)
            except BaseException:
                if decision.promoted:
                    with suppress(SpineInputError, OSError):
                        self.recover()  # a pending name without its folder: undo the intent
                raise
            if decision.promoted:
                self._point_to(self.models_dir / name, name)
                decision = replace(decision, active=name)
        return name, decision

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
        """Where the version list and ``active.json`` disagree (empty when they agree).

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

    def publish_version(self, base: str, write: Callable[[Path, str], None],
                        before_rename: Callable[[str], None] | None = None) -> str:
        """Create the next free ``<base>-vN`` folder atomically; returns its name.

        Args:
            base: Version family name ("safnet").
            write: ``write(folder, name)`` fills a temporary folder with the weights
                folder of version ``name``; it is renamed into place only when complete.
                If another process takes the name meanwhile, it is called again with the
                next name.
            before_rename: Called with the name just before the folder's rename.
        """
        for _ in range(100):
            name = self.next_version_name(base)
            temp = self.make_temp_folder(name)
            try:
                write(temp, name)
                if before_rename is not None:
                    before_rename(name)
                publish_folder(temp, self.models_dir / name)
                return name
            except FileExistsError:
                continue
            finally:
                if temp.exists():
                    shutil.rmtree(temp, ignore_errors=True)
        raise SpineInputError(self.models_dir, f"could not find a free version name for '{base}'")


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
