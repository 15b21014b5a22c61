"""order_levels: names rise from bottom to top, once each, whatever the grid's orientation."""

from __future__ import annotations

import numpy as np
import pytest

from SAFNetSpineLib.inference.levels import order_levels
from SAFNetSpineLib.volume import Volume

S, L5, L4, L3, L2, L1, T12 = 1, 2, 3, 4, 5, 6, 7
L5S, L4L5, L3L4, L2L3, L1L2 = 11, 12, 13, 14, 15

#: Array axis k runs from superior (k = 0) to inferior, as in the real cases (LPS z = -k mm).
INFERIOR_K = np.diag([1.0, 1.0, -1.0])


def spine(names, disc_names=None, depth=(4, 16)):
    """(I, J, K) = (12, 24, 100) label map: bodies 8 voxels tall from the bottom (k = 92) up.

    names: vertebra ids from the lowest body upwards; disc_names: ids of the discs
    above each body (None for no discs). Bodies span j in ``depth``.
    """
    labels = np.zeros((12, 24, 100), np.uint8)
    for n, name in enumerate(names):
        bottom = 92 - 12 * n
        labels[2:10, depth[0]:depth[1], bottom - 8:bottom] = name
        if disc_names is not None and disc_names[n]:
            labels[2:10, depth[0]:depth[1], bottom - 11:bottom - 9] = disc_names[n]
    return labels


def volume(labels, direction=INFERIOR_K):
    return Volume(labels, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=direction)


def test_a_correct_spine_is_left_as_it_is():
    labels = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[3:9, 4:14, 93:98] = S
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, labels)


def test_swapped_names_are_put_back_in_order():
    labels = spine([L5, L4, L2, L3, L1])  # the network swapped L3 and L2
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))
    assert (labels == L2).sum() == (spine([L5, L4, L2, L3, L1]) == L2).sum(), "input must not be modified"


def test_a_name_used_twice_moves_to_the_free_level_above():
    out = order_levels(volume(spine([L5, L4, L3, L2, L2]))).array  # the top body is L1, called L2
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))


def test_one_body_called_two_names_becomes_one_level():
    labels = spine([L5, L4, L3, L2, L1])
    body = labels == L2
    front = body.copy()
    front[:, 10:, :] = False
    labels[front] = L1  # the front half of L2 was called L1, and L1 is also there above
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))


def test_a_sacrum_above_the_lumbar_spine_is_removed_and_fragments_go():
    labels = spine([L5, L4, L3, L2, L1])
    labels[3:9, 4:14, 93:98] = S  # the real sacrum, below L5
    labels[3:9, 18:23, 50:60] = S  # a "sacrum" beside L3: impossible
    labels[0, 0, 0] = L3  # one stray voxel
    expected = spine([L5, L4, L3, L2, L1])
    expected[3:9, 4:14, 93:98] = S
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, expected)


def test_a_sacrum_speck_far_below_is_removed_like_any_fragment():
    """Found on chu_16: a 1,582-voxel "S" 13 cm below L5 (bodies about 30,000) was kept as the sacrum."""
    labels = np.zeros((12, 24, 160), np.uint8)
    labels[:, :, :100] = spine([L5, L4, L3, L2, L1])
    labels[5:7, 18:20, 150:152] = S  # 8 voxels, 1 % of a body, 58 voxels below L5
    expected = labels.copy()
    expected[labels == S] = 0
    np.testing.assert_array_equal(order_levels(volume(labels)).array, expected)


def test_discs_are_ordered_on_their_own():
    labels = spine([L5, L4, L3], [L4L5, L3L4, L3L4])  # the top disc is L2/L3, called L3/L4
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3], [L4L5, L3L4, L2L3]))


def rotation_about_x(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])


@pytest.mark.parametrize("degrees", [0.0, 20.0, -35.0])
def test_order_follows_the_patients_superior_axis_not_the_array(degrees):
    labels = spine([L1, L2, L3, L4, L5])  # L1 at the highest k, L5 at the lowest
    k_up = rotation_about_x(degrees)  # LPS z grows with k: L1 is the top, already right
    np.testing.assert_array_equal(order_levels(volume(labels, k_up)).array, labels)
    k_down = k_up @ np.diag([1.0, -1.0, -1.0])  # same array, patient upside down
    np.testing.assert_array_equal(order_levels(volume(labels, k_down)).array, spine([L5, L4, L3, L2, L1]))


def test_a_body_split_between_two_names_takes_the_next_name_up():
    labels = spine([L5, L4, L3, L2])
    top = labels == L2
    front = top.copy()
    front[:, :9, :] = False  # 7 of the 12 columns of the top body called L1: a narrow majority
    labels[front] = L1
    out = order_levels(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2]))  # not L1: that would skip L2


def test_a_level_the_network_missed_leaves_a_gap_and_the_rest_keep_their_names():
    labels = spine([L5, L4, L3, L2, L1])
    labels[labels == L3] = 0
    np.testing.assert_array_equal(order_levels(volume(labels)).array, labels)
