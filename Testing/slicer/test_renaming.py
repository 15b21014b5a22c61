"""Rename levels on real MRML segmentation nodes (slicer-core): one point, every segment renamed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

slicer = pytest.importorskip("slicer")

from mrml_fixtures import add_volume_node  # noqa: E402
from SAFNetSpineMRML.renaming import rename_levels  # noqa: E402
from SAFNetSpineMRML.segmentation_nodes import (  # noqa: E402
    labels_from_segmentation,
    segmentation_from_labels,
    terminology_type_code,
)
from spine_maps import FULL, centre_ras, names_of, spine  # noqa: E402

from SAFNetSpineLib.errors import SpineInputError  # noqa: E402
from SAFNetSpineLib.labels import SNOMED_CATEGORY, structure_by_name  # noqa: E402

NO_SACRUM = FULL[1:]
ONE_TOO_HIGH = ["L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1", "T12/L1", "T12", "T11/T12", "T11"]


def _scene_with_spine(scene, direction, names=ONE_TOO_HIGH):
    labels = spine(NO_SACRUM, direction, names=names)
    volume_node = add_volume_node(scene, np.zeros(labels.shape, np.float32), labels.affine_ras)
    return volume_node, segmentation_from_labels(scene, labels, volume_node)


def _nodes(scene) -> list[str]:
    """Nodes of the scene (the subject hierarchy, always there in Slicer, left out)."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return sorted(n.GetID() for n in nodes if not n.IsA("vtkMRMLSubjectHierarchyNode"))


def _names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


@pytest.mark.parametrize("direction", ["oblique", "flipped_oblique", "permuted_sagittal"])
def test_one_point_renames_every_segment_with_table_colour_and_terminology(scene, direction):
    volume_node, segmentation_node = _scene_with_spine(scene, direction)
    nodes_before = _nodes(scene)
    result = rename_levels(scene, segmentation_node, centre_ras(NO_SACRUM, 5), "L3")  # the true L3, called L2
    assert result.naming["anchor"] == "hint" and result.naming["status"] == "confident"
    assert _nodes(scene) == nodes_before  # nothing left behind
    assert sorted(_names(segmentation_node)) == sorted(NO_SACRUM)
    assert len(result.renamed) == len(NO_SACRUM) and not result.split_segments
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        s = structure_by_name(segment.GetName())
        np.testing.assert_allclose(segment.GetColor(), s.color_float, atol=1e-6)
        assert terminology_type_code(segment) == (SNOMED_CATEGORY[1], s.snomed_code)
    # the voxels did not move: exported again, every structure sits where its true name says
    exported = labels_from_segmentation(scene, segmentation_node, volume_node)
    assert names_of(exported.labels, NO_SACRUM) == NO_SACRUM


def test_a_point_in_world_coordinates_under_a_transform(scene):
    volume_node, segmentation_node = _scene_with_spine(scene, "oblique")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = slicer.vtk.vtkMatrix4x4() if hasattr(slicer, "vtk") else __import__("vtk").vtkMatrix4x4()
    matrix.SetElement(0, 3, 40.0)
    matrix.SetElement(2, 3, -25.0)
    transform.SetMatrixTransformToParent(matrix)
    segmentation_node.SetAndObserveTransformNodeID(transform.GetID())
    r, a, s = centre_ras(NO_SACRUM, 5)
    rename_levels(scene, segmentation_node, (r + 40.0, a, s - 25.0), "L3")
    assert sorted(_names(segmentation_node)) == sorted(NO_SACRUM)


def test_errors_and_segments_that_are_not_levels(scene):
    volume_node, segmentation_node = _scene_with_spine(scene, "oblique")
    segmentation = segmentation_node.GetSegmentation()
    segmentation.GetNthSegment(0).SetName("my note")
    segmentation.GetNthSegment(0).SetTerminology("")
    before = _names(segmentation_node)
    # The library takes the user's point as right unless it is outside the image (issue 22).
    with pytest.raises(SpineInputError, match="outside the image"):
        r, a, s = centre_ras(NO_SACRUM, 5)
        rename_levels(scene, segmentation_node, (r, a - 3000.0, s), "L3")
    assert _names(segmentation_node) == before  # an error renames nothing
    with pytest.raises(SpineInputError, match="not a vertebra or disc"):
        rename_levels(scene, segmentation_node, centre_ras(NO_SACRUM, 5), "C7")
    result = rename_levels(scene, segmentation_node, centre_ras(NO_SACRUM, 5), "L3")
    assert result.unknown_segments == ["my note"]
    assert _names(segmentation_node)[0] == "my note"


def test_a_segment_holding_two_levels_is_reported(scene):
    names = list(NO_SACRUM)
    names[3] = names[5] = "L3"  # L4 and L3 in one segment "L3"
    volume_node, segmentation_node = _scene_with_spine(scene, "oblique", names)
    result = rename_levels(scene, segmentation_node, centre_ras(NO_SACRUM, 1), "L5")
    assert result.split_segments
