"""End to end without the Slicer application: scene -> segment child process -> segmentation node -> case store.

The same calls the module's Logic makes, with slicer-core's real MRML classes, the real
``python -m SAFNetSpineLib segment`` child and the library's CaseStore; only the weights
are a tiny untrained SAFNet (tests must not depend on a trained model's quality).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")

from run_fixtures import tiny_weights  # noqa: E402
from SAFNetSpineJobs import commands  # noqa: E402
from SAFNetSpineJobs.jobs import ChildJob, ProgressUpdate, python_child_environment  # noqa: E402
from SAFNetSpineJobs.work_folders import count_stored_cases  # noqa: E402
from SAFNetSpineMRML.segment_runs import (  # noqa: E402
    MODEL_VERSION_ATTRIBUTE,
    discard_run,
    finish_segmentation,
    prepare_segmentation,
)
from SAFNetSpineMRML.segmentation_nodes import labels_from_segmentation, segmentation_from_labels  # noqa: E402
from SAFNetSpineMRML.volume_nodes import (  # noqa: E402
    align_to_grid,
    ijk_to_ras,
    read_label_file,
    volume_from_node,
    write_volume_node,
)

from SAFNetSpineLib.volume import Volume  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PHANTOM = commands.sample_volume_path(REPO)


def _load_like_slicer(scene, path: Path):
    """Load a volume file the way Slicer's Add Data does (archetype storage node)."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "SAFNetSpinePhantom")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def _segment(scene_volume, work: Path, weights: Path) -> ChildJob:
    input_path = write_volume_node(scene_volume, work / "input.nrrd")
    args = commands.segment_command(sys.executable, input_path, work / "out", weights, "cpu")
    return ChildJob(args, env=python_child_environment(str(REPO)))


def test_a_run_refills_the_chosen_segmentation_and_leaves_no_files(tmp_path):
    """The Logic's path: prepare (write input), child, finish into the selected node, discard."""
    if not PHANTOM.is_file():
        pytest.skip(f"sample volume missing: {PHANTOM}")
    scene = slicer.vtkMRMLScene()
    volume_node = _load_like_slicer(scene, PHANTOM)
    chosen = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my spine")
    chosen.GetSegmentation().AddEmptySegment("old", "an earlier segment")
    args, run = prepare_segmentation(volume_node, sys.executable, tiny_weights(tmp_path / "tiny"), "cpu",
                                     target_node=chosen, temp_dir=str(tmp_path))
    try:
        job = ChildJob(args, env=python_child_environment(str(REPO)))
        assert job.wait(timeout_s=300) == 0, job.log_tail(30)
        before = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        node, summary = finish_segmentation(scene, run)
    finally:
        discard_run(run)
    assert node is chosen and node.GetName() == "my spine"
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before  # nothing new made
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert "old" not in names and names == [s["name"] for s in sorted(summary["structures"], key=lambda s: s["id"])]
    assert node.GetAttribute(MODEL_VERSION_ATTRIBUTE) == summary["model_version"] == "tiny"
    assert not run.folder.exists()


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """One segment run on the bundled phantom, shared by the tests below."""
    if not PHANTOM.is_file():
        pytest.skip(f"sample volume missing: {PHANTOM}")
    work = tmp_path_factory.mktemp("segment")
    weights = tiny_weights(work / "tiny")
    scene = slicer.vtkMRMLScene()
    volume_node = _load_like_slicer(scene, PHANTOM)
    job = _segment(volume_node, work, weights)
    updates = []
    while not job.finished:
        updates += [i for i in job.poll() if isinstance(i, ProgressUpdate)]
        time.sleep(0.05)
        assert job.elapsed_s < 300, "segment child took too long"
    assert job.returncode == 0, job.log_tail(30)
    return scene, volume_node, work, updates


def test_progress_arrives_as_json_lines(segmented):
    _, _, _, updates = segmented
    assert len(updates) >= 3
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    assert {"read", "write"} <= {u.stage for u in updates}


def test_result_becomes_segments_on_the_input_geometry(segmented):
    scene, volume_node, work, _ = segmented
    label_path, summary_path = commands.result_paths(work / "out", work / "input.nrrd")
    summary = commands.read_json(summary_path)
    labels = read_label_file(label_path)
    segmentation_node = segmentation_from_labels(scene, labels, volume_node)
    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == [s["name"] for s in sorted(summary["structures"], key=lambda s: s["id"])]
    geometry = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    matrix = np.array([float(v) for v in geometry.split(";")[:16]]).reshape(4, 4)
    np.testing.assert_allclose(matrix, ijk_to_ras(volume_node), atol=1e-9)
    if names:  # an untrained network may find nothing; the round trip needs segments
        export = labels_from_segmentation(scene, segmentation_node, volume_node)
        reference = volume_from_node(volume_node)
        assert export.labels.same_grid(reference)
        expected = Volume.from_sitk(sitk.ReadImage(str(label_path)), is_label=True)
        np.testing.assert_array_equal(export.labels.array, align_to_grid(expected, reference))


def test_corrected_case_is_stored_exactly_and_never_overwritten(segmented, tmp_path):
    from SAFNetSpineLib.labels import STRUCTURES
    from SAFNetSpineLib.stores import CaseStore

    scene, volume_node, _, _ = segmented
    image = volume_from_node(volume_node)
    labels = np.zeros(image.shape, np.uint8)
    labels[5:10, 100:160, 100:150] = 3  # an annotator's L4, drawn on the input grid
    segmentation_node = segmentation_from_labels(scene, image.with_array(labels, is_label=True), volume_node)
    segmentation_node.GetSegmentation().GetNthSegment(0).SetName("L4 corrected")
    export = labels_from_segmentation(scene, segmentation_node, volume_node)
    store = CaseStore(tmp_path / "corrected-cases")
    first = store.add(image, export.labels, export.reviewed_ids, "tiny", note="first")
    second = store.add(image, export.labels, export.reviewed_ids, "tiny", note="second")
    assert first != second and len(store) == 2 == count_stored_cases(store.folder)
    case = store.get(first)
    assert case.reviewed_labels == (STRUCTURES[3].label_id,)
    stored_image = Volume.from_sitk(sitk.ReadImage(str(case.image_path)))
    stored_label = Volume.from_sitk(sitk.ReadImage(str(case.label_path)), is_label=True)
    assert stored_image.same_grid(image, atol=1e-3) and stored_label.same_grid(image, atol=1e-3)
    np.testing.assert_array_equal(stored_image.array, image.array)
    np.testing.assert_array_equal(stored_label.array, labels)


def test_cancel_leaves_no_result(tmp_path):
    if not PHANTOM.is_file():
        pytest.skip(f"sample volume missing: {PHANTOM}")
    scene = slicer.vtkMRMLScene()
    volume_node = _load_like_slicer(scene, PHANTOM)
    job = _segment(volume_node, tmp_path, tiny_weights(tmp_path / "tiny"))
    job.cancel(grace_s=2.0)
    assert job.wait(timeout_s=60) != 0
    label_path, summary_path = commands.result_paths(tmp_path / "out", tmp_path / "input.nrrd")
    assert not label_path.exists() and not summary_path.exists()

