import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.volume import Volume


def test_affine_maps_voxels_to_lps(oblique_volume):
    v = oblique_volume
    ijk = np.array([3, 5, 7, 1.0])
    expected = v.origin + v.direction @ (v.spacing * ijk[:3])
    np.testing.assert_allclose(v.affine_lps @ ijk, np.r_[expected, 1.0])
    ras = v.affine_ras @ ijk
    np.testing.assert_allclose(ras[:3], expected * np.array([-1, -1, 1]))


def test_ras_affine_round_trip(oblique_volume):
    back = Volume.from_affine_ras(oblique_volume.array, oblique_volume.affine_ras)
    assert back.same_grid(oblique_volume, atol=1e-9)


def test_sitk_round_trip_keeps_geometry_and_index_order(oblique_volume):
    image = oblique_volume.to_sitk()
    assert image.GetSize() == oblique_volume.shape
    # sitk's physical point of index (i, j, k) equals our affine.
    point = image.TransformIndexToPhysicalPoint((2, 3, 4))
    np.testing.assert_allclose(point, (oblique_volume.affine_lps @ [2, 3, 4, 1])[:3], atol=1e-9)
    assert image.GetPixel(2, 3, 4) == pytest.approx(float(oblique_volume.array[2, 3, 4]))
    back = Volume.from_sitk(image)
    assert back.same_grid(oblique_volume, atol=1e-9)
    np.testing.assert_array_equal(back.array, oblique_volume.array)


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), spacing=[1, 0, 1])
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), direction=np.ones((3, 3)))


def test_with_array_checks_shape_and_voxel_volume(oblique_volume):
    labels = oblique_volume.with_array(np.zeros(oblique_volume.shape, np.uint8), is_label=True)
    assert labels.is_label and labels.same_grid(oblique_volume)
    with pytest.raises(ValueError):
        oblique_volume.with_array(np.zeros((1, 2, 3)))
    assert oblique_volume.voxel_volume_ml == pytest.approx(0.9 * 4.0 * 1.3 / 1000)
    assert sitk.Image  # SimpleITK is the real library, not a stand-in
