"""Issues 24 and 25 at the command line: patients in `cases`, foreign indexes, escapes, paths checked first.

Each test drives the CLI in-process and checks the one-line error (exit 2) or the output a user reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from block_cases import block_case

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore, ModelStore
from SAFNetSpineLib.stores.patients import pseudonym
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import ModelManifest, save_weights

TINY = {"width": 8, "in_channels": 1, "num_classes": 20}


def write_weights(folder: Path, version: str = "tiny") -> Path:
    torch.manual_seed(0)
    manifest = ModelManifest("safnet", TINY, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(), version=version)
    return save_weights(build_model("safnet", **TINY), folder, manifest)


def write_case(folder: Path, origin: tuple | None = None) -> tuple[Path, Path]:
    image, label = block_case(0)
    if origin is not None:
        image = Volume(image.array, image.spacing, origin, image.direction)
        label = Volume(label.array, label.spacing, origin, label.direction, is_label=True)
    folder.mkdir(parents=True, exist_ok=True)
    return write_volume(image, folder / "image.nii.gz"), write_volume(label, folder / "label.nii.gz")


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture()
def store_of_three(tmp_path):
    store = CaseStore(tmp_path / "store")
    for seed in range(3):
        store.add(*block_case(seed), [3], "tiny", case_id=f"case-{seed}", patient_id=f"p{seed}")
    return store.folder, write_weights(tmp_path / "tiny"), tmp_path / "models"


def test_cases_list_shows_patients_and_never_prints_a_notes_escape_codes(tmp_path, capsys):
    image, label = write_case(tmp_path / "in")
    store = tmp_path / "store"
    other_image, other_label = write_case(tmp_path / "other", origin=(0.0, 0.0, 0.0))
    for case_id, files, extra in (("t1", (image, label), ["--patient", "P7"]),
                                  ("t2", (image, label), ["--patient", "P7"]),
                                  ("t3", (image, label), []),  # P7's grid: guessed to be P7's series
                                  ("x", (other_image, other_label), [])):
        assert main(["cases", "add", *map(str, files), "--store", str(store), "--reviewed", "3",
                     "--case-id", case_id, "--note", "\x1b[2J\x1b[31mred\rnote", *extra]) == 0
    assert "patient P7" in capsys.readouterr().out
    assert main(["cases", "list", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\\x1b[31mred\\rnote" in out
    assert "2 patient(s) in 4 case(s); grouping guessed for 2 case(s)" in out
    assert main(["cases", "list", "--store", str(store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["patients"] == 2 and listed["patient_grouping_guessed"]
    assert [c["patient_id"] for c in listed["cases"]] == ["P7", "P7", None, None]
    assert [c["patient"] for c in listed["cases"]] == ["patient:P7"] * 3 + ["exam:x"]


def test_a_dicom_series_brings_its_patient_id_as_a_pseudonym(tmp_path, capsys):
    image, label = block_case(0)
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    volume = sitk.GetImageFromArray(np.transpose(image.array, (2, 1, 0)).astype(np.int16))
    volume.SetSpacing(image.spacing)
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        for tag, value in (("0010|0020", "HOSP-4711"), ("0020|000d", "1.2.3.4"), ("0020|000e", "1.2.3.4.5"),
                           ("0020|0013", str(k + 1)), ("0008|0060", "MR"),
                           ("0020|0032", "\\".join(map(str, volume.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "1\\0\\0\\0\\1\\0")):
            slice_.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()  # keep the series uid set above: one series, not one per file
        writer.SetFileName(str(dicom / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    read_back = sitk.ReadImage(sorted(str(p) for p in dicom.iterdir()))
    label_path = tmp_path / "label.nii.gz"
    grid = Volume.from_sitk(read_back)
    write_volume(Volume(np.asarray(label.array), grid.spacing, grid.origin, grid.direction, is_label=True),
                 label_path)
    assert main(["cases", "add", str(dicom), str(label_path), "--store", str(tmp_path / "store"),
                 "--reviewed", "3", "--case-id", "d"]) == 0
    stored = CaseStore(tmp_path / "store").get("d")
    assert stored.patient_id == pseudonym("HOSP-4711") and stored.patient_source == "dicom"
    assert "HOSP-4711" not in (stored.folder / "case.json").read_text()
    capsys.readouterr()


def test_another_datasets_index_is_never_replaced(tmp_path, capsys):
    image, label = write_case(tmp_path / "in")
    foreign = tmp_path / "dataset"
    foreign.mkdir()
    index = {"name": "spine-mri", "cases": [{"case": f"c{i}", "annotated_labels": [2]} for i in range(15)]}
    (foreign / "dataset.json").write_text(json.dumps(index))
    before = (foreign / "dataset.json").read_bytes()
    assert main(["cases", "add", str(image), str(label), "--store", str(foreign), "--reviewed", "3"]) == 2
    one_line_error(capsys, "dataset.json", "another dataset")
    assert (foreign / "dataset.json").read_bytes() == before and not (foreign / "cases").exists()


def test_finetune_checks_its_paths_before_any_training(store_of_three, tmp_path, capsys):
    store, weights, models = store_of_three
    (tmp_path / "summary-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    for extra, fragments in (
        (["--models", str(models), "--summary", str(tmp_path / "summary-dir")], ("summary-dir", "folder")),
        (["--models", str(models), "--summary", str(tmp_path / "nowhere" / "s.json")], ("s.json", "cannot write")),
        (["--models", str(tmp_path / "a-file" / "models")], ("a-file", "models folder")),
        (["--models", str(tmp_path / "a-file")], ("a-file", "not a folder")),
    ):
        assert main(["finetune", "--store", str(store), "--from", str(weights), "--epochs", "50", *extra]) == 2
        one_line_error(capsys, *fragments)
        assert not models.exists() or not [p for p in models.iterdir() if not p.name.startswith(".")]


def test_an_out_of_range_id_in_a_stored_case_is_one_line(store_of_three, capsys):
    store, weights, models = store_of_three
    record_path = store / "cases" / "case-1" / "case.json"
    record = json.loads(record_path.read_text())
    record["reviewed_labels"] = [3, 99]
    record_path.write_text(json.dumps(record))
    assert main(["finetune", "--store", str(store), "--from", str(weights), "--models", str(models)]) == 2
    one_line_error(capsys, "case-1", "case.json", "99")


def test_models_activate_refuses_a_changed_checksum_and_a_link_out(tmp_path, capsys):
    bundled = write_weights(tmp_path / "bundled" / "safnet-default", "safnet-default")
    models = tmp_path / "models"
    store = ModelStore(models, bundled_dir=bundled)
    changed = write_weights(models / "safnet-v1", "safnet-v1")
    with open(changed / "model.safetensors", "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\0\0\0\1")
    outside = write_weights(tmp_path / "elsewhere" / "w", "w")
    (models / "safnet-v2").symlink_to(outside, target_is_directory=True)
    for name, fragment in (("safnet-v1", "checksum"), ("safnet-v2", "links outside")):
        assert main(["models", "activate", name, "--models", str(models)]) == 2
        one_line_error(capsys, name, fragment)
        assert store.active_name() == "safnet-default"
