"""The measurement files: CSV and JSON agree, the summary flags what it should, the PNG is drawn."""

import csv
import json

import numpy as np
import pytest
from spine_model import SAGITTAL, lumbar_spine, rasterise, rotation

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.measurements import measure_label_file, measure_spine, measurement_rows, summary_line
from SAFNetSpineLib.measurements.report import ROW_COLUMNS, measurement_stem
from SAFNetSpineLib.volume import Volume


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A wedged, slipped spine written as NAME_seg.nii.gz with an image, measured from the files."""
    folder = tmp_path_factory.mktemp("measure")
    spine = lumbar_spine({"L5": 22.0, "L4": 14.0, "L3": 7.0, "L2": 0.0, "L1": -6.0},
                         heights={"L2": (16.0, 26.0)}, shifts={"L4": 6.0})
    labels = rasterise(spine, rotation((1, 0.2, 0), 10.0) @ SAGITTAL, (3.0, 1.1, 1.1))
    rng = np.random.default_rng(0)
    image = labels.with_array((labels.array > 0) * 400.0 + rng.normal(100, 20, labels.shape), is_label=False)
    label_path = write_volume(labels, folder / "case 7_seg.nii.gz")
    image_path = write_volume(image, folder / "case 7.nii.gz")
    measurements, paths = measure_label_file(label_path, folder / "out", image_path)
    return measurements, paths


def test_three_files_named_after_the_label_map(written):
    _, paths = written
    assert [p.name for p in paths] == ["case 7_measurements.json", "case 7_measurements.csv",
                                      "case 7_measurements.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".tmp-")]


def test_csv_and_json_agree(written):
    _, paths = written
    document = json.loads(paths[0].read_text())
    rows = list(csv.DictReader(paths[1].open()))
    assert tuple(rows[0].keys()) == ROW_COLUMNS
    by_level = {r["level"]: r for r in rows}
    checked = 0
    for section in ("vertebrae", "discs"):
        for level, entry in document[section].items():
            for field, value in entry.items():
                if field in ROW_COLUMNS:
                    assert float(by_level[level][field]) == value, (level, field)
                    checked += 1
    for level, angle in document["angles_deg"]["segmental"].items():
        assert float(by_level[level]["angle_deg"]) == angle
    for level, slip in document["listhesis"].items():
        for field, value in slip.items():
            cell = by_level[level][field]
            assert (cell == value) if isinstance(value, str) else float(cell) == value
            checked += 1
    assert float(by_level["L1-S1"]["angle_deg"]) == document["angles_deg"]["lumbar_lordosis_L1_S1"]
    assert by_level["T12/L1"]["not_measured"] == "segmental: T12 not in the label map; listhesis: T12 not in the label map"
    assert checked > 50
    # A value in one must be in the other: no CSV cell without a JSON value.
    for row in rows:
        for field in ROW_COLUMNS[2:-1]:
            if row[field] != "" and row["kind"] in ("vertebra", "disc") and field != "angle_deg":
                source = document["vertebrae" if row["kind"] == "vertebra" else "discs"].get(row["level"], {})
                source = {**source, **document["listhesis"].get(row["level"], {})}
                assert field in source, (row["level"], field)


def test_summary_flags_grades_and_slips(written):
    measurements, _ = written
    line = summary_line(measurements)
    assert line.startswith("Flagged:") and "L2 Genant grade" in line and "L4/L5 anterolisthesis" in line
    assert "L1-S1 lordosis" in line and "\n" not in line


def test_summary_of_a_normal_spine():
    spine = lumbar_spine({"L5": 20.0, "L4": 12.0, "L3": 5.0})
    result = measure_spine(rasterise(spine, SAGITTAL, (3.0, 1.0, 1.0)))
    assert summary_line(result).startswith("No body with Genant grade >= 1 and no slip >= 3 mm (3 bodies")
    rows = measurement_rows(result)
    assert [r["level"] for r in rows][:6] == ["L2/L3", "L3", "L3/L4", "L4", "L4/L5", "L5"]
    assert rows[0]["not_measured"] == "segmental: L2 not in the label map; listhesis: L2 not in the label map"
    assert [r["level"] for r in rows][-2:] == ["L1-S1", "L1-L5"]


def test_stem_and_bad_label_values(tmp_path):
    assert measurement_stem("a/b/scan_seg.nii.gz") == "scan"
    assert measurement_stem("scan.seg.nrrd") == "scan"
    assert measurement_stem("mask.nrrd") == "mask"
    bad = Volume(np.full((8, 8, 8), 40, np.uint8), is_label=True)
    path = write_volume(bad, tmp_path / "bad.nii.gz")
    with pytest.raises(SpineInputError, match="bad.nii.gz: label values \\[40\\]"):
        measure_label_file(path, tmp_path / "out")
