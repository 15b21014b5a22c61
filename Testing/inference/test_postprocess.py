import numpy as np
import pytest

from SAFNetSpineLib.inference import keep_largest_component, structure_volumes_ml
from SAFNetSpineLib.volume import Volume


def test_keeps_only_the_largest_island_of_each_label():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 3        # 216 voxels: kept
    labels[15:17, 15:17, 15:17] = 3  # 8 voxels: removed
    labels[10:12, 2:4, 2:4] = 12     # the only island of 12: kept
    labels[9, 9, 9] = 5              # single voxel, only island: kept
    cleaned = keep_largest_component(labels)
    assert (cleaned == 3).sum() == 216
    assert cleaned[16, 16, 16] == 0
    assert (cleaned == 12).sum() == 8 and cleaned[9, 9, 9] == 5
    assert labels[16, 16, 16] == 3, "input must not be modified"


def test_diagonal_neighbours_are_connected():
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[1, 1, 1] = labels[2, 2, 2] = labels[3, 3, 3] = 7  # touching by corners only
    labels[0, 4, 4] = 7
    cleaned = keep_largest_component(labels)
    assert (cleaned == 7).sum() == 3 and cleaned[0, 4, 4] == 0


def test_structure_volumes_in_millilitres():
    array = np.zeros((10, 10, 10), np.uint8)
    array[:5, :4, :2] = 2   # 40 voxels
    array[9, 9, 9] = 11     # 1 voxel
    volume = Volume(array, spacing=[0.5, 2.0, 3.0], is_label=True)  # 3 mm^3 per voxel
    volumes = structure_volumes_ml(volume)
    assert list(volumes) == ["L5", "L5/S"]
    assert volumes["L5"] == pytest.approx(40 * 3 / 1000)
    assert volumes["L5/S"] == pytest.approx(3 / 1000)


def test_clean_up_modes():
    from SAFNetSpineLib.inference import clean_pieces, clean_up

    labels = np.zeros((6, 6, 40), np.uint8)
    labels[1:5, 1:5, 2:8] = 3    # L4 at the top (k = 0 is superior here) ...
    labels[1:5, 1:5, 30:36] = 5  # ... above L2: out of order (the count renames; the clean-up does not)
    labels[0, 0, 20] = 5         # and a stray voxel of L2
    volume = Volume(labels, spacing=(3.0, 3.0, 3.0), direction=np.diag([1.0, 1.0, -1.0]))  # bodies 2.6 mL
    assert clean_up(volume, "none") is volume
    largest = clean_up(volume, "largest").array
    assert largest[0, 0, 20] == 0 and (largest == 3).sum() == 96 and (largest == 5).sum() == 96
    cleaned = clean_up(volume, "levels").array
    np.testing.assert_array_equal(cleaned, clean_pieces(volume).array)
    assert cleaned[0, 0, 20] == 0 and cleaned[2, 2, 4] == 3 and cleaned[2, 2, 32] == 5
    with pytest.raises(ValueError, match="cleanup must be one of levels, largest, none"):
        clean_up(volume, "smooth")
