"""The fast, install-free part of the in-Slicer self-test: label table <-> segmentation nodes.

Runs on any volume node, needs neither PyTorch nor MONAI nor a network, and takes well
under a second, so the extensions dashboard (900 s per test, no installs) can run it.
The same function runs under pytest with PyPI's ``slicer-core``.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import structure_by_name

from .segmentation_nodes import labels_from_segmentation, segmentation_from_labels, structure_of_segment
from .volume_nodes import input_volume_problem, remove_node, volume_from_node

#: Structures painted into the test label map: a vertebral body and the disc below it.
CHECK_STRUCTURES = ("L4", "L4/L5")


def _segment_names(node) -> list[str]:
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def check_label_round_trip(scene, volume_node) -> list[str]:
    """Problems found (empty when all is well) in: label map -> new node -> label map, and writing into a node.

    Args:
        scene: The MRML scene (``slicer.mrmlScene`` in Slicer).
        volume_node: A scalar volume that passes :func:`input_volume_problem`.

    Returns:
        One sentence per failed check. Nodes made here are removed again.
    """
    problem = input_volume_problem(volume_node)
    if problem:
        return [problem]
    grid = volume_from_node(volume_node)
    labels = np.zeros(grid.shape, np.uint8)  # (I, J, K)
    i, j, k = (max(2, n // 4) for n in grid.shape)
    ids = [structure_by_name(n).label_id for n in CHECK_STRUCTURES]
    labels[i:2 * i, j:2 * j, k:k + max(1, k // 2)] = ids[0]
    labels[i:2 * i, j:2 * j, k + max(1, k // 2):2 * k] = ids[1]
    volume_labels = grid.with_array(labels, is_label=True)
    problems = []
    node = segmentation_from_labels(scene, volume_labels, volume_node, "SAFNetSpine self-check")
    try:
        if _segment_names(node) != list(CHECK_STRUCTURES):
            problems.append(f"segment names {_segment_names(node)}, expected {list(CHECK_STRUCTURES)}")
        segmentation = node.GetSegmentation()
        mapped = [structure_of_segment(segmentation.GetNthSegment(n)) for n in range(segmentation.GetNumberOfSegments())]
        if [s.short_name if s else None for s in mapped] != list(CHECK_STRUCTURES):
            problems.append("segments do not map back to their label-table structures")
        export = labels_from_segmentation(scene, node, volume_node)
        if not np.array_equal(np.asarray(export.labels.array), labels):
            problems.append("the exported label map differs from the imported one")
        only_disc = np.where(labels == ids[1], ids[1], 0).astype(np.uint8)
        replaced = segmentation_from_labels(scene, volume_labels.with_array(only_disc), volume_node, target=node)
        if replaced is not node or _segment_names(node) != [CHECK_STRUCTURES[1]]:
            problems.append(f"writing into the chosen node left segments {_segment_names(node)}")
    finally:
        remove_node(scene, node)
    return problems
