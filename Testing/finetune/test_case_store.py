"""CaseStore: add/list, never overwrite, atomic writes, validation, dataset-folder view."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.stores import case_store as case_store_module
from SAFNetSpineLib.volume import Volume


def oblique_direction(angle_deg: float = 20.0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rotation = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return rotation @ np.diag([1.0, -1.0, 1.0])


def small_case(seed: int = 0) -> tuple[Volume, Volume]:
    """A 6 x 20 x 14 anisotropic, oblique image with three labelled blocks."""
    rng = np.random.default_rng(seed)
    image_array = rng.normal(100.0, 10.0, size=(6, 20, 14)).astype(np.float32)
    label_array = np.zeros((6, 20, 14), dtype=np.int16)
    label_array[1:5, 2:6, 3:10] = 2
    label_array[1:5, 7:9, 3:10] = 12
    label_array[1:5, 10:14, 3:10] = 3
    image_array[label_array > 0] += 50
    spacing, origin, direction = (4.0, 1.2, 1.3), (10.0, -20.0, 5.0), oblique_direction()
    return (
        Volume(image_array, spacing, origin, direction),
        Volume(label_array, spacing, origin, direction, is_label=True),
    )


def test_add_and_list_round_trip(tmp_path):
    store = CaseStore(tmp_path / "store")
    image, label = small_case()
    case_id = store.add(image, label, [2, 3, 12], "safnet-default", note="fixed L4")
    assert len(store) == 1
    (case,) = store.list()
    assert case.case_id == case_id and case_id.startswith("case-")
    assert case.reviewed_labels == (2, 3, 12)
    assert case.source_model_version == "safnet-default" and case.note == "fixed L4"
    assert case.shape == (6, 20, 14)
    case.verify()
    stored_image = read_volume(case.image_path)
    stored_label = read_volume(case.label_path, is_label=True)
    assert stored_image.same_grid(image) and stored_label.same_grid(image)
    np.testing.assert_allclose(stored_image.array, image.array)
    assert stored_label.array.dtype == np.uint8
    np.testing.assert_array_equal(stored_label.array, label.array)
    record = json.loads((case.folder / "case.json").read_text())
    assert record["label_ids_present"] == [2, 3, 12]
    np.testing.assert_allclose(record["geometry"]["direction_lps"], image.direction, atol=1e-9)


def test_store_reads_as_dataset_folder(tmp_path):
    from SAFNetSpineLib.data.cases import load_case, load_case_folder

    store = CaseStore(tmp_path / "store")
    image, label = small_case()
    store.add(image, label, [2, 12], "safnet-default", case_id="first")
    store.add(*small_case(1), [3], "safnet-v1", case_id="second")
    listed = load_case_folder(store.folder)
    assert [c.case_id for c in listed] == ["first", "second"]
    assert [c.annotated_labels for c in listed] == [(2, 12), (3,)]
    assert [c.case_id for c in store.as_cases()] == ["first", "second"]
    assert store.as_cases()[0].annotated_labels == (2, 12)
    loaded_image, loaded_label = load_case(listed[0])
    assert loaded_image.same_grid(image)
    np.testing.assert_array_equal(loaded_label.array, label.array)


def test_existing_case_id_is_never_overwritten(tmp_path):
    store = CaseStore(tmp_path / "store")
    image, label = small_case()
    store.add(image, label, [2], "m1", case_id="patient-7")
    before = (store.cases_folder / "patient-7" / "case.json").read_bytes()
    other_image, other_label = small_case(5)
    with pytest.raises(SpineInputError, match="patient-7.*already stored"):
        store.add(other_image, other_label, [3], "m2", case_id="patient-7")
    assert (store.cases_folder / "patient-7" / "case.json").read_bytes() == before
    assert store.add(other_image, other_label, [3], "m2", case_id="patient-7b") == "patient-7b"
    # Without an id, adding the same content twice makes two distinct cases.
    first = store.add(image, label, [2], "m1")
    second = store.add(image, label, [2], "m1")
    assert first != second and len(store) == 4


def test_crash_midway_leaves_no_case(tmp_path, monkeypatch):
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="kept")

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    # Fail after the volumes are written, while writing the case record.
    monkeypatch.setattr(case_store_module, "write_json_atomic", crash)
    # A raw OSError becomes one line naming the store (the CLI prints it, no traceback).
    with pytest.raises(SpineOutputError, match="could not store case lost: disk full .simulated.; nothing was added"):
        store.add(*small_case(1), [2], "m1", case_id="lost")
    monkeypatch.undo()
    assert [c.case_id for c in store.list()] == ["kept"]
    assert sorted(p.name for p in store.cases_folder.iterdir()) == ["kept"]
    # The id of the failed case is still free.
    assert store.add(*small_case(1), [2], "m1", case_id="lost") == "lost"


def test_stray_temp_folder_from_a_killed_process_is_ignored(tmp_path):
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="good")
    stray = store.cases_folder / ".tmp-half-abc123"
    stray.mkdir()
    (stray / "image.nii.gz").write_bytes(b"\x1f\x8b truncated")
    assert [c.case_id for c in store.list()] == ["good"]
    assert len(store.as_cases()) == 1
    store.write_index()
    index = json.loads((store.folder / "dataset.json").read_text())
    assert [entry["case"] for entry in index["cases"]] == ["good"]


def test_changed_file_fails_verification(tmp_path):
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="c1")
    case = store.get("c1")
    case.label_path.write_bytes(case.label_path.read_bytes() + b"\0")
    with pytest.raises(SpineInputError, match="label.nii.gz.*sha256"):
        case.verify()


@pytest.mark.parametrize(
    "mutate, reviewed, message",
    [
        (
            lambda img, lab: (img, lab.with_array(np.where(lab.array == 3, 25, lab.array))),
            [2],
            r"\[25\].*label table",
        ),
        (lambda img, lab: (img, lab.with_array(lab.array.astype(np.float32) + 0.5)), [2], "non-integer"),
        (
            lambda img, lab: (img, Volume(lab.array, lab.spacing * 1.1, lab.origin, lab.direction, True)),
            [2],
            "label grid differs from the image grid in spacing",
        ),
        (
            lambda img, lab: (img, Volume(lab.array[:, :-1], lab.spacing, lab.origin, lab.direction, True)),
            [2],
            r"label grid differs from the image grid in shape \(6, 19, 14\) vs \(6, 20, 14\)$",
        ),
        (
            # Only the origin differs: the message must show the two origins, not equal shapes.
            lambda img, lab: (img, Volume(lab.array, lab.spacing, lab.origin + [0, 0, 2.5], lab.direction, True)),
            [2],
            r"grid differs from the image grid in origin \(10, -20, 7.5\) vs \(10, -20, 5\) mm$",
        ),
        (lambda img, lab: (img.with_array(np.full(img.shape, np.nan, np.float32)), lab), [2], "non-finite"),
        (lambda img, lab: (img, lab), [2, 20], r"reviewed ids \[20\]"),
        (lambda img, lab: (img, lab), [0], "no reviewed structure"),
        (lambda img, lab: (img, lab), [], "no reviewed structure"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, mutate, reviewed, message):
    store = CaseStore(tmp_path / "store")
    image, label = mutate(*small_case())
    with pytest.raises(SpineInputError, match=message):
        store.add(image, label, reviewed, "m1")
    assert store.list() == []
    assert not store.cases_folder.exists() or not any(store.cases_folder.iterdir())


def test_bad_case_ids_are_refused(tmp_path):
    store = CaseStore(tmp_path / "store")
    for bad in ("../escape", ".hidden", "a/b", "", "x" * 101):
        with pytest.raises(SpineInputError, match="case id"):
            store.add(*small_case(), [2], "m1", case_id=bad)
    with pytest.raises(SpineInputError, match="not in the case store"):
        store.get("missing")


def test_input_volumes_are_not_modified(tmp_path):
    image, label = small_case()
    image_copy, label_copy = image.array.copy(), label.array.copy()
    CaseStore(tmp_path / "store").add(image, label, [2, 3], "m1")
    np.testing.assert_array_equal(image.array, image_copy)
    np.testing.assert_array_equal(label.array, label_copy)
    assert label.array.dtype == np.int16


def test_adding_a_case_does_not_need_torch(tmp_path):
    """The Slicer module saves corrected cases in-process, possibly before PyTorch is installed."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from SAFNetSpineLib.stores import CaseStore\n"
        "from SAFNetSpineLib.volume import Volume\n"
        "image = Volume(np.arange(6 * 8 * 4, dtype=np.float32).reshape(6, 8, 4))\n"
        "label = Volume((np.arange(6 * 8 * 4) % 3).reshape(6, 8, 4).astype(np.uint8), is_label=True)\n"
        f"store = CaseStore({str(tmp_path / 'store')!r})\n"
        "store.add(image, label, [1, 2], 'm1', case_id='c1')\n"
        "assert [c.case_id for c in store.list()] == ['c1']\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_another_cases_damage_never_blocks_or_half_completes_an_add(tmp_path):
    # Issue 10: the error named the other case, the new case stayed, and a retry said "already stored".
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="good")
    store.add(*small_case(1), [2], "m1", case_id="broken")
    (store.cases_folder / "broken" / "case.json").write_text("{ truncated")
    assert store.add(*small_case(2), [3], "m1", case_id="new") == "new"
    index = json.loads((store.folder / "dataset.json").read_text())
    assert [entry["case"] for entry in index["cases"]] == ["good", "new"]
    (damaged,) = index["damaged"]
    assert damaged["path"].endswith("broken/case.json") and "unreadable case record" in damaged["problem"]
    # Training still refuses the store, naming the damaged case (its files cannot be trusted).
    with pytest.raises(SpineInputError, match="broken/case.json"):
        store.list()
    cases, problems = store.scan()
    assert [c.case_id for c in cases] == ["good", "new"] and len(problems) == 1


def test_a_failed_index_write_takes_the_new_case_back_out(tmp_path, monkeypatch):
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="kept")
    index_before = (store.folder / "dataset.json").read_bytes()

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CaseStore, "write_index", full_disk)
    with pytest.raises(SpineOutputError, match="could not store case second: no space left on the disk; nothing"):
        store.add(*small_case(1), [2], "m1", case_id="second")
    monkeypatch.undo()
    assert sorted(p.name for p in store.cases_folder.iterdir()) == ["kept"]
    assert (store.folder / "dataset.json").read_bytes() == index_before
    assert store.add(*small_case(1), [2], "m1", case_id="second") == "second"  # no "already stored"


def test_stray_empty_folder_in_cases_is_ignored(tmp_path):
    store = CaseStore(tmp_path / "store")
    store.add(*small_case(), [2], "m1", case_id="one")
    store.add(*small_case(1), [2], "m1", case_id="two")
    (store.cases_folder / "New Folder").mkdir()
    assert [c.case_id for c in store.list()] == ["one", "two"]
    store.write_index()
    assert "damaged" not in json.loads((store.folder / "dataset.json").read_text())


ADDER = """
import sys
import numpy as np
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.volume import Volume
store, prefix = CaseStore(sys.argv[1]), sys.argv[2]
for i in range(3):
    image = Volume(np.random.default_rng(i).normal(100, 10, (6, 8, 5)).astype(np.float32), (1.0, 1.0, 3.0))
    labels = np.zeros((6, 8, 5), np.uint8)
    labels[1:4, 1:4, 1:4] = 2
    store.add(image, image.with_array(labels, is_label=True), [2], "m1", case_id=f"{prefix}{i}")
"""


def test_concurrent_adds_from_two_processes_all_reach_the_index(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    children = [subprocess.Popen([sys.executable, "-c", ADDER, str(tmp_path / "store"), prefix], cwd=repo)
                for prefix in ("a", "b")]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    index = json.loads((tmp_path / "store" / "dataset.json").read_text())
    assert sorted(entry["case"] for entry in index["cases"]) == ["a0", "a1", "a2", "b0", "b1", "b2"]
