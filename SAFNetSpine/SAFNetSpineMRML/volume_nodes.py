"""Volume nodes <-> :class:`~SAFNetSpineLib.volume.Volume` and files, geometry kept exactly.

Slicer keeps a volume as a VTK image (array ``[k, j, i]``) plus an IJK-to-RAS matrix;
the library keeps ``[i, j, k]`` arrays with LPS geometry. :func:`volume_from_node`
and :func:`labelmap_node_from_volume` convert between the two through the 4x4
voxel-to-RAS matrix, so an oblique, flipped or anisotropic grid survives unchanged.

Files go through Slicer's own storage node (ITK writer), which converts RAS to LPS the
way every other Slicer save does. Reading a result back goes through SimpleITK and
:func:`align_to_grid` instead of Slicer's reader, because Slicer's reader turns a
left-handed grid into a right-handed one (same voxel positions, other array order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
import vtk

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.volume import Volume

#: Tolerance (in voxels) when matching a result grid to the input grid; NIfTI stores
#: geometry in float32, so a round trip moves corners by ~1e-5 voxel.
GRID_TOLERANCE_VOXELS = 1e-3


def ijk_to_ras(volume_node) -> np.ndarray:
    """The node's 4x4 IJK-to-RAS matrix as a numpy array."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def set_ijk_to_ras(volume_node, affine_ras: np.ndarray) -> None:
    """Set the node's IJK-to-RAS matrix from a 4x4 array."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(affine_ras[r, c]))
    volume_node.SetIJKToRASMatrix(matrix)


def node_in_scene(scene, node):
    """``node`` if it is still in ``scene`` under its ID, else None.

    For results that arrive after a child ran: ``vtkMRMLScene::Clear`` (Close Scene) resets
    the ID counters, so a remembered ID alone may name a node loaded afterwards.
    """
    if node is None or node.GetScene() is not scene:
        return None
    return node if scene.GetNodeByID(node.GetID()) is node else None


def remove_node(scene, node) -> None:
    """Remove a node with its display and storage nodes (no orphans left in the scene)."""
    if node is None or node.GetScene() is None:
        return
    helpers = []
    if node.IsA("vtkMRMLDisplayableNode"):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if node.IsA("vtkMRMLStorableNode"):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)


def input_volume_problem(volume_node) -> str | None:
    """Why ``volume_node`` cannot be segmented, or None when it can.

    Accepts plain scalar volumes with one component and at least two voxels along every
    axis; rejects nothing selected, label maps, vector/colour, tensor and diffusion
    volumes, empty nodes and 2D images.
    """
    if volume_node is None:
        return "Select an input volume."
    name = volume_node.GetName()
    if volume_node.GetClassName() != "vtkMRMLScalarVolumeNode":
        kind = volume_node.GetClassName().replace("vtkMRML", "").replace("Node", "")
        return f"'{name}' is a {kind}; SAFNet needs a scalar (grey-value) MR volume."
    image = volume_node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        return f"'{name}' holds no voxel data."
    if image.GetNumberOfScalarComponents() != 1:
        return f"'{name}' has {image.GetNumberOfScalarComponents()} components per voxel; SAFNet needs one."
    dims = image.GetDimensions()
    if min(dims) < 2:
        return f"'{name}' is {dims[0]} x {dims[1]} x {dims[2]} voxels; SAFNet needs a 3D volume."
    return None


def volume_from_node(volume_node, is_label: bool = False) -> Volume:
    """The node's voxels and geometry as a :class:`Volume` (array copied, [i, j, k]).

    The node's own IJK-to-RAS is used; a parent transform is not applied (the
    segmentation made from it is placed under the same transform instead).
    """
    array_kji = slicer.util.arrayFromVolume(volume_node)
    array = np.ascontiguousarray(np.transpose(array_kji, (2, 1, 0))).copy()
    return Volume.from_affine_ras(array, ijk_to_ras(volume_node), is_label=is_label)


def write_volume_node(volume_node, path: str | Path) -> Path:
    """Write a volume node to ``path`` (.nrrd, .nii.gz, ...) with Slicer's storage node.

    The storage node is not added to any scene and the node's own storage settings are
    left alone, so saving the scene later is unaffected.

    Raises:
        SpineInputError: if the writer fails.
    """
    path = Path(path)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.UseCompressionOff()  # a temporary file for the child process: speed over size
    if not storage.WriteData(volume_node) or not path.is_file():
        raise SpineInputError(path, f"could not write volume '{volume_node.GetName()}'")
    return path


def align_to_grid(volume: Volume, reference: Volume) -> np.ndarray:
    """``volume``'s array reordered onto ``reference``'s voxel grid, without resampling.

    The two grids must place the same voxel centres in space; they may differ by a
    permutation or flip of the index axes (what Slicer's reader does to left-handed
    grids, or a writer that reorients).

    Returns:
        Array of shape ``reference.shape`` indexed like ``reference``.

    Raises:
        SpineInputError: if the grids do not coincide voxel for voxel.
    """
    # Maps a reference index (i, j, k, 1) to the index in `volume` of the same point.
    index_map = np.linalg.inv(volume.affine_ras) @ reference.affine_ras
    linear, offset = index_map[:3, :3], index_map[:3, 3]
    rounded = np.round(linear)
    permutation_ok = (
        np.allclose(linear, rounded, atol=GRID_TOLERANCE_VOXELS)
        and np.all(np.abs(rounded).sum(axis=0) == 1)
        and np.all(np.abs(rounded).sum(axis=1) == 1)
    )
    problem = "result grid does not match the input volume's grid"
    if not permutation_ok or not np.allclose(offset, np.round(offset), atol=GRID_TOLERANCE_VOXELS):
        raise SpineInputError("segmentation result", problem)
    source_axis = [int(np.argmax(np.abs(rounded[:, a]))) for a in range(3)]
    array = np.transpose(volume.array, source_axis)
    if array.shape != reference.shape:
        raise SpineInputError("segmentation result", f"{problem} (shape {volume.shape} vs {reference.shape})")
    for axis in range(3):
        sign = rounded[source_axis[axis], axis]
        start = int(round(offset[source_axis[axis]]))
        expected = 0 if sign > 0 else reference.shape[axis] - 1
        if start != expected:
            raise SpineInputError("segmentation result", f"{problem} (shifted along axis {axis})")
        if sign < 0:
            array = np.flip(array, axis=axis)
    return np.ascontiguousarray(array)


def labelmap_node_from_volume(scene, label: Volume, reference_node, name: str):
    """A new label map node in ``scene`` holding ``label`` on ``reference_node``'s grid.

    The array is aligned with :func:`align_to_grid` and the node gets exactly the
    reference node's IJK-to-RAS matrix, so segments made from it need no resampling.

    Raises:
        SpineInputError: if ``label`` is not on the reference grid.
    """
    reference = volume_from_node(reference_node)
    aligned = align_to_grid(label, reference)
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    try:
        slicer.util.updateVolumeFromArray(node, np.transpose(aligned, (2, 1, 0)).astype(np.uint8))
        set_ijk_to_ras(node, ijk_to_ras(reference_node))
    except Exception:
        remove_node(scene, node)
        raise
    return node


def read_label_file(path: str | Path) -> Volume:
    """Read a label map file (NIfTI, NRRD, MHA) as a :class:`Volume` with SimpleITK.

    Raises:
        SpineInputError: if the file is missing or not a 3D image.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise SpineInputError(path, "result file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise SpineInputError(path, f"unreadable result ({str(error).strip().splitlines()[-1]})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise SpineInputError(path, "result is not a 3D single-component label map")
    return Volume.from_sitk(image, is_label=True)
