"""`cases add` / `cases list`, run in-process: ids, names and `all`, one-line errors, nothing half-stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.stores.case_files import parse_reviewed_ids
from SAFNetSpineLib.volume import Volume


def write_case(folder: Path, shift_label: bool = False) -> tuple[Path, Path]:
    """An oblique, anisotropic image and its label map (L4 = 3, L5 = 2, L4/L5 = 12)."""
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 15.0, size=(10, 40, 60)).astype(np.float32)
    label = np.zeros(image.shape, np.uint8)
    label[2:8, 10:30, 5:20] = 3
    label[2:8, 10:30, 22:26] = 12
    label[2:8, 10:30, 28:45] = 2
    angle = np.deg2rad(10)
    direction = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    spacing, origin = (3.5, 0.9, 0.9), (10.0, -20.0, 5.0)
    folder.mkdir(parents=True, exist_ok=True)
    image_path = write_volume(Volume(image, spacing, origin, direction), folder / "image.nii.gz")
    label_origin = (10.0, -20.0, 8.0) if shift_label else origin
    label_path = write_volume(Volume(label, spacing, label_origin, direction, is_label=True),
                              folder / "label.nii.gz")
    return image_path, label_path


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_add_by_ids_names_and_all_then_list(tmp_path, capsys):
    image, label = write_case(tmp_path / "in")
    store = tmp_path / "store"
    assert main(["cases", "add", "--store", str(store), str(image), str(label), "--reviewed", "2,3",
                 "--case-id", "site-01", "--note", "fixed L5"]) == 0
    assert "stored case site-01" in capsys.readouterr().out
    assert main(["cases", "add", "--store", str(store), str(image), str(label), "--reviewed", "L5,L4/L5,l4",
                 "--case-id", "site-02"]) == 0
    assert main(["cases", "add", "--store", str(store), str(image), str(label), "--reviewed", "all"]) == 0
    capsys.readouterr()
    cases = {c.case_id: c for c in CaseStore(store).list()}
    assert len(cases) == 3
    assert cases["site-01"].reviewed_labels == (2, 3) and cases["site-01"].note == "fixed L5"
    assert cases["site-02"].reviewed_labels == (2, 3, 12)
    generated = next(c for i, c in cases.items() if i not in ("site-01", "site-02"))
    assert generated.reviewed_labels == (2, 3, 12) and generated.source_model_version == "external"
    assert generated.spacing == pytest.approx((3.5, 0.9, 0.9))

    assert main(["cases", "list", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "3 case(s)" in out and "site-01" in out and "L5,L4" in out and "fixed L5" in out
    assert main(["cases", "list", "--store", str(store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["case_id"] for c in listed["cases"]][:2] == ["site-01", "site-02"]
    assert listed["cases"][1]["reviewed_names"] == ["L5", "L4", "L4/L5"]


@pytest.mark.parametrize(
    ("extra", "shift", "message"),
    [
        (["--reviewed", "2,L9"], False, "unknown structure(s) L9"),
        (["--reviewed", "0"], False, "unknown structure(s) 0"),
        (["--reviewed", "25,3"], False, "unknown structure(s) 25"),
        (["--reviewed", ""], False, "no reviewed structures"),
        (["--reviewed", "all"], True, "grid"),
        (["--reviewed", "2", "--case-id", "../evil"], False, "case id must be"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(tmp_path, capsys, extra, shift, message):
    image, label = write_case(tmp_path / "in", shift_label=shift)
    store = tmp_path / "store"
    code = main(["cases", "add", "--store", str(store), str(image), str(label), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert CaseStore(store).list() == []
    assert not [f for f in files_under(store) if f.startswith("cases/") and f != "cases"]


def test_duplicate_case_id_and_missing_files_are_refused(tmp_path, capsys):
    image, label = write_case(tmp_path / "in")
    store = tmp_path / "store"
    assert main(["cases", "add", "--store", str(store), str(image), str(label), "--reviewed", "3",
                 "--case-id", "dup"]) == 0
    before = files_under(store)
    capsys.readouterr()
    code = main(["cases", "add", "--store", str(store), str(image), str(label), "--reviewed", "2",
                 "--case-id", "dup"])
    err = capsys.readouterr().err
    assert code == 2 and "already stored" in err and err.count("\n") == 1
    assert files_under(store) == before
    assert CaseStore(store).get("dup").reviewed_labels == (3,)
    code = main(["cases", "add", "--store", str(store), str(tmp_path / "nope.nii.gz"), str(label),
                 "--reviewed", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "nope.nii.gz" in err and "not found" in err
    assert files_under(store) == before
    assert main(["cases", "list", "--store", str(tmp_path / "elsewhere")]) == 2
    assert "case store not found" in capsys.readouterr().err


def test_all_needs_a_structure_in_the_label_map():
    with pytest.raises(Exception, match="holds none"):
        parse_reviewed_ids("all", [])
    assert parse_reviewed_ids("ALL", [3, 2, 2]) == (2, 3)
    assert parse_reviewed_ids(" L5 , 3 ", []) == (2, 3)
