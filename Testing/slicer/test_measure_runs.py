"""Measure from the scene: export the segmentation, run ``measure`` as a child, read the rows back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from mrml_fixtures import add_volume_node  # noqa: E402
from SAFNetSpineJobs import commands  # noqa: E402
from SAFNetSpineJobs.jobs import ChildJob, python_child_environment  # noqa: E402
from SAFNetSpineMRML.measure_runs import discard_measurement, finish_measurement, prepare_measurement  # noqa: E402
from SAFNetSpineMRML.segmentation_nodes import segmentation_from_labels  # noqa: E402
from SAFNetSpineMRML.volume_nodes import volume_from_node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Testing" / "measurements"))
from spine_model import SAGITTAL, lumbar_spine, rasterise  # noqa: E402


def test_measure_run_reads_the_library_rows_and_cleans_up(scene, tmp_path):
    spine = lumbar_spine({"L5": 20.0, "L4": 12.0, "L3": 5.0, "L2": 0.0, "L1": -4.0}, shifts={"L4": 7.0})
    labels = rasterise(spine, SAGITTAL, (3.0, 1.2, 1.2))
    volume_node = add_volume_node(scene, (np.asarray(labels.array) > 0).astype(np.float32) * 100, labels.affine_ras)
    grid = volume_from_node(volume_node)
    assert grid.same_grid(labels, atol=1e-6)
    node = segmentation_from_labels(scene, grid.with_array(np.asarray(labels.array), is_label=True), volume_node)
    args, run = prepare_measurement(scene, node, volume_node, sys.executable, str(tmp_path))
    try:
        assert args[3] == "measure"
        job = ChildJob(args, env=python_child_environment(str(REPO)))
        assert job.wait(timeout_s=300) == 0, job.log_tail(20)
        measurements, rows, summary = finish_measurement(run)
    finally:
        discard_measurement(run)
    assert not run.folder.exists()
    assert measurements["listhesis"]["L4/L5"]["direction"] == "anterior"
    assert summary.startswith("Flagged: L4/L5 anterolisthesis")
    by_level = {r["level"]: r for r in rows}
    assert by_level["L4/L5"]["slip_mm"] == measurements["listhesis"]["L4/L5"]["slip_mm"]
    cells = commands.measurement_cells(by_level["L3"])
    assert cells[0] == "L3" and cells[2] == str(measurements["vertebrae"]["L3"]["middle_height_mm"])

