"""Clean-up of predicted label maps and per-structure measurements."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.volume import Volume


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep, for every label id, only its largest 26-connected component.

    A level exists once in a spine; islands of the same id elsewhere are errors.

    Args:
        labels: Integer label map, any 3D shape.

    Returns:
        A new label map of the same shape and dtype; removed voxels become 0.
    """
    import SimpleITK as sitk

    cleaned = np.zeros_like(labels)
    for label_id in np.unique(labels):
        if label_id == 0:
            continue
        mask = (labels == label_id).astype(np.uint8)
        components = sitk.GetArrayViewFromImage(
            sitk.ConnectedComponent(sitk.GetImageFromArray(mask), fullyConnected=True))
        counts = np.bincount(components.reshape(-1))
        counts[0] = 0
        cleaned[components == int(np.argmax(counts))] = label_id
    return cleaned


def structure_volumes_ml(label_volume: Volume) -> dict[str, float]:
    """Volume in millilitres of every structure present, keyed by short name, in label-id order."""
    counts = np.bincount(np.asarray(label_volume.array, dtype=np.int64).reshape(-1), minlength=len(STRUCTURES))
    return {
        s.short_name: round(float(counts[s.label_id]) * label_volume.voxel_volume_ml, 3)
        for s in STRUCTURES[1:]
        if counts[s.label_id] > 0
    }
