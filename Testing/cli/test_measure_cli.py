"""The ``measure`` command in-process: the three files, the summary line, and bad input as one line."""

import json
import sys
from pathlib import Path

import pytest

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.io import write_volume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "measurements"))
from spine_model import SAGITTAL, lumbar_spine, rasterise  # noqa: E402


@pytest.fixture(scope="module")
def label_file(tmp_path_factory):
    spine = lumbar_spine({"L5": 20.0, "L4": 12.0, "L3": 5.0, "L2": 0.0, "L1": -4.0}, shifts={"L4": 7.0})
    labels = rasterise(spine, SAGITTAL, (3.0, 1.2, 1.2))
    return write_volume(labels, tmp_path_factory.mktemp("labels") / "scan_seg.nii.gz")


def test_measure_writes_json_csv_png(tmp_path, label_file, capsys):
    out = tmp_path / "out"
    assert main(["measure", str(label_file), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scan_measurements.csv", "scan_measurements.json",
                                                     "scan_measurements.png"]
    document = json.loads((out / "scan_measurements.json").read_text())
    assert document["schema"] == "safnet-spine-measurements/1"
    assert document["label_map"] == str(label_file) and document["image"] is None
    assert document["listhesis"]["L4/L5"]["direction"] == "anterior"
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Flagged: L4/L5 anterolisthesis")


def test_measure_with_name(tmp_path, label_file):
    assert main(["measure", str(label_file), "-o", str(tmp_path), "--name", "other"]) == 0
    assert (tmp_path / "other_measurements.json").is_file()


def test_missing_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["measure", str(tmp_path / "nope_seg.nii.gz"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'nope_seg.nii.gz'}: file not found"]


def test_missing_image_is_one_line_exit_2(tmp_path, label_file, capsys):
    code = main(["measure", str(label_file), "--image", str(tmp_path / "img.nii.gz"), "-o", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("img.nii.gz: file not found")


def test_segment_measure_writes_the_measurements_beside_its_outputs(tmp_path, tiny_weights):
    from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom

    image, _ = make_phantom(5, PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5)))
    source = write_volume(image, tmp_path / "case 01.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(source), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu",
                 "--progress", "none", "--measure"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["case 01_measurements.csv", "case 01_measurements.json", "case 01_measurements.png",
                     "case 01_seg.json", "case 01_seg.nii.gz"]
    document = json.loads((out / "case 01_measurements.json").read_text())
    assert document["schema"] == "safnet-spine-measurements/1"
    assert document["label_map"] == str(out / "case 01_seg.nii.gz") and document["image"] == str(source)
    summary = json.loads((out / "case 01_seg.json").read_text())
    assert "case 01_measurements.json" in summary["outputs"]


def test_measure_reads_a_seg_nrrd(tmp_path, label_file):
    from SAFNetSpineLib.io import read_volume, write_seg_nrrd

    seg = write_seg_nrrd(read_volume(label_file, is_label=True), tmp_path / "scan.seg.nrrd")
    assert main(["measure", str(seg), "-o", str(tmp_path / "out")]) == 0
    from_nifti = tmp_path / "nifti"
    assert main(["measure", str(label_file), "-o", str(from_nifti)]) == 0
    a = json.loads((tmp_path / "out" / "scan_measurements.json").read_text())
    b = json.loads((from_nifti / "scan_measurements.json").read_text())
    assert a["vertebrae"]["L3"]["middle_height_mm"] == pytest.approx(b["vertebrae"]["L3"]["middle_height_mm"], abs=0.05)
