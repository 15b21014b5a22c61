"""Crash-safe writes: weights, checkpoints, outputs, the case store and the model store.

A file is written under a temporary name in its destination folder, flushed to disk
and renamed over the final name, so a reader (or a restart after a crash) sees either
the old content or the new one, never half of it. Folders are published the same way
with a rename that refuses to replace an existing folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

#: Prefix of every temporary file or folder; listings skip names starting with it.
TEMP_PREFIX = ".tmp-"


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where the OS cannot."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and Windows) do not support fsync on folders
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file in ``folder`` (not recursive) and the folder itself."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_folder(folder)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_file(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, with the permissions a plain ``open`` would give."""
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
    os.chmod(temp_name, 0o666 & ~_current_umask())
    return fd, temp_name


def write_json_atomic(data: object, path: Path) -> None:
    """Write ``data`` as indented JSON to ``path``, replacing any old file atomically."""
    path = Path(path)
    fd, temp_name = _temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def publish_folder(temp_folder: Path, final_folder: Path) -> None:
    """Rename a fully written temporary folder to its final name.

    Raises:
        FileExistsError: if ``final_folder`` already exists (it is never replaced).
    """
    fsync_tree(temp_folder)
    if final_folder.exists():
        raise FileExistsError(final_folder)
    try:
        # On POSIX, rename onto an existing non-empty folder fails, which closes the race
        # between the check above and the rename.
        os.rename(temp_folder, final_folder)
    except OSError as error:
        if final_folder.exists():
            raise FileExistsError(final_folder) from error
        raise
    fsync_folder(final_folder.parent)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` through a temporary file and an atomic rename."""
    from safetensors.torch import save_file

    path = Path(path)
    fd, temp_name = _temp_file(path)
    os.close(fd)
    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, temp_name, metadata=metadata)
        with open(temp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
