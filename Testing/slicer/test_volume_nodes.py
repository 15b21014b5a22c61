"""Volume nodes <-> Volume and files with slicer-core: IJK-to-RAS kept exactly."""

from __future__ import annotations

import numpy as np
import pytest
from mrml_fixtures import GRIDS, add_volume_node

sitk = pytest.importorskip("SimpleITK")
pytest.importorskip("slicer")

from SAFNetSpineMRML.volume_nodes import (  # noqa: E402
    align_to_grid,
    ijk_to_ras,
    input_volume_problem,
    labelmap_node_from_volume,
    read_label_file,
    volume_from_node,
    write_volume_node,
)

from SAFNetSpineLib.errors import SpineInputError  # noqa: E402
from SAFNetSpineLib.volume import Volume  # noqa: E402

SHAPE = (9, 7, 5)


def _image(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 30, SHAPE).astype(np.float32)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_volume_from_node_keeps_array_and_affine(scene, grid):
    array = _image()
    node = add_volume_node(scene, array, GRIDS[grid])
    volume = volume_from_node(node)
    assert volume.shape == SHAPE
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.affine_ras, GRIDS[grid], atol=1e-12)
    # LPS geometry of the library object: first two rows of RAS negated
    np.testing.assert_allclose(volume.affine_lps[:2], -GRIDS[grid][:2], atol=1e-12)


@pytest.mark.parametrize("suffix, atol", [(".nrrd", 1e-9), (".nii.gz", 1e-4)])
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_written_file_has_the_nodes_geometry(scene, tmp_path, grid, suffix, atol):
    array = _image(1)
    node = add_volume_node(scene, array, GRIDS[grid])
    path = write_volume_node(node, tmp_path / f"input{suffix}")
    written = Volume.from_sitk(sitk.ReadImage(str(path)))
    np.testing.assert_allclose(written.affine_ras, GRIDS[grid], atol=atol)
    np.testing.assert_array_equal(written.array, array)
    assert node.GetStorageNode() is None  # the node's own storage settings untouched


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_result_label_comes_back_on_the_input_grid(scene, tmp_path, grid):
    """Label written by the library (SimpleITK, LPS) -> label map node with the input's exact matrix."""
    node = add_volume_node(scene, _image(2), GRIDS[grid])
    labels = np.random.default_rng(3).integers(0, 20, SHAPE).astype(np.uint8)
    reference = volume_from_node(node)
    path = tmp_path / "input_seg.nii.gz"
    sitk.WriteImage(reference.with_array(labels, is_label=True).to_sitk(), str(path))
    labelmap = labelmap_node_from_volume(scene, read_label_file(path), node, "labels")
    assert np.array_equal(ijk_to_ras(labelmap), ijk_to_ras(node))
    np.testing.assert_array_equal(volume_from_node(labelmap).array, labels)


@pytest.mark.parametrize("order", ["RAS", "LPI", "ASL"])
def test_align_to_grid_undoes_reorientation(order):
    reference = Volume.from_affine_ras(np.zeros(SHAPE), GRIDS["flipped_oblique"])
    labels = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    original = reference.with_array(labels, is_label=True)
    reoriented = Volume.from_sitk(sitk.DICOMOrient(original.to_sitk(), order), is_label=True)
    assert reoriented.shape != SHAPE or not np.array_equal(reoriented.array, labels)
    np.testing.assert_array_equal(align_to_grid(reoriented, reference), labels)


def test_align_to_grid_rejects_shifted_or_resampled_grids():
    reference = Volume.from_affine_ras(np.zeros(SHAPE), GRIDS["oblique_anisotropic"])
    shifted = GRIDS["oblique_anisotropic"].copy()
    shifted[:3, 3] += GRIDS["oblique_anisotropic"][:3, 0]  # one voxel along i
    with pytest.raises(SpineInputError, match="grid"):
        align_to_grid(Volume.from_affine_ras(np.zeros(SHAPE), shifted), reference)
    finer = GRIDS["oblique_anisotropic"].copy()
    finer[:3, 2] /= 2
    with pytest.raises(SpineInputError, match="grid"):
        align_to_grid(Volume.from_affine_ras(np.zeros(SHAPE), finer), reference)
    with pytest.raises(SpineInputError, match="shape"):
        align_to_grid(Volume.from_affine_ras(np.zeros((9, 7, 6)), GRIDS["oblique_anisotropic"]), reference)


def test_input_volume_problem_names_each_bad_input(scene):
    good = add_volume_node(scene, _image(), GRIDS["oblique_anisotropic"])
    assert input_volume_problem(good) is None
    assert "Select" in input_volume_problem(None)
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "seg")
    assert "LabelMapVolume" in input_volume_problem(label)
    vector = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    assert "VectorVolume" in input_volume_problem(vector)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    assert "no voxel data" in input_volume_problem(empty)
    flat = add_volume_node(scene, np.ones((9, 7, 1), np.float32), np.eye(4), "flat")
    assert "3D" in input_volume_problem(flat)


def test_read_label_file_reports_missing_file(tmp_path):
    with pytest.raises(SpineInputError, match="not found"):
        read_label_file(tmp_path / "nothing_seg.nii.gz")
