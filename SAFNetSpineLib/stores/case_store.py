"""`CaseStore`: an append-only folder of corrected cases for local fine-tuning.

Layout (the store folder doubles as a dataset folder through ``dataset.json``)::

    STORE/
      dataset.json              index of all cases (rebuilt after every add)
      cases/<case_id>/
        image.nii.gz            the image exactly as given
        label.nii.gz            uint8 label map on the image's grid
        case.json               reviewed ids, patient id, source model, time, sha256, geometry

A case is written into a temporary folder, flushed, read back, and renamed into place,
so a crash leaves either the whole case or nothing; temporary folders (``.tmp-*``) are
skipped by every listing, and whatever a killed add left (``cases/.tmp-*``: a copy of the
patient's image; ``.tmp-dataset.json.*``) is removed by the next command that opens the
store (:meth:`CaseStore.clean_leftovers`, under the lock, so never an add in progress).
A folder whose ``dataset.json`` is not a case store's index (another dataset) is refused.
Nothing is ever deleted or overwritten: adding an existing case id is an error.
:meth:`CaseStore.add` is all-or-nothing: if the index cannot be rewritten (a full
disk) the new case folder is taken back out, and another case's damage neither blocks
an add nor leaves it half done (the index lists the damaged case under "damaged").
Adds run one at a time under the store's lock file (``STORE/.lock``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import (
    TEMP_PREFIX,
    exclusive_lock,
    file_sha256,
    os_error_reason,
    publish_folder,
    write_json_atomic,
)
from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.labels import FOREGROUND_IDS, NUM_CLASSES, table_fingerprint
from SAFNetSpineLib.volume import Volume

CASE_FORMAT = 1
IMAGE_NAME = "image.nii.gz"
LABEL_NAME = "label.nii.gz"
CASE_JSON = "case.json"
INDEX_JSON = "dataset.json"
#: The "name" of a case store's ``dataset.json``; any other index belongs to another dataset.
INDEX_NAME = "SAFNetSpine corrected cases"
#: ``case.json`` "patient_source" values: who said which patient a case belongs to.
PATIENT_SOURCES = ("given", "dicom", "slicer")
LOCK_FILE = ".lock"
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
        patient_id: The patient (subject) the case belongs to; None when unknown (a store
            written before patients were recorded, or no id given).
        patient_source: Where the id came from ("given", "dicom", "slicer"; "" when unknown).
        grid: :func:`~SAFNetSpineLib.stores.patients.grid_key` of the image (None when the
            record lacks origin or direction); identical grids are guessed to be one exam.
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
    patient_id: str | None = None
    patient_source: str = ""
    grid: tuple | None = None

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


def check_patient_id(patient_id: str | None, subject: str) -> str | None:
    """The patient id stripped, or None for None/empty; refuses control characters and over 64 characters.

    Raises:
        SpineInputError: for an id that is not printable text of at most 64 characters.
    """
    if patient_id is None:
        return None
    if not isinstance(patient_id, str):
        raise SpineInputError(subject, "patient id must be text")
    text = patient_id.strip()
    if not text:
        return None
    if len(text) > 64 or not text.isprintable():
        raise SpineInputError(subject, "patient id must be 1-64 printable characters (no control characters)")
    return text


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
        patient_id: str | None = None,
        patient_source: str = "given",
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
            patient_id: The patient (subject) id; None when unknown (cross-validation then
                guesses the grouping from the image grid).
            patient_source: Who gave the id: "given" (the user), "dicom", "slicer".

        Raises:
            SpineInputError: for an existing or malformed case id, label values outside
                the table, mismatched grids, reviewed ids outside the table, a malformed
                patient id, or a folder whose ``dataset.json`` belongs to another dataset.
            SpineOutputError: the case could not be written (e.g. a full disk); nothing
                was added.
        """
        from SAFNetSpineLib.io.validation import describe_grid_difference

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
            raise SpineInputError(subject, describe_grid_difference(label, image))
        image_array = np.asarray(image.array)
        if not np.issubdtype(image_array.dtype, np.number) or not np.all(np.isfinite(image_array)):
            raise SpineInputError(subject, "image holds non-numeric or non-finite values")
        label_array = _label_as_uint8(label, subject)
        reviewed = _reviewed_ids(reviewed_labels, subject)
        if not str(source_model_version).strip():
            raise SpineInputError(subject, "source model version is empty")
        patient_id = check_patient_id(patient_id, subject)
        if patient_source not in PATIENT_SOURCES:
            raise SpineInputError(subject, f"patient source must be one of {', '.join(PATIENT_SOURCES)}")
        self.check_index_is_ours()

        created = _utc_now()
        try:
            self.cases_folder.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(self.folder / LOCK_FILE):
                self._remove_leftovers()
                if case_id is None:
                    case_id = self._new_case_id(created, image_array, label_array)
                elif (self.cases_folder / case_id).exists():
                    raise SpineInputError(
                        self.cases_folder / case_id, "a case with this id is already stored; choose a new case id"
                    )
                record = _case_record(case_id, image, label_array, reviewed, source_model_version, created, note)
                record["patient_id"] = patient_id
                record["patient_source"] = patient_source if patient_id else None
                self._publish_case(case_id, image, label.with_array(label_array, is_label=True), record)
        except (OSError, SpineOutputError) as error:
            reason = error.reason if isinstance(error, SpineOutputError) else os_error_reason(error)
            raise SpineOutputError(
                self.folder, f"could not store case {case_id or '(new)'}: {reason}; nothing was added", reason
            ) from None
        return case_id

    def _publish_case(self, case_id: str, image: Volume, label: Volume, record: dict) -> None:
        """Write a case into a temporary folder, rename it into place, rewrite the index; undo on failure."""
        from SAFNetSpineLib.io import write_volume

        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{case_id}-", dir=self.cases_folder))
        final = self.cases_folder / case_id
        try:
            write_volume(image, temp / IMAGE_NAME)
            write_volume(label, temp / LABEL_NAME)
            record["sha256"] = {"image": file_sha256(temp / IMAGE_NAME), "label": file_sha256(temp / LABEL_NAME)}
            write_json_atomic(record, temp / CASE_JSON)
            publish_folder(temp, final)
            try:
                self.write_index()
            except BaseException:
                # All or nothing: the caller is told the add failed, so the case must not stay.
                os.rename(final, temp)
                raise
        except FileExistsError:
            raise SpineInputError(final, "a case with this id is already stored; choose a new case id") from None
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)

    def check_index_is_ours(self) -> None:
        """Refuse a folder whose ``dataset.json`` is another dataset's index (adding would replace it).

        Raises:
            SpineInputError: naming the ``dataset.json``.
        """
        path = self.folder / INDEX_JSON
        if not path.exists():
            return
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            index = None
        if not isinstance(index, dict) or index.get("name") != INDEX_NAME:
            raise SpineInputError(path, "this folder holds another dataset's index, not a case store's; "
                                        "choose an empty folder or an existing case store")

    def leftovers(self) -> list[Path]:
        """What unfinished or killed adds left: ``cases/.tmp-*`` (may hold patient images) and ``.tmp-*`` index files."""
        found = []
        for folder in (self.cases_folder, self.folder):
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))
        return found

    def _remove_leftovers(self) -> list[Path]:
        """Delete :meth:`leftovers`; the caller holds the lock, so none belongs to an add in progress."""
        removed = []
        for path in self.leftovers():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            if not path.exists():
                removed.append(path)
        return removed

    def clean_leftovers(self) -> tuple[list[Path], list[Path]]:
        """Remove what killed adds left and bring a stale index up to date, if the store's lock is free now
        (an add in progress keeps its files).

        Returns:
            (removed paths, paths left in place: the lock was busy, or they could not be deleted,
            e.g. on a read-only store).
        """
        if not self.leftovers() and self._index_is_current():
            return [], []
        try:
            self.check_index_is_ours()  # another dataset's folder: touch nothing
            with exclusive_lock(self.folder / LOCK_FILE, timeout_s=0.0):
                removed = self._remove_leftovers()
                if not self._index_is_current():
                    self.write_index()  # a kill between a case's rename and the index's
        except SpineInputError:  # read-only store, an add holds the lock, a foreign index: report only
            removed = []
        return removed, self.leftovers()

    def _index_is_current(self) -> bool:
        """True when ``dataset.json`` lists exactly the readable case folders (or there are none and no index)."""
        cases, _ = self.scan()
        path = self.folder / INDEX_JSON
        if not path.is_file():
            return not cases
        try:
            listed = [entry["case"] for entry in json.loads(path.read_text(encoding="utf-8"))["cases"]]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return False
        return sorted(listed) == sorted(case.case_id for case in cases)

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
        """All complete cases, oldest first (ties broken by id).

        Temporary folders and empty folders (never a case: cases appear whole, by a
        rename) are skipped.

        Raises:
            SpineInputError: naming a case whose ``case.json`` is missing or unreadable.
        """
        cases, damaged = self.scan()
        if damaged:
            raise damaged[0]
        return cases

    def scan(self) -> tuple[list[StoredCase], list[SpineInputError]]:
        """Readable cases (oldest first) and one error per damaged case folder, without stopping at the first."""
        if not self.cases_folder.is_dir():
            return [], []
        cases, damaged = [], []
        for folder in sorted(self.cases_folder.iterdir()):
            if folder.name.startswith(TEMP_PREFIX) or folder.name.startswith(".") or not folder.is_dir():
                continue
            if not any(folder.iterdir()):
                continue
            try:
                cases.append(read_stored_case(folder))
            except SpineInputError as error:
                damaged.append(error)
        return sorted(cases, key=lambda case: (case.created, case.case_id)), damaged

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
        """Rewrite ``dataset.json`` (common ``dataset.json`` layout) from the case folders.

        Damaged cases are left out of "cases" and named, with the problem, under "damaged".
        """
        cases, damaged = self.scan()
        entries = [
            {
                "case": case.case_id,
                "image": f"cases/{case.case_id}/{IMAGE_NAME}",
                "label": f"cases/{case.case_id}/{LABEL_NAME}",
                "annotated_labels": list(case.reviewed_labels),
                "source_model_version": case.source_model_version,
                "created": case.created,
                "patient_id": case.patient_id,
                "shape": list(case.shape),
                "spacing_mm": list(case.spacing),
            }
            for case in cases
        ]
        index = {
            "name": INDEX_NAME,
            "label_scheme": "MRSpineSeg ids (SAFNetSpineLib.labels)",
            "cases": entries,
        }
        if damaged:
            index["damaged"] = [{"path": error.subject, "problem": error.problem} for error in damaged]
        path = self.folder / INDEX_JSON
        write_json_atomic(index, path)
        return path


def _case_record(case_id: str, image: Volume, label_array: np.ndarray, reviewed: tuple[int, ...],
                 source_model_version: str, created: datetime, note: str) -> dict:
    """The ``case.json`` content, less the sha256 of the files (known once they are written)."""
    return {
        "format": CASE_FORMAT,
        "case_id": case_id,
        "image": IMAGE_NAME,
        "label": LABEL_NAME,
        "reviewed_labels": list(reviewed),
        "label_ids_present": [int(v) for v in np.unique(label_array) if v != 0],
        "source_model_version": str(source_model_version),
        "created": created.isoformat(timespec="microseconds"),
        "note": str(note),
        "sha256": {},
        "geometry": {
            "shape": list(image.shape),
            "spacing_mm": [float(v) for v in image.spacing],
            "origin_lps_mm": [float(v) for v in image.origin],
            "direction_lps": [[float(v) for v in row] for row in image.direction],
        },
        "label_table": table_fingerprint(),
    }


def read_stored_case(folder: Path) -> StoredCase:
    """Read one case folder's ``case.json``.

    Raises:
        SpineInputError: if it is missing or malformed.
    """
    from SAFNetSpineLib.stores.patients import grid_key

    path = folder / CASE_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        geometry = record["geometry"]
        reviewed = record["reviewed_labels"]
        if not isinstance(reviewed, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in reviewed):
            raise ValueError("reviewed_labels is not a list of integer ids")
        patient_id = check_patient_id(record.get("patient_id"), str(path))
        source = record.get("patient_source") or ""
        grid = None
        if "origin_lps_mm" in geometry and "direction_lps" in geometry:
            grid = grid_key(geometry["shape"], geometry["spacing_mm"], geometry["origin_lps_mm"],
                            geometry["direction_lps"])
        case = StoredCase(
            case_id=str(record["case_id"]),
            folder=folder,
            reviewed_labels=_reviewed_ids(reviewed, str(path)),
            source_model_version=str(record["source_model_version"]),
            created=str(record["created"]),
            note=str(record.get("note", "")),
            sha256={str(k): str(v) for k, v in record["sha256"].items()},
            shape=tuple(int(v) for v in geometry["shape"]),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in geometry["spacing_mm"]),  # type: ignore[arg-type]
            patient_id=patient_id,
            patient_source=str(source) if patient_id else "",
            grid=grid,
        )
        if len(case.shape) != 3 or len(case.spacing) != 3:
            raise ValueError("geometry is not 3D")
        return case
    except FileNotFoundError:
        raise SpineInputError(path, "case folder has no case.json") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SpineInputError(path, f"unreadable case record ({error.__class__.__name__}: {error})") from None
