"""Preprocessed-case cache: each case is read, reoriented and resampled once, then reused.

Entries are plain ``.npy`` files (never pickled) named by a hash of the image and label
file contents and of the preprocessing config, so editing a file or changing the target
shape simply misses the cache. Writes are atomic, so several processes (DDP ranks, a
cancelled run) never leave a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.data.cases import Case, load_case
from SAFNetSpineLib.io.files import write_atomically
from SAFNetSpineLib.preprocessing import PreprocessConfig, preprocess_image, preprocess_label

#: Bumped when the cached content changes meaning.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class PreprocessedCase:
    """A case in network space.

    Attributes:
        case_id: The case's id.
        image: (D, H, W) float32 z-scored image.
        label: (D, H, W) uint8 label ids.
        annotated: (NUM_CLASSES,) bool, background and annotated ids True.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    annotated: np.ndarray


def _file_digest(path: Path, digest) -> None:
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)


def cache_key(case: Case, preprocess: dict) -> str:
    """Hex key of a case's cache entry: hash of both files' bytes and the preprocessing config."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "preprocess": preprocess}, sort_keys=True).encode())
    for path in (case.image_path, case.label_path):
        if path.is_dir():  # a DICOM series folder: hash its files in name order
            for member in sorted(p for p in path.rglob("*") if p.is_file()):
                _file_digest(member, digest)
        else:
            _file_digest(path, digest)
    return digest.hexdigest()[:32]


def save_npy(array: np.ndarray, path: Path) -> None:
    """Write ``array`` to ``path`` as ``.npy`` (no pickle), atomically."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as stream:
            np.save(stream, array, allow_pickle=False)

    write_atomically(path, write)


def load_npy(path: Path) -> np.ndarray | None:
    """The array of a ``.npy`` cache entry, or None if it is missing or unreadable."""
    try:
        return np.load(path, allow_pickle=False) if Path(path).is_file() else None
    except (OSError, ValueError):
        return None


def preprocess_case(case: Case, preprocess: dict, cache_dir: Path | None) -> PreprocessedCase:
    """Load a case in network space, from the cache when possible.

    Args:
        case: The case.
        preprocess: PreprocessConfig.to_dict().
        cache_dir: Folder of cache entries (created if missing); None disables caching.

    Raises:
        SpineInputError: from :func:`load_case` for bad files.
    """
    annotated = case.annotated_mask()
    if cache_dir is not None:
        key = cache_key(case, preprocess)
        image_file = Path(cache_dir) / f"{key}.image.npy"
        label_file = Path(cache_dir) / f"{key}.label.npy"
        if image_file.is_file() and label_file.is_file():
            try:
                image = np.load(image_file, allow_pickle=False)
                label = np.load(label_file, allow_pickle=False)
                if image.shape == label.shape and image.dtype == np.float32:
                    return PreprocessedCase(case.case_id, image, label, annotated)
            except (OSError, ValueError):
                pass  # an unreadable entry is rebuilt below
    image_volume, label_volume = load_case(case)
    image, grid = preprocess_image(image_volume, PreprocessConfig.from_dict(preprocess))
    label = preprocess_label(label_volume, grid).astype(np.uint8)
    image = np.ascontiguousarray(image, dtype=np.float32)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        save_npy(image, image_file)
        save_npy(label, label_file)
    return PreprocessedCase(case.case_id, image, label, annotated)


def preprocess_cases(
    cases: Sequence[Case],
    preprocess: dict,
    cache_dir: Path | None,
    progress=None,
    stage: str = "preprocess",
) -> list[PreprocessedCase]:
    """Preprocess (or load from cache) several cases, reporting progress per case."""
    result = []
    for index, case in enumerate(cases):
        result.append(preprocess_case(case, preprocess, cache_dir))
        if progress is not None:
            progress(stage, (index + 1) / max(len(cases), 1), f"{case.case_id} ({index + 1}/{len(cases)})")
    return result
