"""The spine's patient frame and each structure's mid-sagittal section, sampled on the native grid.

A :class:`SpineFrame` fixes three LPS unit vectors (lateral, superior, anterior).
Every structure is then seen in the plane perpendicular to the lateral axis through
its centroid: a 2D image of its mask with coordinates ``(a, s)`` in mm along the
frame's anterior and superior axes, measured from the frame's reference point. All
sections share those in-plane coordinates, so 2D points and directions of different
structures can be compared directly (angles, slips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.measurements.definitions import (
    EDGE_MARGIN_VOXELS,
    LATERAL_FACE_COSINE,
    MIN_SECTION_AREA_MM2,
    SECTION_LATERAL_OFFSETS_MM,
    SECTION_STEP_MM,
)
from SAFNetSpineLib.volume import Volume

_LPS_LEFT = np.array([1.0, 0.0, 0.0])
_LPS_SUPERIOR = np.array([0.0, 0.0, 1.0])
_LPS_ANTERIOR = np.array([0.0, -1.0, 0.0])


def voxel_centres_mm(volume: Volume, ijk: np.ndarray) -> np.ndarray:
    """LPS positions (mm) of voxel indices, shape (N, 3) -> (N, 3)."""
    return volume.origin[None, :] + (np.asarray(ijk, np.float64) * volume.spacing[None, :]) @ volume.direction.T


def _orthogonal(vector: np.ndarray, to: np.ndarray) -> np.ndarray:
    out = vector - np.dot(vector, to) * to
    return out / np.linalg.norm(out)


@dataclass(frozen=True)
class SpineFrame:
    """Unit vectors (LPS) of the measurement frame and its reference point.

    Attributes:
        lateral: Towards the patient's left, perpendicular to the spine axis, shape (3,).
        superior: Towards superior, perpendicular to ``lateral``, shape (3,).
        anterior: ``lateral x superior``, towards anterior, shape (3,).
        reference: LPS point (mm) where in-plane coordinates are zero, shape (3,).
    """

    lateral: np.ndarray
    superior: np.ndarray
    anterior: np.ndarray
    reference: np.ndarray

    def to_plane(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) LPS points -> (N, 3) frame coordinates (a, s, lateral) in mm."""
        rel = np.asarray(points, np.float64) - self.reference[None, :]
        return np.stack([rel @ self.anterior, rel @ self.superior, rel @ self.lateral], axis=1)

    def to_lps(self, a_s: np.ndarray, lateral: float) -> np.ndarray:
        """(N, 2) in-plane points (a, s) on the plane at ``lateral`` mm -> (N, 3) LPS mm."""
        a_s = np.atleast_2d(np.asarray(a_s, np.float64))
        return (self.reference[None, :] + a_s[:, :1] * self.anterior[None, :] + a_s[:, 1:2] * self.superior[None, :]
                + lateral * self.lateral[None, :])


def spine_frame(centroids_lps: list[np.ndarray]) -> SpineFrame:
    """The frame from the structures' centroids (LPS mm).

    The spine axis is the centroids' first principal axis when they span more than
    20 mm, else the patient's superior axis; the lateral axis is the patient's left made
    perpendicular to it.
    """
    points = np.asarray(centroids_lps, np.float64).reshape(-1, 3)
    reference = points.mean(axis=0)
    axis = _LPS_SUPERIOR
    if len(points) >= 2:
        centred = points - reference
        _, values, vectors = np.linalg.svd(centred, full_matrices=False)
        if values[0] / np.sqrt(len(points)) > 20.0 / 3:
            axis = vectors[0] * np.sign(vectors[0] @ _LPS_SUPERIOR or 1.0)
    if abs(axis @ _LPS_LEFT) > 0.9:  # a spine along left-right: not a sagittal acquisition of a spine
        axis = _LPS_SUPERIOR
    lateral = _orthogonal(_LPS_LEFT, axis)
    superior = _orthogonal(_LPS_SUPERIOR, lateral)
    anterior = np.cross(lateral, superior)
    if anterior @ _LPS_ANTERIOR < 0:  # cannot happen for a right-handed LPS, kept as a guard
        anterior = -anterior
    return SpineFrame(lateral, superior, anterior, reference)


def edge_name(normal: np.ndarray, frame: SpineFrame) -> str:
    """A face of the grid named by the patient direction its outward normal (LPS) points to.

    "left"/"right" for a face within :data:`LATERAL_FACE_COSINE` of the lateral axis, else
    the nearer of "anterior", "posterior", "superior", "inferior".
    """
    if abs(normal @ frame.lateral) >= LATERAL_FACE_COSINE:
        return "left" if normal @ frame.lateral > 0 else "right"
    a, s = normal @ frame.anterior, normal @ frame.superior
    return ("anterior" if a > 0 else "posterior") if abs(a) > abs(s) else ("superior" if s > 0 else "inferior")


@dataclass
class Section:
    """A structure's mid-sagittal section: its mask, averaged and interpolated, on a 2D grid.

    Attributes:
        values: Mask values in [0, 1], shape (n_s, n_a); row r is at ``s0 + r * step``,
            column c at ``a0 + c * step``. Other parts of the same label (posterior
            elements) are already removed.
        a0: In-plane anterior coordinate (mm) of column 0.
        s0: In-plane superior coordinate (mm) of row 0.
        step: Pixel size (mm).
        lateral: Lateral position (mm) of the plane in the frame.
        cut: Pixels inside the outline at or beyond the grid's faces, shape (n_s, n_a),
            bool: where the image edge cuts the structure (the outline there is the edge,
            not the structure's surface).
        edges: Names of the grid edges that cut it (:func:`edge_name`), empty when whole.
    """

    values: np.ndarray
    a0: float
    s0: float
    step: float
    lateral: float
    cut: np.ndarray
    edges: tuple[str, ...] = ()

    def sample(self, points: np.ndarray) -> np.ndarray:
        """Bilinear mask values at (N, 2) in-plane points (a, s); 0 outside the section."""
        from scipy import ndimage

        points = np.asarray(points, np.float64).reshape(-1, 2)
        coords = np.stack([(points[:, 1] - self.s0) / self.step, (points[:, 0] - self.a0) / self.step])
        return ndimage.map_coordinates(self.values, coords, order=1, mode="constant", cval=0.0)

    def centroid(self) -> np.ndarray:
        """Centre (a, s) of the outline, shape (2,)."""
        rows, cols = np.nonzero(self.values >= 0.5)
        return np.array([self.a0 + cols.mean() * self.step, self.s0 + rows.mean() * self.step])

    def extent_mm(self) -> float:
        """Diagonal of the section's grid (mm): no outline line needs to be longer."""
        return float(np.hypot(*self.values.shape) * self.step)

    def cut_near(self, start: np.ndarray, end: np.ndarray, within_mm: float) -> bool:
        """Whether the cut (:attr:`cut`) comes within ``within_mm`` of the segment start-end (a, s), each (2,)."""
        rows, cols = np.nonzero(self.cut)
        if not len(rows):
            return False
        pixels = np.stack([self.a0 + cols * self.step, self.s0 + rows * self.step], axis=1)
        start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
        span = end - start
        t = np.clip((pixels - start) @ span / max(float(span @ span), 1e-12), 0.0, 1.0)
        return bool(np.min(np.linalg.norm(pixels - start - t[:, None] * span, axis=1)) <= within_mm)


def structure_section(labels: Volume, label_id: int, frame: SpineFrame, keep: str,
                      box: tuple[slice, slice, slice] | None = None) -> Section | None:
    """Sample the mid-sagittal section of one label.

    Args:
        labels: The label map (any grid).
        label_id: The structure's id.
        frame: The spine frame.
        keep: Which connected part of the section to keep: "anterior" (the most anterior
            large part: a vertebral body without its posterior elements) or "largest".
        box: The label's bounding box (``scipy.ndimage.find_objects``), to skip a search.

    Returns:
        The section, or None when the label is absent or too small in its mid-sagittal
        plane (less than :data:`MIN_SECTION_AREA_MM2`).
    """
    from scipy import ndimage

    if box is None:
        box = ndimage.find_objects(np.where(labels.array == label_id, 1, 0))
        box = box[0] if box else None
    if box is None:
        return None
    corner = np.array([b.start for b in box])
    ijk = np.argwhere(labels.array[box] == label_id) + corner[None, :]
    low = np.maximum(ijk.min(axis=0) - 1, 0)
    high = np.minimum(ijk.max(axis=0) + 2, labels.shape)
    crop = labels.array[low[0]:high[0], low[1]:high[1], low[2]:high[2]] == label_id
    mask = np.pad(crop.astype(np.float32), 1)  # a zero ring: the outline closes at the grid's edge too

    coords = frame.to_plane(voxel_centres_mm(labels, ijk))
    lateral = float(coords[:, 2].mean())
    margin = 2.0 * float(labels.spacing.max()) + 1.0
    step = SECTION_STEP_MM
    a0, s0 = coords[:, 0].min() - margin, coords[:, 1].min() - margin
    n_a = int(np.ceil((coords[:, 0].max() + margin - a0) / step)) + 1
    n_s = int(np.ceil((coords[:, 1].max() + margin - s0) / step)) + 1
    a_grid, s_grid = np.meshgrid(a0 + step * np.arange(n_a), s0 + step * np.arange(n_s))
    plane = np.stack([a_grid.ravel(), s_grid.ravel()], axis=1)

    total = np.zeros(len(plane))
    to_index = labels.direction / labels.spacing[None, :]  # LPS offset -> index offset, via its transpose
    for offset in SECTION_LATERAL_OFFSETS_MM:
        points = frame.to_lps(plane, lateral + offset)
        index = (points - labels.origin[None, :]) @ to_index - low[None, :] + 1.0  # +1: the zero ring
        total += ndimage.map_coordinates(mask, index.T, order=1, mode="constant", cval=0.0)
    values = (total / len(SECTION_LATERAL_OFFSETS_MM)).reshape(n_s, n_a)

    # Parts of the label that do not touch in this plane (body / spinous process, fragments).
    parts, count = ndimage.label(values > 0.02, structure=np.ones((3, 3)))
    if count == 0:
        return None
    inside = values >= 0.5
    areas = ndimage.sum(inside, parts, index=np.arange(1, count + 1)) * step**2
    if areas.max() < MIN_SECTION_AREA_MM2:
        return None
    candidates = [i for i in range(count) if areas[i] >= 0.3 * areas.max()]
    if keep == "anterior":
        cols = ndimage.mean(np.broadcast_to(np.arange(n_a)[None, :], values.shape), parts,
                            index=np.arange(1, count + 1))
        chosen = max(candidates, key=lambda i: cols[i])
    else:
        chosen = int(np.argmax(areas))
    values = np.where(parts == chosen + 1, values, 0.0)
    cut, edges = _cut_by_the_grid(labels, frame, plane, lateral, values >= 0.5)
    return Section(values, float(a0), float(s0), step, lateral, cut, edges)


def _cut_by_the_grid(labels: Volume, frame: SpineFrame, plane: np.ndarray, lateral: float,
                     inside: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Outline pixels at the grid's faces, and the names of those faces.

    The mask is padded with zeros, so where the structure runs out of the grid its outline
    closes half a voxel beyond the last voxel centre. An outline within
    :data:`EDGE_MARGIN_VOXELS` of the last voxel centres of a face across the plane counts
    as cut too: a label that stops a voxel short of the edge (a prediction fading at the
    border) is no more whole than one that reaches it. Lateral faces, along which the
    plane itself runs, count only where the outline is beyond them.

    Args:
        labels: The label map.
        frame: The spine frame.
        plane: In-plane points (a, s) of the section's pixels, shape (n_s * n_a, 2).
        lateral: Lateral position (mm) of the plane.
        inside: The outline's pixels, shape (n_s, n_a).

    Returns:
        (cut pixels, shape (n_s, n_a); face names, in grid-axis order).
    """
    index = (frame.to_lps(plane, lateral) - labels.origin[None, :]) @ (labels.direction / labels.spacing[None, :])
    across = np.abs(frame.lateral @ labels.direction) < LATERAL_FACE_COSINE  # (3,) axes whose faces cross the plane
    margin = np.where(across, EDGE_MARGIN_VOXELS, 0.0)[None, :]
    beyond = np.stack([index < margin, index > np.asarray(labels.shape)[None, :] - 1 - margin],
                      axis=2)  # (N, axis, low/high)
    beyond &= inside.reshape(-1)[:, None, None]
    edges = []
    for axis, end in zip(*np.nonzero(beyond.any(axis=0)), strict=True):
        name = edge_name((1.0 if end else -1.0) * labels.direction[:, axis], frame)
        if name not in edges:
            edges.append(name)
    return beyond.any(axis=(1, 2)).reshape(inside.shape), tuple(edges)
