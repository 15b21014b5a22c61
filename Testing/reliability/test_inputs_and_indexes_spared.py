"""No command replaces its input or another dataset's index, writes outside ``-o``, or takes bad segments (issue 25).

Every refusal is one ``error:`` line naming the file and exit code 2, and what was
there before is byte for byte unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
from SAFNetSpineLib.io import write_seg_nrrd, write_volume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

from test_input_checks import l5_named_s, seg_nrrd_with_header  # noqa: E402

SMALL_PHANTOM = PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, SMALL_PHANTOM)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- relabel never overwrites its input -------------------------------------------------------------

@pytest.mark.parametrize("name, extra", [("S_seg.nii.gz", []), ("S.seg.nrrd", ["--format", "seg.nrrd"]),
                                         ("S.seg.nrrd", ["--format", "both"])])
def test_relabel_refuses_to_overwrite_its_input(tmp_path, phantom, capsys, name, extra):
    _, labels = phantom
    source = (write_seg_nrrd if name.endswith(".seg.nrrd") else write_volume)(labels, tmp_path / name)
    before = snapshot(tmp_path)
    assert main(["relabel", str(source), "-o", str(tmp_path), *extra]) == 2
    assert f"would overwrite the input {source}" in one_error_line(capsys)
    assert snapshot(tmp_path) == before


def test_relabel_into_another_folder_still_works(tmp_path, phantom, capsys):
    _, labels = phantom
    source = write_volume(labels, tmp_path / "S_seg.nii.gz")
    before = source.read_bytes()
    assert main(["relabel", str(source), "-o", str(tmp_path / "renamed")]) == 0
    assert (tmp_path / "renamed" / "S_seg.nii.gz").is_file() and source.read_bytes() == before


# --- phantom never replaces another dataset's index -------------------------------------------------

def foreign_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cases = [{"case": f"chu_{i:02d}", "image": f"imagesTr/chu_{i:02d}.nii.gz", "label": f"labelsTr/chu_{i:02d}.nii.gz",
              "annotated_labels": [2, 3, 4, 5, 6]} for i in range(15)]
    index = folder / "dataset.json"
    index.write_text(json.dumps({"cases": cases}))
    return index


@pytest.mark.parametrize("content", ["cases", "unreadable", "nnunet"])
def test_phantom_refuses_a_folder_holding_another_datasets_index(tmp_path, capsys, content):
    index = foreign_dataset(tmp_path / "data")
    if content == "unreadable":
        index.write_text("{not json")
    elif content == "nnunet":
        index.write_text(json.dumps({"training": [{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz"}]}))
    before = snapshot(tmp_path / "data")
    assert main(["phantom", "-o", str(tmp_path / "data"), "--n", "1"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {index}: ") and "write the phantoms to a new folder" in line
    if content == "cases":
        assert "15 cases, e.g. 'chu_00'" in line
    assert snapshot(tmp_path / "data") == before


def test_phantom_may_rewrite_its_own_folder(tmp_path, capsys):
    out = tmp_path / "phantoms"
    assert main(["phantom", "-o", str(out), "--n", "1", "--seed", "3"]) == 0
    assert main(["phantom", "-o", str(out), "--n", "1", "--seed", "4"]) == 0
    assert [c["case"] for c in json.loads((out / "dataset.json").read_text())["cases"]] == ["phantom_0004"]


def test_phantom_negative_seed_is_one_line(tmp_path, capsys):
    assert main(["phantom", "-o", str(tmp_path / "p"), "--seed", "-5"]) == 2  # was: a ValueError traceback
    assert "--seed must be 0 or more" in one_error_line(capsys)
    assert not (tmp_path / "p").exists()


# --- measure writes only inside -o --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "sub/x", "..", "ABSOLUTE", ""])
def test_measure_name_with_a_folder_is_refused(tmp_path, phantom, capsys, name):
    _, labels = phantom
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    source = write_volume(labels, tmp_path / "in" / "S_seg.nii.gz")
    out = tmp_path / "a" / "b" / "out"
    assert main(["measure", str(source), "-o", str(out), "--name", name]) == 2
    line = one_error_line(capsys)
    assert f"--name {name!r}: must be a plain file name" in line
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["S_seg.nii.gz"]


# --- bad .seg.nrrd segments are refused where label maps come in: measure, cases add ----------------

BAD_SEGMENTS = {
    "same_name.seg.nrrd": (l5_named_s, "both stand for S"),
    "label_300.seg.nrrd": (lambda h: h.replace("Segment1_LabelValue:=2", "Segment1_LabelValue:=300"),
                           "has label value 300"),
}


@pytest.mark.parametrize("name", sorted(BAD_SEGMENTS))
def test_measure_refuses_segments_that_would_merge_or_vanish(tmp_path, capsys, name):
    change, problem = BAD_SEGMENTS[name]
    path = seg_nrrd_with_header(tmp_path, name, change)
    assert main(["measure", str(path), "-o", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {path}: ") and problem in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("name", sorted(BAD_SEGMENTS))
def test_cases_add_refuses_segments_that_would_merge_or_vanish(tmp_path, phantom, capsys, name):
    image, _ = phantom  # seg_nrrd_with_header draws the labels of this same phantom
    change, problem = BAD_SEGMENTS[name]
    scan = write_volume(image, tmp_path / "scan.nii.gz")
    path = seg_nrrd_with_header(tmp_path, name, change)
    store = tmp_path / "store"
    assert main(["cases", "add", str(scan), str(path), "--store", str(store), "--reviewed", "all"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {path}: ") and problem in line
    stored = [p for p in store.rglob("*.nii.gz")] if store.exists() else []
    assert stored == [], [str(p) for p in stored]


def test_memory_running_out_anyway_is_one_line(tmp_path, capsys, monkeypatch):
    """The header check estimates memory; should an allocation still fail, the user gets one line, not a traceback."""
    import SAFNetSpineLib.data.phantom as phantom_module

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(phantom_module, "write_phantom_dataset", exhausted)
    assert main(["phantom", "-o", str(tmp_path / "p")]) == 2
    assert one_error_line(capsys) == "error: out of memory; close other programs or give a smaller (cropped) image"
