"""Crash-safe files: atomic writes (weights, checkpoints, outputs, the case and model stores) and checksums.

A file is written under a temporary name in its destination folder, flushed to disk,
read back (:mod:`SAFNetSpineLib.written`: a gzip stream to its end, a NIfTI or NRRD
voxel block to its announced size, JSON parsed, a safetensors header against the file
size), and only then renamed over the final name, so a reader (or a restart after a
crash) sees either the old content or the new one, never half of it. Native writers
that fail silently on a full disk (ITK's NIfTI writer) are caught by the read-back.
Folders are published the same way with a rename that refuses to replace an existing
folder. :func:`exclusive_lock` serialises read-modify-write steps between processes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from SAFNetSpineLib.errors import SpineOutputError

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


def write_file_atomic(
    path: Path,
    write: Callable[[Path], object],
    suffix: str = "",
    verify: Callable[[Path, str], str | None] | None = None,
) -> Path:
    """Call ``write(temp_path)`` for a temporary file beside ``path``, check it, then rename it to ``path``.

    Readers (and a restart after a crash) see the old file or the new one, never half of
    one. The temporary name starts with :data:`TEMP_PREFIX` (listings skip it) and ends
    with ``suffix``, for writers that choose the format from the file name. Before the
    rename the file is flushed and read back: ``verify(temp, final_name)`` returns None
    when the content is complete, else what is wrong.

    Args:
        path: Final file path.
        write: Writes the whole content to the path it is given.
        suffix: Ending of the temporary name (e.g. ".nii.gz").
        verify: Completeness check; defaults to
            :func:`SAFNetSpineLib.written.incomplete_reason`, chosen by the final name.

    Returns:
        ``path``.

    Raises:
        SpineOutputError: the write, the flush, the read-back or the rename failed (a full
            disk, a read-only or vanished folder, an immutable file). The temporary file
            is removed and an earlier file at ``path`` is left untouched.
    """
    from SAFNetSpineLib.written import incomplete_reason

    path = Path(path)
    check = verify or incomplete_reason
    temp = None
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        temp = Path(temp_name)
        os.chmod(temp, 0o666 & ~_current_umask())  # what a plain open() gives, not mkstemp's 0600
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        problem = check(temp, path.name)
        if problem is not None:
            raise _write_failure(path, f"the written data is incomplete: {problem}")
        os.replace(temp, path)
    except OSError as error:
        raise _write_failure(path, os_error_reason(error)) from None
    except RuntimeError as error:  # native writers (ITK) report I/O failures this way
        raise _write_failure(path, _last_line(error)) from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    fsync_folder(path.parent)
    return path


def os_error_reason(error: OSError) -> str:
    """A few words for an OSError, naming a full disk plainly."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the disk"
    if error.errno == errno.EFBIG:
        return "file too large for this file system or process limit"
    return error.strerror or _last_line(error)


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(error).__name__


def _write_failure(path: Path, reason: str) -> SpineOutputError:
    """The one-line error for a failed write, naming a full disk when that is the likely cause."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < 1 << 20 and "space" not in reason:
        reason += f"; the disk is full ({free} bytes free)"
    return SpineOutputError(path, f"could not write the file: {reason}; nothing was replaced", reason=reason)


def write_json_atomic(data: object, path: Path) -> None:
    """Write ``data`` as indented JSON to ``path``, replacing any old file atomically."""

    def write(temp: Path) -> None:
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    write_file_atomic(Path(path), write)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` through a temporary file and an atomic rename."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}

    def write(temp: Path) -> None:
        try:
            save_file(contiguous, str(temp), metadata=metadata)
        except SafetensorError as error:  # its I/O failures are not OSErrors
            raise OSError(_last_line(error)) from None

    write_file_atomic(Path(path), write)


@contextmanager
def exclusive_lock(lock_path: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if missing) for a ``with`` block.

    Processes that use the same lock file run their blocks one at a time; the lock goes
    with the process, so a killed holder never leaves it stuck. It is per open file, so a
    process must not take the same lock twice (the second would wait for the first).

    Args:
        lock_path: The lock file (its content is unused).
        timeout_s: How long to wait for another holder before giving up.

    Raises:
        SpineOutputError: the lock file cannot be created, or another process held the
            lock for longer than ``timeout_s``.
    """
    lock_path = Path(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_current_umask())
    except OSError as error:
        raise SpineOutputError(lock_path, f"cannot create the lock file ({os_error_reason(error)})") from None
    try:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fd, lock_path):
            if time.monotonic() > deadline:
                raise SpineOutputError(
                    lock_path, f"another process has held this lock for over {timeout_s:g} s; try again later"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int, lock_path: Path) -> bool:
    """Take the lock if free; False if another process holds it."""
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False  # held by another process (msvcrt reports it as a permission error)
    except OSError as error:
        raise SpineOutputError(lock_path, f"cannot lock ({os_error_reason(error)})") from None
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


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
