"""Clean-up of predicted label maps and per-structure measurements."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.inference.levels import order_levels
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.volume import Volume


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep, for every label id, only its largest 26-connected component.

    A level exists once in a spine; islands of the same id elsewhere are errors.
    Each label is processed inside its own bounding box, so the cost follows the
    size of the structures, not of the volume.

    Args:
        labels: Integer label map (values 0..255), any 3D shape.

    Returns:
        A new label map of the same shape and dtype; removed voxels become 0.
    """
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(labels, dtype=np.uint8))
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(image)
    cleaned = labels.copy()
    finder = sitk.ConnectedComponentImageFilter()
    finder.SetFullyConnected(True)
    for label_id in shapes.GetLabels():
        # sitk bounding box: (x, y, z, size_x, size_y, size_z); numpy array axes are reversed.
        box = shapes.GetBoundingBox(label_id)
        start, size = box[:3][::-1], box[3:][::-1]
        window = tuple(slice(b, b + n) for b, n in zip(start, size, strict=True))
        mask = labels[window] == label_id
        components = sitk.GetArrayFromImage(finder.Execute(sitk.GetImageFromArray(mask.astype(np.uint8))))
        if finder.GetObjectCount() < 2:
            continue
        counts = np.bincount(components.reshape(-1))
        counts[0] = 0
        region = cleaned[window]
        region[mask & (components != int(np.argmax(counts)))] = 0
    return cleaned


#: Clean-ups of a predicted label map, by name: "levels" (anatomical order, the default),
#: "largest" (largest component per label), "none".
CLEANUPS = ("levels", "largest", "none")
DEFAULT_CLEANUP = CLEANUPS[0]
CLEANUP_HELP = ("levels: names in anatomical order, fragments removed (default); "
                "largest: largest component per label; none: the network's labels as they are")


def clean_up(labels: Volume, mode: str = DEFAULT_CLEANUP) -> Volume:
    """Apply one of :data:`CLEANUPS` to a label Volume (a new Volume; the input is kept).

    Raises:
        ValueError: unknown mode.
    """
    if mode == "levels":
        return order_levels(labels)
    if mode == "largest":
        return labels.with_array(keep_largest_component(labels.array))
    if mode == "none":
        return labels
    raise ValueError(f"cleanup must be one of {', '.join(CLEANUPS)}, got '{mode}'")


def structure_volumes_ml(label_volume: Volume) -> dict[str, float]:
    """Volume in millilitres of every structure present, keyed by short name, in label-id order."""
    counts = np.bincount(np.asarray(label_volume.array, dtype=np.int64).reshape(-1), minlength=len(STRUCTURES))
    return {
        s.short_name: round(float(counts[s.label_id]) * label_volume.voxel_volume_ml, 3)
        for s in STRUCTURES[1:]
        if counts[s.label_id] > 0
    }
