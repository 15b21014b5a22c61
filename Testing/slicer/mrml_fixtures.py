"""Grids and node builders shared by the slicer-core tests."""

from __future__ import annotations

import numpy as np


def affine(direction_ras: np.ndarray, spacing, origin) -> np.ndarray:
    """4x4 IJK-to-RAS from RAS axis directions (columns), spacing (mm) and origin (mm)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction_ras, float) * np.asarray(spacing, float)[None, :]
    matrix[:3, 3] = origin
    return matrix


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


#: Grids every geometry test runs on: name -> IJK-to-RAS.
GRIDS = {
    # sagittal-like oblique scan, strongly anisotropic (0.6 x 0.6 x 4.4 mm)
    "oblique_anisotropic": affine(_rotation((1, 2, 0.5), 23.0), (0.6, 0.6, 4.4), (-31.5, 12.25, 80.0)),
    # left-handed (one flipped axis), oblique
    "flipped_oblique": affine(_rotation((0, 1, 1), -37.0) @ np.diag([1.0, -1.0, 1.0]), (1.1, 0.9, 3.3), (5, -7, 9)),
    # axis-permuted sagittal orientation as scanners write it (i = A->P, j = S->I, k = R->L)
    "permuted_sagittal": affine(np.array([[0, 0, -1.0], [-1, 0, 0], [0, -1, 0]]), (0.7, 0.7, 4.0), (40, 90, 60)),
}


def add_volume_node(scene, array_ijk: np.ndarray, ijk_to_ras: np.ndarray, name="MRI"):
    """A scalar volume node holding ``array_ijk`` ([i, j, k]) with the given IJK-to-RAS."""
    import slicer
    from SAFNetSpineMRML.volume_nodes import set_ijk_to_ras

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(np.transpose(array_ijk, (2, 1, 0))))
    set_ijk_to_ras(node, ijk_to_ras)
    return node
