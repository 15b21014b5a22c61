"""Store a corrected case from files on disk (annotators who correct in ITK-SNAP or another tool).

``cases add`` reads the image and the corrected label map, resolves which structures the
annotator reviewed (``2,3,4``, ``L5,L4,L3`` or ``all``: every structure present in the
label map) and hands both to :meth:`CaseStore.add`, which checks the grids, the label
values and the case id before anything is written, then publishes the case whole.

The case's patient is ``--patient`` when given, else the DICOM PatientID of a DICOM input
(kept as a pseudonym: ``dicom-`` + 16 hex digits of its sha256, so the store holds no new
identifier), else unknown (cross-validation then guesses it from the image grid).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import FOREGROUND_IDS, structure, structure_by_name
from SAFNetSpineLib.stores.case_store import CaseStore
from SAFNetSpineLib.stores.patients import pseudonym

#: ``source_model_version`` of cases added from files, when the caller does not say.
EXTERNAL_SOURCE = "external"


def parse_reviewed_ids(text: str, present_ids, subject: str = "--reviewed") -> tuple[int, ...]:
    """Structure ids from ``"2,3,4"``, ``"L5,L4,L3"`` (mixed allowed) or ``"all"``.

    Args:
        text: Comma-separated ids or short/full names, or ``all``.
        present_ids: Foreground ids present in the label map (what ``all`` means).
        subject: Named in errors.

    Returns:
        Sorted unique foreground ids.

    Raises:
        SpineInputError: an unknown id or name, background (0), nothing given, or
            ``all`` on a label map without structures.
    """
    tokens = [token.strip() for token in str(text).split(",") if token.strip()]
    if not tokens:
        raise SpineInputError(subject, "no reviewed structures given (use ids like 2,3,4, names like L5,L4 or all)")
    if [t.lower() for t in tokens] == ["all"]:
        ids = sorted({int(v) for v in present_ids if int(v) in FOREGROUND_IDS})
        if not ids:
            raise SpineInputError(subject, "'all' means every structure in the label map, but it holds none")
        return tuple(ids)
    ids, unknown = set(), []
    for token in tokens:
        if token.isdigit():
            value = int(token)
            if value in FOREGROUND_IDS:
                ids.add(value)
            else:
                unknown.append(token)
            continue
        found = structure_by_name(token)
        if found is None or found.label_id not in FOREGROUND_IDS:
            unknown.append(token)
        else:
            ids.add(found.label_id)
    if unknown:
        known = ", ".join(structure(i).short_name for i in FOREGROUND_IDS)
        raise SpineInputError(
            subject, f"unknown structure(s) {', '.join(unknown)}: use ids 1..{max(FOREGROUND_IDS)} or {known}"
        )
    return tuple(sorted(ids))


#: DICOM tag of the PatientID.
PATIENT_ID_TAG = "0010|0020"


def _series_first_file(folder: Path) -> str | None:
    """First file of the largest DICOM series in ``folder`` or below (the series ``read_volume`` reads)."""
    import SimpleITK as sitk

    from SAFNetSpineLib.io.files import native_stderr_silenced

    best: list[str] = []
    for directory, _, files in os.walk(folder):
        if not files:
            continue
        with native_stderr_silenced():
            for series_id in sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory):
                names = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, series_id))
                if len(names) > len(best):
                    best = names
    return best[0] if best else None


def dicom_patient_id(path: str | Path) -> str | None:
    """The pseudonymised DICOM PatientID of a DICOM file or series folder; None for other inputs or no id.

    Args:
        path: The image as given to ``cases add`` (a file or a DICOM folder).
    """
    import SimpleITK as sitk

    from SAFNetSpineLib.io.files import native_stderr_silenced

    path = Path(path)
    first = _series_first_file(path) if path.is_dir() else str(path)
    if first is None or Path(first).name.lower().endswith((".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")):
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(first)
    try:
        with native_stderr_silenced():
            reader.ReadImageInformation()
        raw = reader.GetMetaData(PATIENT_ID_TAG) if reader.HasMetaDataKey(PATIENT_ID_TAG) else ""
    except RuntimeError:
        return None
    raw = raw.strip().strip("\x00").strip()
    return pseudonym(raw) if raw else None


def add_case_files(
    store: CaseStore | str | Path,
    image_path: str | Path,
    label_path: str | Path,
    reviewed: str,
    *,
    case_id: str | None = None,
    note: str = "",
    source_model_version: str = EXTERNAL_SOURCE,
    patient_id: str | None = None,
) -> str:
    """Read an image and its corrected label map and add them to the store; returns the case id.

    Args:
        store: The case store (or its folder; created on first add).
        image_path: Image file or DICOM folder.
        label_path: Label map on the image's grid (MRSpineSeg ids).
        reviewed: Reviewed structures (see :func:`parse_reviewed_ids`).
        case_id: Id to use; generated when None.
        note: Free text kept in ``case.json``.
        source_model_version: Model that drew the first draft (``external`` when unknown).
        patient_id: The patient (subject) id; None takes the DICOM PatientID of a DICOM
            input (pseudonymised), else leaves the patient unknown.

    Raises:
        SpineInputError: unreadable files, a grid mismatch, label values outside the
            table, unknown reviewed ids, or a case id already stored. Nothing is written
            then.
    """
    from SAFNetSpineLib.io import read_volume

    case_store = store if isinstance(store, CaseStore) else CaseStore(store)
    if case_id is not None and (case_store.cases_folder / case_id).exists():
        raise SpineInputError(case_store.cases_folder / case_id,
                              "a case with this id is already stored; choose a new case id")
    image = read_volume(image_path)
    label = read_volume(label_path, is_label=True)
    present = np.unique(np.asarray(label.array))
    ids = parse_reviewed_ids(reviewed, [v for v in present if v != 0])
    source = "given"
    if patient_id is None or not str(patient_id).strip():
        patient_id = dicom_patient_id(image_path)
        source = "dicom"
    return case_store.add(image, label, ids, source_model_version, case_id=case_id, note=note,
                          patient_id=patient_id, patient_source=source)
