"""Label map <-> segmentation node with slicer-core: names, colours, terminology, ids."""

from __future__ import annotations

import numpy as np
import pytest
from mrml_fixtures import GRIDS, add_volume_node

slicer = pytest.importorskip("slicer")

from SAFNetSpineMRML.segmentation_nodes import (  # noqa: E402
    labels_from_segmentation,
    segmentation_from_labels,
    structure_of_segment,
    terminology_type_code,
)
from SAFNetSpineMRML.volume_nodes import ijk_to_ras, set_ijk_to_ras, volume_from_node  # noqa: E402

from SAFNetSpineLib.errors import SpineInputError  # noqa: E402
from SAFNetSpineLib.labels import SNOMED_CATEGORY, STRUCTURES  # noqa: E402
from SAFNetSpineLib.volume import Volume  # noqa: E402

SHAPE = (16, 12, 10)
PRESENT = (1, 2, 3, 11, 12, 16)  # S, L5, L4, L5/S, L4/L5, T12/L1


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    for n, label_id in enumerate(PRESENT):
        labels[1 + 2 * n : 3 + 2 * n, 2:10, 1 + n % 3 : 8] = label_id
    return labels


def _segmented(scene, grid="flipped_oblique"):
    volume_node = add_volume_node(scene, np.ones(SHAPE, np.float32), GRIDS[grid])
    labels = volume_from_node(volume_node).with_array(_labels(), is_label=True)
    return volume_node, segmentation_from_labels(scene, labels, volume_node)


def _node_names(scene) -> list[str]:
    """Nodes of the scene (the subject hierarchy, always there in Slicer, left out)."""
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return sorted(f"{n.GetClassName()}:{n.GetName()}" for n in nodes if not n.IsA("vtkMRMLSubjectHierarchyNode"))


def _segments(segmentation_node):
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]


def _add_segment_from_mask(scene, segmentation_node, volume_node, mask_ijk, name):
    """Draw a new segment as the user would (a labelmap imported into the segmentation)."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "drawn")
    slicer.util.updateVolumeFromArray(labelmap, np.transpose(mask_ijk.astype(np.uint8), (2, 1, 0)).copy())
    set_ijk_to_ras(labelmap, ijk_to_ras(volume_node))
    before = segmentation_node.GetSegmentation().GetNumberOfSegments()
    assert slicer.vtkSlicerSegmentationsModuleLogic().ImportLabelmapToSegmentationNode(labelmap, segmentation_node)
    scene.RemoveNode(labelmap)
    segment = segmentation_node.GetSegmentation().GetNthSegment(before)
    segment.SetName(name)
    return segment


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_segments_carry_table_names_colours_and_terminology(scene, grid):
    volume_node, segmentation_node = _segmented(scene, grid)
    segments = _segments(segmentation_node)
    assert [s.GetName() for s in segments] == [STRUCTURES[i].short_name for i in PRESENT]
    for segment, label_id in zip(segments, PRESENT, strict=True):
        s = STRUCTURES[label_id]
        np.testing.assert_allclose(segment.GetColor(), s.color_float, atol=1e-6)
        assert terminology_type_code(segment) == (SNOMED_CATEGORY[1], s.snomed_code)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(segment.GetTerminology(), entry)
        assert entry.GetCategoryObject().GetCodeMeaning() == SNOMED_CATEGORY[2]
        assert entry.GetTypeObject().GetCodeMeaning() == s.snomed_meaning
    # the segmentation references the input volume's geometry
    geometry = segmentation_node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    matrix = np.array([float(v) for v in geometry.split(";")[:16]]).reshape(4, 4)
    np.testing.assert_allclose(matrix, ijk_to_ras(volume_node), atol=1e-9)
    assert [int(v) for v in geometry.split(";")[16:] if v] == [0, SHAPE[0] - 1, 0, SHAPE[1] - 1, 0, SHAPE[2] - 1]


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_round_trip_gives_back_the_label_map_exactly(scene, grid):
    volume_node, segmentation_node = _segmented(scene, grid)
    nodes_before = _node_names(scene)
    export = labels_from_segmentation(scene, segmentation_node, volume_node)
    assert _node_names(scene) == nodes_before  # temporary export nodes removed
    assert export.reviewed_ids == PRESENT
    assert export.unknown_segments == ()
    assert export.labels.same_grid(volume_from_node(volume_node))
    np.testing.assert_array_equal(export.labels.array, _labels())


def test_renamed_reordered_and_added_segments_map_to_table_ids(scene):
    volume_node, segmentation_node = _segmented(scene)
    segmentation = segmentation_node.GetSegmentation()
    by_name = {s.GetName(): s for s in _segments(segmentation_node)}
    by_name["L4"].SetName("my favourite bone")  # renamed: terminology still says L4
    disc = by_name["L5/S"]
    disc.RemoveTag(disc.GetTerminologyEntryTagName())  # terminology gone, name spelled differently
    disc.SetName("L5/S1")
    segmentation.SetSegmentIndex(segmentation.GetSegmentIdBySegmentName("T12/L1"), 0)  # reordered
    added = np.zeros(SHAPE, bool)
    added[14:16, 2:5, 2:5] = True
    _add_segment_from_mask(scene, segmentation_node, volume_node, added, "T11")
    screw = np.zeros(SHAPE, bool)
    screw[0, 0:3, 0:3] = True
    _add_segment_from_mask(scene, segmentation_node, volume_node, screw, "pedicle screw")

    assert structure_of_segment(by_name["L4"]).short_name == "L4"
    assert structure_of_segment(disc).short_name == "L5/S"
    export = labels_from_segmentation(scene, segmentation_node, volume_node)
    expected = _labels()
    expected[added] = 8  # T11
    np.testing.assert_array_equal(export.labels.array, expected)
    assert export.reviewed_ids == tuple(sorted((*PRESENT, 8)))
    assert export.unknown_segments == ("pedicle screw",)  # reported, not exported
    assert not np.any(export.labels.array[screw & (expected == 0)])


def test_no_known_segment_is_an_error_naming_the_segments(scene):
    volume_node, segmentation_node = _segmented(scene)
    for segment in _segments(segmentation_node):
        segment.RemoveTag(segment.GetTerminologyEntryTagName())
        segment.SetName(f"thing {segment.GetName()}")
    with pytest.raises(SpineInputError, match="no segment matches.*thing L4"):
        labels_from_segmentation(scene, segmentation_node, volume_node)


def test_bad_labels_leave_no_node_behind(scene):
    volume_node = add_volume_node(scene, np.ones(SHAPE, np.float32), GRIDS["oblique_anisotropic"])
    count = scene.GetNumberOfNodes()
    bad = volume_from_node(volume_node).with_array(np.full(SHAPE, 25, np.uint8), is_label=True)
    with pytest.raises(SpineInputError, match="25"):
        segmentation_from_labels(scene, bad, volume_node)
    off_grid = Volume.from_affine_ras(np.zeros((4, 4, 4), np.uint8), np.eye(4), is_label=True)
    with pytest.raises(SpineInputError, match="grid"):
        segmentation_from_labels(scene, off_grid, volume_node)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    assert scene.GetNumberOfNodes() <= count + 1  # at most the shared colour table
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationDisplayNode") == 0


def test_segmentation_named_after_volume_and_under_its_transform(scene):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    volume_node = add_volume_node(scene, np.ones(SHAPE, np.float32), GRIDS["permuted_sagittal"], "Patient 7 T2")
    volume_node.SetAndObserveTransformNodeID(transform.GetID())
    labels = volume_from_node(volume_node).with_array(_labels(), is_label=True)
    segmentation_node = segmentation_from_labels(scene, labels, volume_node)
    assert segmentation_node.GetName() == "Patient 7 T2 spine"
    assert segmentation_node.GetTransformNodeID() == transform.GetID()


def test_writing_into_a_chosen_node_replaces_its_segments_and_keeps_the_node(scene):
    volume_node, first = _segmented(scene)
    first.SetName("my spine")
    display_id = first.GetDisplayNodeID()
    first.GetSegmentation().AddEmptySegment("", "a note of the user")
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:6, 2:10, 2:8] = 3  # only L4 now
    nodes_before = scene.GetNumberOfNodes()
    result = segmentation_from_labels(scene, volume_from_node(volume_node).with_array(labels, is_label=True),
                                      volume_node, target=first)
    assert result is first and first.GetName() == "my spine" and first.GetDisplayNodeID() == display_id
    segmentation = first.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["L4"]
    assert scene.GetNumberOfNodes() == nodes_before  # no new node, no leftover label map
    export = labels_from_segmentation(scene, first, volume_node)
    np.testing.assert_array_equal(export.labels.array, labels)


def test_bad_labels_leave_the_chosen_node_untouched(scene):
    volume_node, first = _segmented(scene)
    count = first.GetSegmentation().GetNumberOfSegments()
    bad = np.full(SHAPE, 99, np.uint8)
    with pytest.raises(SpineInputError):
        segmentation_from_labels(scene, volume_from_node(volume_node).with_array(bad, is_label=True), volume_node,
                                 target=first)
    assert first.GetSegmentation().GetNumberOfSegments() == count


def test_show_in_3d_makes_closed_surfaces(scene):
    from SAFNetSpineMRML.segmentation_nodes import show_in_3d

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():  # Slicer's Segmentations module registers this rule at startup
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    _, node = _segmented(scene)
    closed = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert not node.GetSegmentation().ContainsRepresentation(closed)
    assert show_in_3d(node)
    assert node.GetSegmentation().ContainsRepresentation(closed)
    assert node.GetDisplayNode().GetPreferredDisplayRepresentationName3D() == closed


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_the_dashboard_self_check_passes_and_cleans_up(scene, grid):
    from SAFNetSpineMRML.self_check import check_label_round_trip

    volume_node = add_volume_node(scene, np.random.default_rng(1).normal(size=(20, 24, 16)).astype(np.float32),
                                  GRIDS[grid])
    assert check_label_round_trip(scene, volume_node) == []
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    label_volume = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert check_label_round_trip(scene, label_volume)  # a bad input is reported, not raised
