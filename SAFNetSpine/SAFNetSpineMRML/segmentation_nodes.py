"""Label maps <-> segmentation nodes, named, coloured and coded from the label table.

Forward (network result -> what the user edits): one segment per structure found,
named with the table's short name ("L4/L5"), its colour, and SNOMED CT terminology
(category "Anatomical Structure", type e.g. "L4/L5 disc").

Backward (corrected segmentation -> case store): every segment is mapped to a
label-table id by its terminology code first (survives renaming), then by its name
through :func:`SAFNetSpineLib.labels.structure_by_name` ("L5/S1", "l4-l5" ...).
Segments that match neither are reported by name and left out, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer
import vtk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import (
    NUM_CLASSES,
    SNOMED_CATEGORY,
    SNOMED_SCHEME,
    STRUCTURES,
    Structure,
    structure_by_name,
)
from SAFNetSpineLib.volume import Volume

from .volume_nodes import align_to_grid, ijk_to_ras, labelmap_node_from_volume, remove_node

#: Name of the colour table node that carries the label table into the scene.
COLOR_TABLE_NAME = "SAFNetSpine levels"
#: Attribute on that node with the table fingerprint, to reuse it only while it is current.
COLOR_TABLE_ATTRIBUTE = "SAFNetSpine.LabelTable"


def _fingerprint() -> str:
    return ";".join(f"{s.label_id}:{s.short_name}:{s.snomed_code}" for s in STRUCTURES)


def spine_color_table(scene):
    """The scene's colour table of the label table (created once, then reused).

    Entry ``id`` holds the structure's short name, colour and SNOMED terminology.
    """
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLColorTableNode")
        if node.GetAttribute(COLOR_TABLE_ATTRIBUTE) == _fingerprint():
            return node
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_TABLE_NAME)
    table.SetTypeToUser()
    table.SetNumberOfColors(NUM_CLASSES)
    table.SetHideFromEditors(True)
    for s in STRUCTURES:
        r, g, b = s.color_float
        table.SetColor(s.label_id, s.short_name, r, g, b, 0.0 if s.kind == "background" else 1.0)
        if s.snomed_code:
            table.SetTerminology(s.label_id, *SNOMED_CATEGORY, SNOMED_SCHEME, s.snomed_code, s.snomed_meaning)
    table.SetAttribute(COLOR_TABLE_ATTRIBUTE, _fingerprint())
    return table


def segmentation_from_labels(scene, labels: Volume, volume_node, name: str | None = None, target=None):
    """A segmentation node with one segment per structure present in ``labels``.

    Args:
        scene: The MRML scene to add nodes to.
        labels: Label map on ``volume_node``'s grid (ids of the label table), shape (I, J, K).
        volume_node: The segmented volume; its geometry becomes the reference geometry.
        name: Node name of a new node (default: ``"<volume name> spine"``).
        target: An existing segmentation node to write into: all its segments are replaced
            by the result (its name, display node and place in the scene stay). None makes
            a new node.

    Returns:
        The segmentation node (``target`` when given). Segments follow label-id order and
        carry the table's name, colour and terminology. On any failure no new node is left
        in the scene; bad label values are refused before ``target`` is touched.

    Raises:
        SpineInputError: if labels hold ids outside the table or lie on another grid.
    """
    values = np.unique(np.asarray(labels.array))
    bad = [int(v) for v in values if not (0 <= v < NUM_CLASSES and float(v).is_integer())]
    if bad:
        raise SpineInputError("segmentation result", f"label values {bad[:10]} are not in the spine label table")
    table = spine_color_table(scene)
    segmentation_node = target
    if target is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or f"{volume_node.GetName()} spine")
    labelmap_node = None
    try:
        segmentation_node.GetSegmentation().RemoveAllSegments()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        labelmap_node = labelmap_node_from_volume(scene, labels, volume_node, f"{segmentation_node.GetName()} labels")
        labelmap_node.CreateDefaultDisplayNodes()
        labelmap_node.GetDisplayNode().SetAndObserveColorNodeID(table.GetID())
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        if not logic.ImportLabelmapToSegmentationNode(labelmap_node, segmentation_node):
            raise SpineInputError("segmentation result", "Slicer could not import the label map")
        segmentation = segmentation_node.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            s = STRUCTURES[segment.GetLabelValue()]
            segment.SetName(s.short_name)
            segment.SetColor(*s.color_float)
            # Import copies names and colours, but terminology only when Slicer's
            # terminology module runs; set it from the table in every case.
            segment.SetTerminology(table.GetTerminologyAsString(s.label_id))
        segmentation_node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
        segmentation_node.CreateDefaultDisplayNodes()
    except Exception:
        if target is None:
            remove_node(scene, segmentation_node)
        raise
    finally:
        remove_node(scene, labelmap_node)
    return segmentation_node


def show_in_3d(segmentation_node) -> bool:
    """Make closed surfaces and show them in the 3D views (what Segment Editor's Show 3D does).

    Returns:
        True if the surfaces were made.
    """
    if not segmentation_node.CreateClosedSurfaceRepresentation():
        return False
    display = segmentation_node.GetDisplayNode()
    if display is not None:
        display.SetPreferredDisplayRepresentationName3D(
            slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName())
        display.SetVisibility3D(True)
    return True


def terminology_type_code(segment) -> tuple[str, str] | None:
    """(category code, type code) of a segment's terminology, or None when it has none."""
    text = segment.GetTerminology() if segment.HasTerminology() else ""
    if not text:
        return None
    entry = slicer.vtkSlicerTerminologyEntry()
    if not slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(text, entry):
        return None
    category, kind = entry.GetCategoryObject(), entry.GetTypeObject()
    if category is None or kind is None or not kind.GetCodeValue():
        return None
    return category.GetCodeValue() or "", kind.GetCodeValue()


def structure_of_segment(segment) -> Structure | None:
    """The label-table structure a segment stands for: terminology code, then name."""
    codes = terminology_type_code(segment)
    if codes is not None and codes[0] == SNOMED_CATEGORY[1]:
        for s in STRUCTURES:
            if s.snomed_code == codes[1]:
                return s
    found = structure_by_name(segment.GetName())
    return None if found is None or found.kind == "background" else found


@dataclass(frozen=True)
class LabelExport:
    """A corrected segmentation as a label-table label map.

    Attributes:
        labels: uint8 label map on the reference volume's grid, shape (I, J, K).
        reviewed_ids: Table ids of the segments present (the structures the user reviewed).
        unknown_segments: Names of segments that match no structure (left out).
    """

    labels: Volume
    reviewed_ids: tuple[int, ...]
    unknown_segments: tuple[str, ...]


def _node_ids(scene, class_name: str) -> set[str]:
    return {scene.GetNthNodeByClass(i, class_name).GetID() for i in range(scene.GetNumberOfNodesByClass(class_name))}


def labels_from_segmentation(scene, segmentation_node, reference_node) -> LabelExport:
    """Export a segmentation as label-table ids on ``reference_node``'s grid.

    Renamed, reordered and added segments are handled by :func:`structure_of_segment`;
    the export itself is Slicer's ``ExportSegmentsToLabelmapNode`` onto the reference
    volume, then each exported value is replaced by its structure's id.

    Raises:
        SpineInputError: if no segment maps to a structure.
    """
    segmentation = segmentation_node.GetSegmentation()
    mapped: dict[int, list[str]] = {}
    unknown = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        s = structure_of_segment(segment)
        if s is None:
            unknown.append(segment.GetName())
        else:
            mapped.setdefault(s.label_id, []).append(segment_id)
    if not mapped:
        names = ", ".join(unknown) or "none"
        raise SpineInputError(
            segmentation_node.GetName(), f"no segment matches a spine level of the label table (segments: {names})"
        )
    # Export in superior-to-inferior table order: value n+1 is the n-th listed segment.
    order = [(label_id, segment_id) for label_id in sorted(mapped) for segment_id in mapped[label_id]]
    segment_ids = vtk.vtkStringArray()
    for _, segment_id in order:
        segment_ids.InsertNextValue(segment_id)
    color_tables_before = _node_ids(scene, "vtkMRMLColorTableNode")
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SAFNetSpine export")
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, segment_ids, labelmap_node, reference_node):
            raise SpineInputError(segmentation_node.GetName(), "Slicer could not export the segments")
        exported = np.transpose(slicer.util.arrayFromVolume(labelmap_node), (2, 1, 0))
        lookup = np.zeros(len(order) + 1, dtype=np.uint8)
        for value, (label_id, _) in enumerate(order, start=1):
            lookup[value] = label_id
        if exported.max(initial=0) > len(order):
            raise SpineInputError(segmentation_node.GetName(), "export produced unexpected label values")
        exported_volume = Volume.from_affine_ras(lookup[exported], ijk_to_ras(labelmap_node), is_label=True)
        dims = reference_node.GetImageData().GetDimensions()
        grid = Volume.from_affine_ras(np.zeros(dims, np.uint8), ijk_to_ras(reference_node), is_label=True)
        labels = grid.with_array(align_to_grid(exported_volume, grid))
    finally:
        remove_node(scene, labelmap_node)
        # The export makes a colour table for its label map; it is ours to remove.
        for node_id in _node_ids(scene, "vtkMRMLColorTableNode") - color_tables_before:
            remove_node(scene, scene.GetNodeByID(node_id))
    return LabelExport(
        labels=labels,
        reviewed_ids=tuple(sorted(mapped)),
        unknown_segments=tuple(unknown),
    )
