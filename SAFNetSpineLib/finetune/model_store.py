"""`ModelStore`: versioned fine-tuned weights, the active pointer, and rollback.

Layout::

    MODELS/
      active.json            {"active": "safnet-v2", "history": [null, "safnet-v1"], ...}
      safnet-v1/             a weights folder (model.safetensors + model.json)
        finetune.json        how it was made and whether it was promoted or kept as candidate
      safnet-v2/
      .tmp-*                 unfinished work (ignored; left by a crash)

``"active": null`` (or no ``active.json``) means the bundled default weights.
``history`` lists the previously active versions, most recent last, so that
:meth:`ModelStore.rollback` can step back one activation at a time. Version folders
appear by an atomic folder rename and are never modified or deleted afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from SAFNetSpineLib.atomic import TEMP_PREFIX, publish_folder, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError

ACTIVE_FILE = "active.json"
#: Sidecar in a version folder: the fine-tuning summary, including "status".
SUMMARY_FILE = "finetune.json"
#: In a fine-tuning work folder: the process that owns it (so a later run can clean up after a kill).
WORK_OWNER_FILE = "owner.json"
#: A version (folder) name: starts with a letter or digit, at most 100 characters.
VERSION_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class ModelVersion:
    """One selectable set of weights.

    Attributes:
        name: Folder name ("safnet-v2"), or the bundled folder's name.
        folder: The weights folder.
        status: "bundled", "promoted", "candidate", "imported" (a folder copied in by hand)
            or "invalid" (unreadable manifest; ``summary["reason"]`` says why).
        active: True for the version segmentation uses now.
        version: The manifest's version string.
        parent_version: Version it was fine-tuned from (None for trained from scratch).
        created: ISO time from the manifest.
        architecture: Registry name of the network.
        metrics: The manifest's metrics.
        summary: The fine-tuning summary (``finetune.json``), or None.
    """

    name: str
    folder: Path
    status: str
    active: bool
    version: str
    parent_version: str | None
    created: str
    architecture: str
    metrics: dict = field(default_factory=dict)
    summary: dict | None = None

    def to_dict(self) -> dict:
        """JSON-able form (``models list --json``)."""
        summary = self.summary or {}
        return {
            "name": self.name,
            "path": str(self.folder),
            "status": self.status,
            "active": self.active,
            "version": self.version,
            "parent_version": self.parent_version,
            "created": self.created,
            "architecture": self.architecture,
            "metrics": self.metrics,
            "dice_before": summary.get("dice_before"),
            "dice_after": summary.get("dice_after"),
            "reason": summary.get("reason"),
        }


def version_number(name: str, base: str) -> int | None:
    """N for a folder called ``<base>-vN``, else None."""
    match = re.fullmatch(re.escape(base) + r"-v(\d+)", name)
    return int(match.group(1)) if match else None


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
        path = self.models_dir / ACTIVE_FILE
        if not path.is_file():
            return {"active": None, "history": []}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            active = data.get("active")
            history = list(data.get("history", []))
        except (OSError, ValueError, AttributeError, TypeError) as error:
            raise SpineInputError(path, f"unreadable active-model pointer ({error})") from None
        if not (active is None or isinstance(active, str)) or not all(
            h is None or isinstance(h, str) for h in history
        ):
            raise SpineInputError(path, "active-model pointer holds non-text version names")
        return {"active": active, "history": history}

    def _write_pointer(self, active: str | None, history: list[str | None]) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "active": active,
            "history": history,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(record, self.models_dir / ACTIVE_FILE)

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
        return folder

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
        else:
            known = ", ".join(v.name for v in self.versions()) or "none"
            raise SpineInputError(f"model {name}", f"no such version in {self.models_dir} (known: {known})")
        read_manifest(folder)
        return folder

    def activate(self, name: str) -> Path:
        """Make ``name`` the active version (the previous one goes onto the rollback history).

        Returns:
            The activated weights folder.
        """
        folder = self.folder_of(name)
        pointer = self._read_pointer()
        new = None if folder == self.bundled_dir else name
        if new != pointer["active"]:
            self._write_pointer(new, [*pointer["history"], pointer["active"]])
        return folder

    def rollback(self) -> str:
        """Re-activate the previously active version; returns its name.

        Raises:
            SpineInputError: when there is no earlier version, or its folder is gone.
        """
        pointer = self._read_pointer()
        if not pointer["history"]:
            raise SpineInputError(self.models_dir, "no earlier active model to roll back to")
        previous = pointer["history"][-1]
        folder = self.bundled_dir if previous is None else self.models_dir / previous
        if not folder.is_dir():
            raise SpineInputError(folder, "cannot roll back: the previously active version's folder is gone")
        self._write_pointer(previous, pointer["history"][:-1])
        return self.bundled_name if previous is None else previous

    # ---- versions ----------------------------------------------------------------

    def versions(self) -> list[ModelVersion]:
        """The bundled default (if present) and every version folder, in name order."""
        from SAFNetSpineLib.weights import MANIFEST_FILE

        active = self._read_pointer()["active"]
        found = []
        if (self.bundled_dir / MANIFEST_FILE).is_file():
            found.append(self._describe(self.bundled_dir, self.bundled_name, "bundled", active is None))
        if self.models_dir.is_dir():
            folders = sorted(
                (p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: _natural_key(p.name),
            )
            for folder in folders:
                if (folder / MANIFEST_FILE).is_file():
                    found.append(self._describe(folder, folder.name, None, active == folder.name))
        return found

    def _describe(self, folder: Path, name: str, status: str | None, active: bool) -> ModelVersion:
        from SAFNetSpineLib.weights import read_manifest

        try:
            manifest = read_manifest(folder)
        except SpineInputError as error:
            # One damaged folder must not hide the others from the list.
            return ModelVersion(
                name, folder, "invalid", active, "", None, "", "", summary={"reason": str(error)}
            )
        summary = None
        if (folder / SUMMARY_FILE).is_file():
            try:
                summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise SpineInputError(
                    folder / SUMMARY_FILE, f"unreadable fine-tuning summary ({error})"
                ) from None
        if status is None:
            status = str(summary.get("status", "candidate")) if isinstance(summary, dict) else "imported"
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
            summary=summary if isinstance(summary, dict) else None,
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

    def publish_version(self, base: str, write: Callable[[Path, str], None]) -> str:
        """Create the next free ``<base>-vN`` folder atomically; returns its name.

        Args:
            base: Version family name ("safnet").
            write: ``write(folder, name)`` fills a temporary folder with the weights
                folder of version ``name``; it is renamed into place only when complete.
                If another process takes the name meanwhile, it is called again with the
                next name.
        """
        for _ in range(100):
            name = self.next_version_name(base)
            temp = self.make_temp_folder(name)
            try:
                write(temp, name)
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


def _natural_key(name: str) -> list:
    """Sort "safnet-v10" after "safnet-v9"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
