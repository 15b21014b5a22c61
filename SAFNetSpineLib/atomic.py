"""Crash-safe files: atomic writes (weights, checkpoints, outputs, the case and model stores) and checksums.

A file is written under a temporary name in its destination folder, flushed to disk
and renamed over the final name, so a reader (or a restart after a crash) sees either
the old content or the new one, never half of it. Folders are published the same way
with a rename that refuses to replace an existing folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def write_file_atomic(path: Path, write: Callable[[Path], object], suffix: str = "") -> Path:
    """Call ``write(temp_path)`` for a temporary file beside ``path``, fsync it, then rename it to ``path``.

    Readers (and a restart after a crash) see the old file or the new one, never half of
    one. The temporary name starts with :data:`TEMP_PREFIX` (listings skip it) and ends
    with ``suffix``, for writers that choose the format from the file name.

    Args:
        path: Final file path.
        write: Writes the whole content to the path it is given.
        suffix: Ending of the temporary name (e.g. ".nii.gz").

    Returns:
        ``path``. On any error the temporary file is removed and the error re-raised.
    """
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        os.chmod(temp, 0o666 & ~_current_umask())  # what a plain open() gives, not mkstemp's 0600
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_folder(path.parent)
    return path


def write_json_atomic(data: object, path: Path) -> None:
    """Write ``data`` as indented JSON to ``path``, replacing any old file atomically."""

    def write(temp: Path) -> None:
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    write_file_atomic(Path(path), write)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` through a temporary file and an atomic rename."""
    from safetensors.torch import save_file

    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_file_atomic(Path(path), lambda temp: save_file(contiguous, str(temp), metadata=metadata))


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


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
