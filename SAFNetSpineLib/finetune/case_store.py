"""`CaseStore`: an append-only folder of corrected cases for local fine-tuning.

Layout (the store folder doubles as a dataset folder through ``dataset.json``)::

    STORE/
      dataset.json              index of all cases (rebuilt after every add)
      cases/<case_id>/
        image.nii.gz            the image exactly as given
        label.nii.gz            uint8 label map on the image's grid
        case.json               reviewed ids, source model, time, sha256, geometry

A case is written into a temporary folder, flushed, and renamed into place, so a crash
leaves either the whole case or nothing; temporary folders (``.tmp-*``) are ignored.
Nothing is ever deleted or overwritten: adding an existing case id is an error.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import TEMP_PREFIX, file_sha256, publish_folder, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import FOREGROUND_IDS, NUM_CLASSES, table_fingerprint
from SAFNetSpineLib.volume import Volume

CASE_FORMAT = 1
IMAGE_NAME = "image.nii.gz"
LABEL_NAME = "label.nii.gz"
CASE_JSON = "case.json"
#: A case id is a safe folder name: starts with a letter or digit, at most 100 characters.
CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class StoredCase:
    """One corrected case as recorded in its ``case.json``.

    Attributes:
        case_id: Unique id (the case's folder name).
        folder: The case folder.
        reviewed_labels: Structure ids the annotator reviewed (the case's annotated labels).
        source_model_version: Version of the model that drew the first draft.
        created: ISO 8601 UTC time the case was added.
        note: Free text from the annotator.
        sha256: Hex digests of the image and label files, keyed "image" and "label".
        shape: Image grid (I, J, K) in voxels.
        spacing: Voxel size (mm) along i, j, k.
    """

    case_id: str
    folder: Path
    reviewed_labels: tuple[int, ...]
    source_model_version: str
    created: str
    note: str
    sha256: dict[str, str]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def image_path(self) -> Path:
        """The stored image file."""
        return self.folder / IMAGE_NAME

    @property
    def label_path(self) -> Path:
        """The stored label map file."""
        return self.folder / LABEL_NAME

    def to_case(self):
        """This case as a training :class:`SAFNetSpineLib.data.cases.Case`."""
        from SAFNetSpineLib.data.cases import Case

        return Case(self.case_id, self.image_path, self.label_path, tuple(self.reviewed_labels))

    def verify(self) -> None:
        """Check that the stored files still match their recorded sha256.

        Raises:
            SpineInputError: naming the file that is missing or changed.
        """
        for key, path in (("image", self.image_path), ("label", self.label_path)):
            if not path.is_file():
                raise SpineInputError(path, "stored case file is missing")
            if file_sha256(path) != self.sha256.get(key):
                raise SpineInputError(path, "stored case file changed since it was added (sha256 mismatch)")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _label_as_uint8(label: Volume, subject: str) -> np.ndarray:
    """The label array as uint8 after checking every value is an id of the label table."""
    values = np.unique(np.asarray(label.array))
    if values.size and not np.all(np.isfinite(values.astype(np.float64))):
        raise SpineInputError(subject, "label map holds non-finite values")
    if values.size and not np.all(np.equal(np.mod(values.astype(np.float64), 1), 0)):
        raise SpineInputError(subject, "label map holds non-integer values")
    bad = [int(v) for v in values if not 0 <= v < NUM_CLASSES]
    if bad:
        raise SpineInputError(
            subject, f"label values {bad[:10]} are not in the spine label table (0..{NUM_CLASSES - 1})"
        )
    return np.asarray(label.array).astype(np.uint8)


def _reviewed_ids(reviewed_labels: Iterable[int], subject: str) -> tuple[int, ...]:
    """Sorted, unique foreground ids; background (0) is always implicitly annotated."""
    try:
        ids = sorted({int(v) for v in reviewed_labels})
    except (TypeError, ValueError) as error:
        raise SpineInputError(subject, f"reviewed labels must be integer ids ({error})") from None
    bad = [v for v in ids if v != 0 and v not in FOREGROUND_IDS]
    if bad:
        raise SpineInputError(
            subject, f"reviewed ids {bad} are not in the spine label table (1..{NUM_CLASSES - 1})"
        )
    ids = [v for v in ids if v != 0]
    if not ids:
        raise SpineInputError(
            subject, "no reviewed structure ids given; a case must review at least one structure"
        )
    return tuple(ids)


class CaseStore:
    """An append-only store of corrected cases in ``folder`` (created on first add).

    Args:
        folder: The store folder.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise SpineInputError(self.folder, "case store path exists but is not a folder")

    @property
    def cases_folder(self) -> Path:
        """The folder holding one subfolder per case."""
        return self.folder / "cases"

    def add(
        self,
        image: Volume,
        label: Volume,
        reviewed_labels: Iterable[int],
        source_model_version: str,
        case_id: str | None = None,
        note: str = "",
    ) -> str:
        """Store a corrected case; returns its case id.

        Args:
            image: The image, shape (I, J, K); stored as given.
            label: Label map on exactly the image's grid, values in the label table.
            reviewed_labels: Structure ids the annotator reviewed; they become the case's
                annotated labels for partial-label training. Voxels of other ids are
                kept in the file but count as "not annotated" in training.
            source_model_version: Version of the model that produced the first draft.
            case_id: Id to use; generated from the time and content when None.
            note: Free text kept in ``case.json``.

        Raises:
            SpineInputError: for an existing or malformed case id, label values outside
                the table, mismatched grids, or reviewed ids outside the table.
        """
        from SAFNetSpineLib.io import write_volume

        subject = f"case {case_id}" if case_id else "new case"
        if case_id is not None:
            if not CASE_ID_PATTERN.fullmatch(case_id):
                raise SpineInputError(
                    subject,
                    "case id must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
                )
            if (self.cases_folder / case_id).exists():
                raise SpineInputError(
                    self.cases_folder / case_id, "a case with this id is already stored; choose a new case id"
                )
        if not isinstance(image, Volume) or not isinstance(label, Volume):
            raise SpineInputError(subject, "image and label must be Volume objects")
        if not image.same_grid(label):
            raise SpineInputError(
                subject,
                f"label grid (shape {label.shape}, spacing {np.round(label.spacing, 4).tolist()}) does not "
                f"match the image grid (shape {image.shape}, spacing {np.round(image.spacing, 4).tolist()})",
            )
        image_array = np.asarray(image.array)
        if not np.issubdtype(image_array.dtype, np.number) or not np.all(np.isfinite(image_array)):
            raise SpineInputError(subject, "image holds non-numeric or non-finite values")
        label_array = _label_as_uint8(label, subject)
        reviewed = _reviewed_ids(reviewed_labels, subject)
        if not str(source_model_version).strip():
            raise SpineInputError(subject, "source model version is empty")

        created = _utc_now()
        if case_id is None:
            case_id = self._new_case_id(created, image_array, label_array)
        self.cases_folder.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{case_id}-", dir=self.cases_folder))
        try:
            write_volume(image, temp / IMAGE_NAME)
            write_volume(label.with_array(label_array, is_label=True), temp / LABEL_NAME)
            record = {
                "format": CASE_FORMAT,
                "case_id": case_id,
                "image": IMAGE_NAME,
                "label": LABEL_NAME,
                "reviewed_labels": list(reviewed),
                "label_ids_present": [int(v) for v in np.unique(label_array) if v != 0],
                "source_model_version": str(source_model_version),
                "created": created.isoformat(timespec="microseconds"),
                "note": str(note),
                "sha256": {"image": file_sha256(temp / IMAGE_NAME), "label": file_sha256(temp / LABEL_NAME)},
                "geometry": {
                    "shape": list(image.shape),
                    "spacing_mm": [float(v) for v in image.spacing],
                    "origin_lps_mm": [float(v) for v in image.origin],
                    "direction_lps": [[float(v) for v in row] for row in image.direction],
                },
                "label_table": table_fingerprint(),
            }
            write_json_atomic(record, temp / CASE_JSON)
            publish_folder(temp, self.cases_folder / case_id)
        except FileExistsError:
            raise SpineInputError(
                self.cases_folder / case_id, "a case with this id is already stored; choose a new case id"
            ) from None
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
        self.write_index()
        return case_id

    def _new_case_id(self, created: datetime, image: np.ndarray, label: np.ndarray) -> str:
        """``case-YYYYMMDDTHHMMSSZ-<8 hex>``, the hex from the content and the clock."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(np.ascontiguousarray(label).tobytes())
        digest.update(created.isoformat().encode())
        stamp = created.strftime("%Y%m%dT%H%M%SZ")
        for attempt in range(1000):
            digest.update(str(attempt).encode())
            case_id = f"case-{stamp}-{digest.hexdigest()[:8]}"
            if not (self.cases_folder / case_id).exists():
                return case_id
        raise SpineInputError(self.cases_folder, "could not find a free case id")

    def list(self) -> list[StoredCase]:
        """All complete cases, oldest first (ties broken by id); temporary folders are skipped.

        Raises:
            SpineInputError: naming a case whose ``case.json`` is missing or unreadable.
        """
        if not self.cases_folder.is_dir():
            return []
        cases = []
        for folder in self.cases_folder.iterdir():
            if folder.name.startswith(TEMP_PREFIX) or folder.name.startswith(".") or not folder.is_dir():
                continue
            cases.append(read_stored_case(folder))
        return sorted(cases, key=lambda case: (case.created, case.case_id))

    def __len__(self) -> int:
        return len(self.list())

    def get(self, case_id: str) -> StoredCase:
        """The stored case with this id.

        Raises:
            SpineInputError: if there is no such case.
        """
        folder = self.cases_folder / case_id
        if not CASE_ID_PATTERN.fullmatch(case_id) or not folder.is_dir():
            raise SpineInputError(f"case {case_id}", f"not in the case store {self.folder}")
        return read_stored_case(folder)

    def as_cases(self) -> list:
        """All cases as training :class:`~SAFNetSpineLib.data.cases.Case` entries, oldest first."""
        return [case.to_case() for case in self.list()]

    def write_index(self) -> Path:
        """Rewrite ``dataset.json`` (common ``dataset.json`` layout) from the case folders."""
        entries = [
            {
                "case": case.case_id,
                "image": f"cases/{case.case_id}/{IMAGE_NAME}",
                "label": f"cases/{case.case_id}/{LABEL_NAME}",
                "annotated_labels": list(case.reviewed_labels),
                "source_model_version": case.source_model_version,
                "created": case.created,
                "shape": list(case.shape),
                "spacing_mm": list(case.spacing),
            }
            for case in self.list()
        ]
        index = {
            "name": "SAFNetSpine corrected cases",
            "label_scheme": "MRSpineSeg ids (SAFNetSpineLib.labels)",
            "cases": entries,
        }
        path = self.folder / "dataset.json"
        write_json_atomic(index, path)
        return path


def read_stored_case(folder: Path) -> StoredCase:
    """Read one case folder's ``case.json``.

    Raises:
        SpineInputError: if it is missing or malformed.
    """
    path = folder / CASE_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        geometry = record["geometry"]
        return StoredCase(
            case_id=str(record["case_id"]),
            folder=folder,
            reviewed_labels=tuple(int(v) for v in record["reviewed_labels"]),
            source_model_version=str(record["source_model_version"]),
            created=str(record["created"]),
            note=str(record.get("note", "")),
            sha256={str(k): str(v) for k, v in record["sha256"].items()},
            shape=tuple(int(v) for v in geometry["shape"]),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in geometry["spacing_mm"]),  # type: ignore[arg-type]
        )
    except FileNotFoundError:
        raise SpineInputError(path, "case folder has no case.json") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SpineInputError(path, f"unreadable case record ({error.__class__.__name__}: {error})") from None
