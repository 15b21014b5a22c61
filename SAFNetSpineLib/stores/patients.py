"""Which stored cases belong to one patient, so that cross-validation never splits a patient.

One exam brings several series of one patient (T1, T2, STIR); a version trained on one of
them and scored on its sibling has seen that spine, and its score says nothing about the
next patient (issue 24). So cases are grouped by patient before they are dealt into folds:

* a case that records a patient id (``cases add --patient``, the DICOM PatientID, the Slicer
  subject hierarchy) belongs to that patient;
* a case without one joins every case whose image grid is identical (size, spacing, origin
  and direction: the series of one exam share the scanner's frame), including a case with a
  patient id; otherwise it is its own patient. The grouping is then *guessed*, and the
  fine-tuning summary says so.

Merging too much only costs evidence; merging too little would leak, so a guess errs
towards merging. Numpy-free and torch-free: the Slicer panel counts patients with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Grid values (mm, direction cosines) equal to this many decimals count as the same grid.
GRID_DECIMALS = 3
#: Fewer distinct patients than this give no evidence for a new patient: no promotion.
MIN_PATIENTS = 3


@dataclass(frozen=True)
class PatientGroups:
    """Cases grouped by patient.

    Attributes:
        patient_of: {case id: patient key} ("patient:ID" when recorded, "exam:<case id>" when guessed).
        guessed: Case ids whose patient was guessed from the image grid (no recorded id).
    """

    patient_of: dict[str, str]
    guessed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def patients(self) -> list[str]:
        """Distinct patient keys in order of first appearance."""
        return list(dict.fromkeys(self.patient_of.values()))

    def describe(self) -> str:
        """One sentence: patients, cases, and whether (and for how many cases) the grouping was guessed."""
        text = f"{len(self.patients)} patient(s) in {len(self.patient_of)} case(s)"
        if self.guessed:
            text += (f"; grouping guessed for {len(self.guessed)} case(s) without a patient id "
                     "(identical image grids taken as one exam)")
        return text


def pseudonym(raw_id: str) -> str:
    """A stable pseudonym for an identifying id (a DICOM PatientID): ``dicom-`` + 16 hex of its sha256."""
    return "dicom-" + hashlib.sha256(raw_id.strip().encode("utf-8")).hexdigest()[:16]


def grid_key(shape: Sequence[int], spacing: Sequence[float], origin: Sequence[float],
             direction: Sequence[Sequence[float]]) -> tuple:
    """A hashable image grid: (I, J, K) voxels, spacing (mm), origin (LPS mm), 3x3 direction, rounded."""
    def rounded(values):
        return tuple(round(float(v), GRID_DECIMALS) + 0.0 for v in values)  # + 0.0: -0.0 == 0.0 in the key

    return (tuple(int(v) for v in shape), rounded(spacing), rounded(origin),
            tuple(rounded(row) for row in direction))


def group_by_patient(cases: Sequence) -> PatientGroups:
    """Group cases (objects with ``case_id``, ``patient_id`` and ``grid``) by patient; see the module.

    Args:
        cases: :class:`~SAFNetSpineLib.stores.case_store.StoredCase` entries, in the store's order;
            ``grid`` is None when the case records no origin and direction (then it is never merged).

    Returns:
        PatientGroups.
    """
    parent = {case.case_id: case.case_id for case in cases}

    def root(case_id: str) -> str:
        while parent[case_id] != case_id:
            parent[case_id] = parent[parent[case_id]]
            case_id = parent[case_id]
        return case_id

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb, key=order.get)] = min(ra, rb, key=order.get)

    order = {case.case_id: index for index, case in enumerate(cases)}
    first_of_patient: dict[str, str] = {}
    for case in cases:
        if case.patient_id:
            join(first_of_patient.setdefault(case.patient_id, case.case_id), case.case_id)
    by_grid: dict[tuple, list] = {}
    for case in cases:
        if case.grid is not None:
            by_grid.setdefault(case.grid, []).append(case)
    for members in by_grid.values():
        unknown = [case for case in members if not case.patient_id]
        if unknown:  # an unlabelled series joins every case of its grid; labelled cases never merge by grid alone
            for case in members:
                join(unknown[0].case_id, case.case_id)
    named: dict[str, str] = {}
    for case in cases:
        if case.patient_id:
            named.setdefault(root(case.case_id), case.patient_id)
    patient_of = {}
    for case in cases:
        top = root(case.case_id)
        patient_of[case.case_id] = f"patient:{named[top]}" if top in named else f"exam:{top}"
    guessed = tuple(case.case_id for case in cases if not case.patient_id)
    return PatientGroups(patient_of, guessed)


def count_patients(store_folder) -> int:
    """Distinct patients among the readable cases of a case store folder (0 when there is none); no torch."""
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.stores.case_store import CaseStore

    try:
        cases, _ = CaseStore(store_folder).scan()
    except (OSError, SpineInputError):
        return 0
    return len(group_by_patient(cases).patients)
