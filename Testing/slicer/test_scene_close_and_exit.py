"""Close Scene while a job runs, and Slicer closing while a job runs (issue 21, defects 5 and 6).

Close Scene is ``vtkMRMLScene::Clear``, which resets the node ID counters: with slicer-core's
real scene a volume loaded afterwards gets the ID the segmented one had. Closing Slicer
is the Widget's ``cleanup`` -> ``JobBoard.stop_all``; it is run in a separate Python that
exits right after, as Slicer does, so a kill left to a daemon thread would never happen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from mrml_fixtures import GRIDS, add_volume_node  # noqa: E402
from SAFNetSpineJobs import commands  # noqa: E402
from SAFNetSpineMRML.measure_runs import MeasurementRun, measured_segmentation  # noqa: E402
from SAFNetSpineMRML.segment_runs import discard_run, finish_segmentation, prepare_segmentation  # noqa: E402
from SAFNetSpineMRML.volume_nodes import volume_from_node  # noqa: E402

from SAFNetSpineLib.io.volume_io import write_volume  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SAFNetSpine"
SHAPE = (12, 10, 6)


def _volume(scene, name="MRI"):
    array = np.random.default_rng(0).normal(100, 20, SHAPE).astype(np.float32)
    return add_volume_node(scene, array, GRIDS["oblique_anisotropic"], name)


def _prepared_run_with_result(scene, tmp_path):
    """A segment run whose child 'finished': the library's output files for a label map of one level."""
    volume = _volume(scene)
    _args, run = prepare_segmentation(volume, sys.executable, None, "cpu", temp_dir=str(tmp_path))
    label_path, summary_path = commands.result_paths(run.folder / "out", run.input_path)
    label_path.parent.mkdir(parents=True)
    image = volume_from_node(volume)
    labels = np.zeros(image.shape, np.uint8)
    labels[3:9, 2:8, 1:5] = 3  # one level, on the input's grid
    write_volume(image.with_array(labels, is_label=True), label_path)
    summary_path.write_text(json.dumps({"model_version": "test"}), encoding="utf-8")
    return volume, run


def test_a_result_is_loaded_into_the_volume_it_came_from(scene, tmp_path):
    """The control: the same result files load when the scene was left alone."""
    volume, run = _prepared_run_with_result(scene, tmp_path)
    try:
        node, summary = finish_segmentation(scene, run)
    finally:
        discard_run(run)
    assert summary["model_version"] == "test" and node.GetSegmentation().GetNumberOfSegments() == 1
    assert node.GetScene() is scene and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    assert node.GetName().startswith(volume.GetName()) and not run.folder.exists()


def test_after_close_scene_a_result_is_refused_not_put_on_the_new_volume(scene, tmp_path):
    old_volume, run = _prepared_run_with_result(scene, tmp_path)
    old_id = old_volume.GetID()
    scene.Clear(0)  # File > Close Scene
    new_volume = _volume(scene, "another patient")
    assert new_volume.GetID() == old_id  # the counters were reset: the saved ID names the new volume
    try:
        with pytest.raises(ValueError, match="scene was closed"):
            finish_segmentation(scene, run)
    finally:
        discard_run(run)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # nothing added


def test_after_close_scene_a_measurement_is_refused(scene, tmp_path):
    volume = _volume(scene)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "spine")
    run = MeasurementRun(segmentation, volume, tmp_path)
    assert measured_segmentation(scene, run) is segmentation
    scene.Clear(0)
    _volume(scene)
    replacement = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "another spine")
    assert replacement.GetID() == segmentation.GetID()
    with pytest.raises(ValueError, match="scene was closed"):
        measured_segmentation(scene, run)


def test_the_panel_cancels_jobs_on_close_scene_and_never_loses_its_parameter_node():
    text = (MODULE_DIR / "SAFNetSpine.py").read_text(encoding="utf-8")
    close = text[text.index("    def onSceneStartClose"):text.index("    def onSceneEndClose")]
    assert '("segment", "measure")' in close and "self.jobs.cancel(role)" in close
    prop = text[text.index("    def parameterNode(self):"):text.index("    def onStoresChanged")]
    assert "self._parameterNode or self.logic.getParameterNode()" in prop
    measure = (MODULE_DIR / "SAFNetSpineWidgets" / "measure_section.py").read_text(encoding="utf-8")
    assert "measured_segmentation(slicer.mrmlScene, run)" in measure and "GetNodeByID" not in measure


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent does not count)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_closing_slicer_mid_job_leaves_no_process_and_no_patient_image(tmp_path):
    """The Widget's cleanup, then the interpreter exits at once (as Slicer does)."""
    folder = tmp_path / "SAFNetSpine-run"
    folder.mkdir()
    (folder / "input.nrrd").write_bytes(b"patient image")
    stubborn = "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(os.getpid(), flush=True); time.sleep(120)"
    script = textwrap.dedent(f"""
        import shutil, sys, time
        sys.path.insert(0, {str(MODULE_DIR)!r})
        from SAFNetSpineJobs.board import JobBoard
        from SAFNetSpineJobs.jobs import ChildJob
        board = JobBoard(ChildJob)
        job = board.start("segment", [sys.executable, "-c", {stubborn!r}], lambda job, context: None,
                          cleanup=lambda: shutil.rmtree({str(folder)!r}, ignore_errors=True))
        lines = []
        while not lines:
            lines = job.poll()
            time.sleep(0.02)
        print(lines[0], flush=True)
        board.stop_all(grace_s=0.5)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    assert not _alive(pid), "the child that ignores SIGTERM outlived the application"
    assert not folder.exists(), "the temporary copy of the patient image was left on disk"


def test_widget_cleanup_stops_the_timer_and_every_job_with_its_files():
    text = (MODULE_DIR / "SAFNetSpine.py").read_text(encoding="utf-8")
    cleanup = text[text.index("    def cleanup(self):"):text.index("    def enter(self):")]
    assert "self._timer.stop()" in cleanup and "self.jobs.stop_all(" in cleanup and "cancel_all" not in cleanup
    for name, call in (("segment_section.py", "cleanup=lambda: self.logic.discardRun(run)"),
                       ("measure_section.py", "cleanup=lambda: discard_measurement(run)")):
        assert call in (MODULE_DIR / "SAFNetSpineWidgets" / name).read_text(encoding="utf-8"), name
