"""Rename levels: one point and one name rename every segment by counting, without the network.

The user places a point on any vertebra or disc and says what it is ("L3"). The
segments are exported to a label map (each segment its own value), the library names
every body and disc by counting from that point along the spine
(:func:`SAFNetSpineLib.inference.naming.name_levels`), and each segment takes the name
most of its voxels received, with that structure's colour and SNOMED CT terminology
from the label table, as :func:`.segmentation_nodes.segmentation_from_labels` sets them.
The segments' voxels are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import slicer
import vtk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming import LevelHint, name_levels
from SAFNetSpineLib.labels import NUM_CLASSES, STRUCTURES, structure_by_name
from SAFNetSpineLib.volume import Volume

from .segmentation_nodes import spine_color_table, structure_of_segment
from .volume_nodes import ijk_to_ras, remove_node

#: A segment whose voxels the count splits between names, with at least this share in a second
#: name, holds several levels (reported; it keeps the majority name).
SPLIT_SHARE = 0.2


@dataclass
class RenameResult:
    """What :func:`rename_levels` did.

    Attributes:
        naming: ``{"status", "anchor", "reason"}`` as in ``NAME_seg.json``.
        renamed: Segment id -> (old name, new name), for the segments whose name changed.
        name_confidence: Segment id -> confidence (0..1) of its new name.
        unknown_segments: Names of segments that match no level (left as they were).
        split_segments: Names of segments the count splits between levels (kept whole).
    """

    naming: dict
    renamed: dict[str, tuple[str, str]] = field(default_factory=dict)
    name_confidence: dict[str, float] = field(default_factory=dict)
    unknown_segments: list[str] = field(default_factory=list)
    split_segments: list[str] = field(default_factory=list)


def world_to_node(node, point_ras) -> np.ndarray:
    """A world RAS point in the coordinates of ``node`` (under its parent transforms, if any)."""
    point = np.asarray(point_ras, dtype=np.float64)
    parent = node.GetParentTransformNode()
    if parent is None:
        return point
    transform = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, parent, transform)
    return np.asarray(transform.TransformPoint(*point), dtype=np.float64)


def _export(scene, segmentation_node, segment_ids: list[str], reference_node):
    """The segments as one label map, value n + 1 for ``segment_ids[n]`` (a Volume, RAS geometry kept)."""
    ids = vtk.vtkStringArray()
    for segment_id in segment_ids:
        ids.InsertNextValue(segment_id)
    colour_tables = {scene.GetNthNodeByClass(i, "vtkMRMLColorTableNode").GetID()
                     for i in range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode"))}
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SAFNetSpine rename")
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap_node, reference_node):
            raise SpineInputError(segmentation_node.GetName(), "Slicer could not export the segments")
        array = np.transpose(slicer.util.arrayFromVolume(labelmap_node), (2, 1, 0)).copy()
        return Volume.from_affine_ras(array, ijk_to_ras(labelmap_node), is_label=True)
    finally:
        remove_node(scene, labelmap_node)
        # The export makes a colour table for its label map; it is ours to remove.
        for index in reversed(range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode"))):
            node = scene.GetNthNodeByClass(index, "vtkMRMLColorTableNode")
            if node.GetID() not in colour_tables:
                remove_node(scene, node)


def set_segment_structure(segment, label_id: int, table) -> None:
    """Name, colour and terminology of a segment from the label table (as segmentation_from_labels sets them)."""
    s = STRUCTURES[label_id]
    segment.SetName(s.short_name)
    segment.SetColor(*s.color_float)
    segment.SetTerminology(table.GetTerminologyAsString(s.label_id))


def rename_levels(scene, segmentation_node, point_ras, name: str, reference_node=None) -> RenameResult:
    """Rename every level segment by counting from the structure at ``point_ras``, which is ``name``.

    Args:
        scene: The MRML scene.
        segmentation_node: Segmentation with one segment per level (names or SNOMED codes
            of the label table; other segments are left alone).
        point_ras: The point (R, A, S) in world mm, e.g. a markup control point.
        name: Level name of the structure at the point ("L3", "L4/L5", "S", "L5/S1" ...).
        reference_node: Volume whose grid the segments are exported on (default: the
            segmentation's own geometry).

    Returns:
        :class:`RenameResult`. Segments are renamed in place (name, colour,
        terminology); their voxels are unchanged.

    Raises:
        SpineInputError: unknown name, no level segment, or a point outside the image.
    """
    wanted = structure_by_name(str(name))
    if wanted is None or wanted.kind == "background":
        raise SpineInputError(None, f"{name!r} is not a vertebra or disc of the label table (S, L5 ... T9, L5/S ...)")
    segmentation = segmentation_node.GetSegmentation()
    level_ids, structures, unknown = [], [], []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        s = structure_of_segment(segmentation.GetSegment(segment_id))
        if s is None:
            unknown.append(segmentation.GetSegment(segment_id).GetName())
        else:
            level_ids.append(segment_id)
            structures.append(s.label_id)
    if not level_ids:
        raise SpineInputError(segmentation_node.GetName(), "no segment is a vertebra or disc of the label table")
    exported = _export(scene, segmentation_node, level_ids, reference_node)
    values = np.asarray(exported.array)
    lookup = np.zeros(len(level_ids) + 1, dtype=np.uint8)
    lookup[1:] = structures
    labels = exported.with_array(lookup[np.clip(values, 0, len(level_ids))], is_label=True)
    local = world_to_node(segmentation_node, point_ras)
    hint = LevelHint(wanted.label_id, tuple(float(v) for v in local))
    result = name_levels(labels, hint=hint, subject=segmentation_node.GetName())
    counted = np.asarray(result.labels.array)
    table = spine_color_table(scene)
    out = RenameResult(result.naming, unknown_segments=unknown)
    for number, segment_id in enumerate(level_ids, start=1):
        votes = np.bincount(counted[values == number], minlength=NUM_CLASSES)
        votes[0] = 0
        if votes.sum() == 0:
            continue  # an empty segment, or one hidden under others: nothing to count
        new_id = int(np.argmax(votes))
        segment = segmentation.GetSegment(segment_id)
        if np.sort(votes)[-2] >= SPLIT_SHARE * votes.sum():
            out.split_segments.append(segment.GetName())
        old = segment.GetName()
        set_segment_structure(segment, new_id, table)
        if old != segment.GetName():
            out.renamed[segment_id] = (old, segment.GetName())
        out.name_confidence[segment_id] = float(result.name_confidence.get(new_id, 0.0))
    return out
