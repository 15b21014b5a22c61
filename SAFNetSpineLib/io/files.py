"""File helpers every volume reader and writer shares: format suffixes, atomic writes, uint8 labels, quiet ITK.

Kept apart from the readers and writers (:mod:`.volume_io`, :mod:`.seg_nrrd`) so that
those import this module and not each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_file_atomic
from SAFNetSpineLib.errors import SpineInputError


def file_suffix(path: str | Path) -> str:
    """The format suffix of a file name in lower case, counting ".nii.gz" and ".seg.nrrd" as one."""
    name = Path(path).name.lower()
    for double in (".nii.gz", ".seg.nrrd"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def label_array_uint8(array: np.ndarray, path: str | Path | None) -> np.ndarray:
    """A label array as uint8, refusing values that are not integers in 0..255."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise SpineInputError(path, "label map has non-integer values")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise SpineInputError(path, f"label values {array.min()}..{array.max()} do not fit 0..255")
    return array.astype(np.uint8)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """:func:`SAFNetSpineLib.atomic.write_file_atomic` keeping the real suffix, with errors as SpineInputError.

    Raises:
        SpineInputError: if writing or renaming fails; the temporary file is removed.
    """
    try:
        write_file_atomic(path, write, suffix=file_suffix(path))
    except (OSError, RuntimeError) as error:
        reason = getattr(error, "strerror", None) or _last_line(error)
        raise SpineInputError(path, f"could not write file ({reason})") from None


@contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null while ITK runs.

    ``ProcessObject_SetGlobalWarningDisplay`` does not reach every ITK library: the
    MetaImage and GDCM readers print to C++ ``std::cerr`` directly. Whatever else
    writes to fd 2 meanwhile (another thread) is lost too, so this wraps single
    native calls only.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. some embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(error).__name__
