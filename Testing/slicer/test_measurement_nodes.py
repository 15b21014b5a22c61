"""Measurements -> table node, height lines and lordosis angle, with slicer-core's real MRML scene."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "measurements"))
from spine_model import SAGITTAL, lumbar_spine, rasterise, rotation  # noqa: E402

from SAFNetSpineLib.errors import SpineInputError  # noqa: E402
from SAFNetSpineLib.measurements import measure_spine, measurement_rows  # noqa: E402


@pytest.fixture(scope="module")
def measurements():
    spine = lumbar_spine({"L5": 22.0, "L4": 14.0, "L3": 7.0, "L2": 0.0, "L1": -6.0},
                         heights={"L2": (15.0, 25.0)}, shifts={"L4": 6.0})
    return measure_spine(rasterise(spine, rotation((1, 0.3, 0), 15.0) @ SAGITTAL, (3.0, 1.1, 1.1)))


def _points_ras(node):
    return [np.array(node.GetNthControlPointPosition(i)) for i in range(node.GetNumberOfControlPoints())]


def test_table_holds_the_csv_rows(scene, measurements):
    from SAFNetSpineMRML.measurement_nodes import TEXT_COLUMNS, show_measurements

    nodes = show_measurements(scene, measurements, "case")
    table = nodes.table.GetTable()
    rows = measurement_rows(measurements)
    assert table.GetNumberOfRows() == len(rows)
    level = table.GetColumnByName("level")
    for index, row in enumerate(rows):
        assert level.GetValue(index) == row["level"]
        for column, value in row.items():
            if column in TEXT_COLUMNS:
                assert table.GetColumnByName(column).GetValue(index) == str(value)
            else:
                cell = table.GetColumnByName(column).GetValue(index)
                assert (math.isnan(cell) and value == "") or cell == pytest.approx(float(value)), (row["level"], column)
    assert nodes.table.GetColumnUnitLabel("anterior_height_mm") == "mm"
    assert nodes.table.GetName() == "case measurements"


def test_height_lines_and_lordosis_angle(scene, measurements):
    from SAFNetSpineMRML.measurement_nodes import show_measurements

    nodes = show_measurements(scene, measurements, "case")
    expected = 3 * (sum("middle_height_mm" in v for v in measurements["vertebrae"].values())
                    + len(measurements["discs"]))
    assert len(nodes.height_lines) == expected > 20
    by_name = {n.GetName(): n for n in nodes.height_lines}
    line = by_name["L2 anterior height"]
    a, b = _points_ras(line)
    lps = measurements["vertebrae"]["L2"]["landmarks_lps_mm"]["anterior_height"]
    np.testing.assert_allclose(a, [-lps[0][0], -lps[0][1], lps[0][2]], atol=1e-6)  # LPS -> RAS
    assert np.linalg.norm(b - a) == pytest.approx(measurements["vertebrae"]["L2"]["anterior_height_mm"], abs=0.05)
    assert line.GetLocked()
    angle = nodes.lordosis
    assert angle is not None and angle.GetNumberOfControlPoints() == 3
    assert angle.GetAngleDegrees() == pytest.approx(abs(measurements["angles_deg"]["lumbar_lordosis_L1_S1"]), abs=0.5)
    assert nodes.summary.startswith("Flagged: L2 Genant grade")
    assert "L4/L5 anterolisthesis" in nodes.summary


def test_showing_again_replaces_the_nodes(scene, measurements):
    from SAFNetSpineMRML.measurement_nodes import remove_measurement_nodes, show_measurements

    first = show_measurements(scene, measurements, "case")
    count = scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode")
    second = show_measurements(scene, measurements, "case")
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode") == count
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1
    assert first.table.GetScene() is None and second.table.GetScene() is scene
    other = show_measurements(scene, measurements, "other")
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 2
    assert remove_measurement_nodes(scene, "other") == len(other.all_nodes())
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsAngleNode") == 1


def test_no_lordosis_without_sacrum(scene):
    from SAFNetSpineMRML.measurement_nodes import show_measurements

    spine = lumbar_spine({"L5": 20.0, "L4": 12.0}, sacrum_tilt=None)
    nodes = show_measurements(scene, measure_spine(rasterise(spine, SAGITTAL, (3.0, 1.0, 1.0))), "small")
    assert nodes.lordosis is None and len(nodes.height_lines) == 9  # L5, L4 and the L4/L5 disc


def test_read_measurements_refuses_other_files(tmp_path, measurements):
    from SAFNetSpineMRML.measurement_nodes import read_measurements

    good = tmp_path / "a_measurements.json"
    good.write_text(json.dumps(measurements))
    assert read_measurements(good)["schema"] == measurements["schema"]
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(SpineInputError, match="b.json: not a measurements JSON file"):
        read_measurements(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(SpineInputError, match="c.json: not a measurements file of schema"):
        read_measurements(tmp_path / "c.json")
    with pytest.raises(SpineInputError, match="file not found"):
        read_measurements(tmp_path / "missing.json")
