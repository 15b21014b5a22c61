"""What the measurement of a label map needs of it before any structure is measured.

:func:`survey_labels` finds, in one pass over the voxels, which structures are present,
their volumes, centroids and bounding boxes, and the spine frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.labels import DISC_IDS, NUM_CLASSES, SUPERIOR_TO_INFERIOR_IDS, structure
from SAFNetSpineLib.measurements.definitions import DECIMALS
from SAFNetSpineLib.measurements.section import SpineFrame, spine_frame, voxel_centres_mm
from SAFNetSpineLib.volume import Volume

#: Vertebrae superior to inferior (T9 ... L5, S).
CHAIN_IDS = tuple(i for i in SUPERIOR_TO_INFERIOR_IDS if i not in DISC_IDS)


@dataclass
class LabelSurvey:
    """What every part of the measurement needs of the label map, found once.

    Attributes:
        labels: The label map.
        present: Label ids with at least one voxel.
        volumes: Id -> volume (mL) of the whole label.
        frame: The spine frame.
        centroids: Id -> centroid in the frame's plane (a, s) mm, shape (2,).
        boxes: Bounding boxes by id - 1 (``scipy.ndimage.find_objects``).
    """

    labels: Volume
    present: list[int]
    volumes: dict[int, float]
    frame: SpineFrame
    centroids: dict[int, np.ndarray]
    boxes: list

    def name(self, label_id: int) -> str:
        """Level name of an id ("L4", "L4/L5")."""
        return structure(label_id).short_name


def survey_labels(labels: Volume) -> LabelSurvey:
    """Ids present, volumes, the spine frame, centroids and bounding boxes of a label map, in one pass."""
    from scipy import ndimage

    array = np.asarray(labels.array)
    flat = np.flatnonzero(array)
    values = array.ravel()[flat].astype(np.int64)
    counts = np.bincount(values, minlength=NUM_CLASSES)
    sums = np.stack([np.bincount(values, weights=axis_index, minlength=NUM_CLASSES)
                     for axis_index in np.unravel_index(flat, array.shape)], axis=1)
    present = [i for i in range(1, NUM_CLASSES) if counts[i] > 0]
    centroids3 = {i: voxel_centres_mm(labels, sums[i][None, :] / counts[i])[0] for i in present}
    frame = spine_frame(list(centroids3.values()) or [labels.origin])
    boxes = ndimage.find_objects(np.where(array < NUM_CLASSES, array, 0).astype(np.int64), max_label=NUM_CLASSES - 1)
    return LabelSurvey(labels, present, {i: float(counts[i]) * labels.voxel_volume_ml for i in present}, frame,
                       {i: frame.to_plane(p[None, :])[0, :2] for i, p in centroids3.items()}, boxes)


def landmark_points(frame: SpineFrame, lateral: float, *points: np.ndarray) -> list[list[float]]:
    """In-plane points (a, s) on the plane at ``lateral`` -> LPS mm, rounded as the document stores them."""
    return [[round(float(v), DECIMALS["mm"]) for v in p] for p in frame.to_lps(np.array(points), lateral)]


def chain_up(centroids: dict[int, np.ndarray], label_id: int) -> np.ndarray:
    """First guess of a vertebra's superior axis (2D): along its neighbours' centroids."""
    order = [i for i in CHAIN_IDS if i in centroids]
    k = order.index(label_id)
    upper = centroids[order[k - 1]] if k > 0 else centroids[label_id]
    lower = centroids[order[k + 1]] if k + 1 < len(order) else centroids[label_id]
    step = upper - lower
    return step / np.linalg.norm(step) if np.linalg.norm(step) > 1.0 else np.array([0.0, 1.0])
