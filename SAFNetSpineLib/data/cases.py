"""Case folders: where training and evaluation find image/label pairs on disk.

Two layouts are recognised:

* The common ``imagesTr/ labelsTr/ dataset.json`` layout (as in ``../shared/data/spine-mri``
  and the phantom writer). ``dataset.json`` holds a ``"cases"`` list whose entries name
  ``case``, ``image``, ``label`` (paths relative to the folder) and ``annotated_labels``:
  the label ids that were actually drawn in that case. An id missing from that list may
  still be visible in the image, so it is *unknown*, not background. An nnU-Net style
  ``"training"`` list (``image``/``label`` only) is read as fully annotated.
* MRSpineSeg's own layout: ``MR/CaseN.nii.gz`` with ``Mask/mask_caseN.nii.gz``, every
  one of the 19 structures annotated.

Listing a folder only checks that the files exist; label values and grids are checked
when a case is loaded (:func:`load_case`), where reading the volumes is paid anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.io.validation import grid_differences
from SAFNetSpineLib.json_files import read_json_object
from SAFNetSpineLib.labels import FOREGROUND_IDS, NUM_CLASSES
from SAFNetSpineLib.volume import Volume

_MRSPINESEG_IMAGE = re.compile(r"^case(\d+)\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One training/evaluation case.

    Attributes:
        case_id: Unique name of the case ("myo_01", "Case12").
        image_path: The MR image file.
        label_path: The label map file (MRSpineSeg ids).
        annotated_labels: Foreground ids drawn in this case, sorted; others are unknown.
    """

    case_id: str
    image_path: Path
    label_path: Path
    annotated_labels: tuple[int, ...]

    def annotated_mask(self) -> np.ndarray:
        """Boolean (NUM_CLASSES,) mask, True for background and every annotated id."""
        mask = np.zeros(NUM_CLASSES, dtype=bool)
        mask[0] = True
        mask[list(self.annotated_labels)] = True
        return mask


def load_case_folder(path: str | Path) -> list[Case]:
    """List the cases of a dataset folder (either layout), checking that every file exists.

    Args:
        path: A folder with ``dataset.json`` or with ``MR/`` and ``Mask/`` subfolders.

    Returns:
        The cases in the order the folder lists them.

    Raises:
        SpineInputError: unknown layout, malformed dataset.json, a listed file that is
            missing, an annotated id outside the label table, or a duplicate case id.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SpineInputError(folder, "dataset folder not found")
    if (folder / "dataset.json").is_file():
        cases = _common_layout(folder)
    elif (folder / "MR").is_dir() and (folder / "Mask").is_dir():
        cases = _mrspineseg_layout(folder)
    else:
        raise SpineInputError(folder, "not a dataset folder (expected dataset.json, or MR/ and Mask/ subfolders)")
    if not cases:
        raise SpineInputError(folder, "dataset lists no cases")
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise SpineInputError(folder, f"case id '{case.case_id}' is listed twice")
        seen.add(case.case_id)
    return cases


def load_case_folders(folders: Sequence[str | Path]) -> tuple[list[Case], dict[str, Path]]:
    """Cases of several dataset folders, and case id -> the folder it came from.

    Raises:
        SpineInputError: as :func:`load_case_folder`, or a case id found in two folders.
    """
    cases, origin = [], {}
    for folder in folders:
        for case in load_case_folder(folder):
            if case.case_id in origin:
                raise SpineInputError(folder, f"case id '{case.case_id}' also occurs in {origin[case.case_id]}")
            origin[case.case_id] = Path(folder)
            cases.append(case)
    return cases, origin


def read_case_ids(values: Sequence[str]) -> list[str]:
    """Case ids given on a command line: the ids themselves, or one file listing them.

    The file holds one id per line (``#`` lines are comments), a JSON list, or a train
    run's ``split.json`` (whose ``"val"`` ids are used).

    Raises:
        SpineInputError: a JSON file that is neither a list nor a split with ``"val"``.
    """
    if len(values) == 1 and Path(values[0]).is_file():
        path = Path(values[0])
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if isinstance(data, dict):
            data = data.get("val")
        if not isinstance(data, list):
            raise SpineInputError(path, "expected a JSON list of case ids (or a split.json with 'val')")
        return [str(v) for v in data]
    return list(values)


def select_cases(cases: Sequence[Case], case_ids: Sequence[str], subject: str = "--cases") -> list[Case]:
    """The cases with ``case_ids``, in that order.

    Raises:
        SpineInputError: an id that is not among ``cases`` (``subject`` names the option).
    """
    by_id = {c.case_id: c for c in cases}
    unknown = [c for c in case_ids if c not in by_id]
    if unknown:
        raise SpineInputError(subject, f"unknown case ids {unknown[:5]}")
    return [by_id[c] for c in case_ids]


def load_case(case: Case) -> tuple[Volume, Volume]:
    """Read a case's image and label map and check that they belong together.

    Returns:
        (image, label) volumes on the same grid; the label array is int64.

    Raises:
        SpineInputError: unreadable files, label values outside the label table, or an
            image and label map whose grids differ (all naming the case and file).
    """
    from SAFNetSpineLib.io.volume_io import read_volume  # SimpleITK: not on the CLI's parser path

    image = read_volume(case.image_path)
    label = read_volume(case.label_path, is_label=True)
    array = np.asarray(label.array)
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise SpineInputError(case.label_path, f"case {case.case_id}: label map has non-integer values")
    values = np.unique(array).astype(np.int64)
    outside = [int(v) for v in values if not 0 <= v < NUM_CLASSES]
    if outside:
        raise SpineInputError(
            case.label_path,
            f"case {case.case_id}: label values {outside[:5]} are not in the spine label table (0..{NUM_CLASSES - 1})",
        )
    if not image.same_grid(label, atol=1e-3):
        raise SpineInputError(
            case.label_path,
            f"case {case.case_id}: label grid ({'; '.join(grid_differences(label, image, atol=1e-3))}) "
            "does not match the image grid",
        )
    return image, label.with_array(array.astype(np.int64))


def _annotated(raw, folder: Path, case_id: str) -> tuple[int, ...]:
    if raw is None:
        return FOREGROUND_IDS
    try:
        ids = sorted({int(v) for v in raw})
    except (TypeError, ValueError):
        raise SpineInputError(folder / "dataset.json", f"case {case_id}: annotated_labels is not a list of ids") from None
    bad = [i for i in ids if i not in FOREGROUND_IDS]
    if bad:
        raise SpineInputError(
            folder / "dataset.json", f"case {case_id}: annotated label ids {bad} are not structures of the label table"
        )
    return tuple(ids)


def _existing(folder: Path, relative, case_id: str, what: str) -> Path:
    if not isinstance(relative, str) or not relative:
        raise SpineInputError(folder / "dataset.json", f"case {case_id}: no {what} path")
    path = (folder / relative).resolve()
    if not path.exists():
        raise SpineInputError(path, f"case {case_id}: {what} file listed in dataset.json is missing")
    return path


def _common_layout(folder: Path) -> list[Case]:
    manifest = folder / "dataset.json"
    data = read_json_object(manifest, "dataset.json")
    if isinstance(data.get("cases"), list):
        entries = data["cases"]
    elif isinstance(data.get("training"), list):
        entries = data["training"]
    else:
        raise SpineInputError(manifest, "dataset.json has no 'cases' (or 'training') list")
    cases = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SpineInputError(manifest, f"entry {index} of the case list is not an object")
        image = entry.get("image")
        case_id = entry.get("case") or (Path(image).name.split(".")[0] if isinstance(image, str) else f"#{index}")
        case_id = str(case_id)
        cases.append(
            Case(
                case_id=case_id,
                image_path=_existing(folder, image, case_id, "image"),
                label_path=_existing(folder, entry.get("label"), case_id, "label"),
                annotated_labels=_annotated(entry.get("annotated_labels"), folder, case_id),
            )
        )
    return cases


def _mrspineseg_layout(folder: Path) -> list[Case]:
    cases = []
    images = sorted(
        (p for p in (folder / "MR").iterdir() if _MRSPINESEG_IMAGE.match(p.name)),
        key=lambda p: int(_MRSPINESEG_IMAGE.match(p.name).group(1)),
    )
    for image in images:
        number = _MRSPINESEG_IMAGE.match(image.name).group(1)
        candidates = [folder / "Mask" / f"mask_case{number}{ext}" for ext in (".nii.gz", ".nii")]
        label = next((p for p in candidates if p.exists()), None)
        if label is None:
            raise SpineInputError(candidates[0], f"case Case{number}: mask file is missing")
        cases.append(Case(f"Case{number}", image.resolve(), label.resolve(), FOREGROUND_IDS))
    return cases
