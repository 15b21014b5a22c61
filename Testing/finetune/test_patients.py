"""Issue 24: cases carry their patient, and cross-validation keeps each patient's series in one fold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.data.splits import assign_folds
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.stores.patients import group_by_patient, pseudonym
from SAFNetSpineLib.volume import Volume


def series(seed: int, origin=(5.0, -3.0, 20.0), shape=(6, 20, 24), contrast: float = 1.0) -> tuple[Volume, Volume]:
    """A small image and label map; two calls with the same origin and shape share one grid (one exam)."""
    rng = np.random.default_rng(seed)
    image = (rng.normal(100.0, 15.0, size=shape) * contrast).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[1:5, 4:12, 4:12] = 3
    spacing = (3.0, 1.1, 1.0)
    return (Volume(image, spacing, origin, np.eye(3)),
            Volume(label, spacing, origin, np.eye(3), is_label=True))


def test_patient_id_is_recorded_and_old_records_load_with_patient_unknown(tmp_path):
    store = CaseStore(tmp_path / "store")
    store.add(*series(0), [3], "m", case_id="t1", patient_id="  P-001 ")
    store.add(*series(1), [3], "m", case_id="t2")
    assert store.get("t1").patient_id == "P-001" and store.get("t1").patient_source == "given"
    assert store.get("t2").patient_id is None
    record = json.loads((store.cases_folder / "t1" / "case.json").read_text())
    assert record["patient_id"] == "P-001" and record["patient_source"] == "given"
    index = json.loads((store.folder / "dataset.json").read_text())
    assert [c["patient_id"] for c in index["cases"]] == ["P-001", None]
    # A store written before patients were recorded: no patient fields at all.
    old = json.loads((store.cases_folder / "t2" / "case.json").read_text())
    del old["patient_id"], old["patient_source"]
    (store.cases_folder / "t2" / "case.json").write_text(json.dumps(old))
    assert store.get("t2").patient_id is None and [c.case_id for c in store.list()] == ["t1", "t2"]
    for bad in ("a\x1b[31mb", "x" * 65):
        with pytest.raises(SpineInputError, match="patient id"):
            store.add(*series(2), [3], "m", patient_id=bad)


def test_identical_grids_are_guessed_to_be_one_exam_and_recorded_ids_win(tmp_path):
    store = CaseStore(tmp_path / "store")
    store.add(*series(0), [3], "m", case_id="a-t1")
    store.add(*series(1, contrast=2.0), [3], "m", case_id="a-t2")  # same grid: a second series of one exam
    store.add(*series(2, origin=(0.0, 0.0, 0.0)), [3], "m", case_id="b")  # another grid: its own patient
    store.add(*series(3, origin=(9.0, 9.0, 9.0)), [3], "m", case_id="c-1", patient_id="C")
    store.add(*series(4, origin=(1.0, 2.0, 3.0)), [3], "m", case_id="c-2", patient_id="C")
    store.add(*series(5, origin=(9.0, 9.0, 9.0)), [3], "m", case_id="c-3")  # no id, the grid of a C series
    groups = group_by_patient(store.list())
    assert groups.patient_of["a-t1"] == groups.patient_of["a-t2"] != groups.patient_of["b"]
    assert {groups.patient_of[c] for c in ("c-1", "c-2", "c-3")} == {"patient:C"}
    assert len(groups.patients) == 3 and set(groups.guessed) == {"a-t1", "a-t2", "b", "c-3"}
    assert "grouping guessed" in groups.describe() and "3 patient(s) in 6 case(s)" in groups.describe()
    # Two recorded patients on one grid stay two patients.
    other = CaseStore(tmp_path / "other")
    other.add(*series(0), [3], "m", case_id="x", patient_id="X")
    other.add(*series(1), [3], "m", case_id="y", patient_id="Y")
    both = group_by_patient(other.list())
    assert len(both.patients) == 2 and not both.guessed and "guessed" not in both.describe()


@pytest.mark.parametrize("folds", [2, 3])
def test_sibling_series_never_straddle_folds(folds):
    # 7 patients with 1..4 series each, listed in an interleaved order.
    patient_of = {f"p{p}-s{s}": f"patient:p{p}" for p in range(7) for s in range(1 + p % 4)}
    ids = sorted(patient_of, key=lambda c: c[::-1])
    fold_of = assign_folds(ids, folds, patient_of)
    for patient in set(patient_of.values()):
        assert len({fold_of[c] for c, key in patient_of.items() if key == patient}) == 1, patient
    sizes = [list(fold_of.values()).count(f) for f in range(folds)]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 4  # no fold empty; the largest patient has 4 series
    assert assign_folds(list(reversed(ids)), folds, patient_of) == fold_of
    with pytest.raises(ValueError, match="number of patients"):
        assign_folds(ids, 8, patient_of)


def test_dicom_patient_ids_are_kept_as_a_pseudonym():
    assert pseudonym("12345") == pseudonym(" 12345 ") != pseudonym("12346")
    assert pseudonym("12345").startswith("dicom-") and "12345" not in pseudonym("12345")
