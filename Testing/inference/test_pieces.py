"""Pieces (inference.pieces) and the one namer on top of them: what ``--cleanup levels`` then the count do.

The ordering cases once handled by a second namer (``order_levels``) are kept here and
now go through the chain (inference.naming): swapped names, a name used twice, one body
called two names, a level missed, any orientation.
"""

from __future__ import annotations

import numpy as np
import pytest

from SAFNetSpineLib.inference.naming import name_levels
from SAFNetSpineLib.inference.pieces import SPECK_ML, clean_pieces, find_pieces, keep_largest_component
from SAFNetSpineLib.labels import L1_ID, L5_ID, L5_S_ID, SACRUM_ID, neighbour
from SAFNetSpineLib.volume import Volume

S, L5, L1, L5S = SACRUM_ID, L5_ID, L1_ID, L5_S_ID
L4, L3, L2 = (neighbour(L5, 2 * n) for n in (1, 2, 3))
L4L5, L3L4, L2L3, L1L2 = (neighbour(L5S, 2 * n) for n in (1, 2, 3, 4))

#: Array axis k runs from superior (k = 0) to inferior, as in the real cases (LPS z = -k mm).
INFERIOR_K = np.diag([1.0, 1.0, -1.0])
#: 2 mm voxels: a body of the maps below holds 6 mL, a disc 1.5 mL (real sizes, not specks).
SPACING = (2.0, 2.0, 2.0)


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
    return Volume(labels, spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=direction)


def counted(vol: Volume) -> Volume:
    """What ``segment`` does after the network: ``--cleanup levels``, then the count."""
    return name_levels(clean_pieces(vol)).labels


def test_a_correct_spine_is_left_as_it_is():
    labels = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[3:9, 4:14, 93:98] = S
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, labels)


def test_swapped_names_are_put_back_in_order():
    labels = spine([L5, L4, L2, L3, L1])  # the network swapped L3 and L2
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))
    assert (labels == L2).sum() == (spine([L5, L4, L2, L3, L1]) == L2).sum(), "input must not be modified"


def test_a_name_used_twice_moves_to_the_free_level_above():
    out = counted(volume(spine([L5, L4, L3, L2, L2]))).array  # the top body is L1, called L2
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))


def test_one_body_called_two_names_becomes_one_level():
    labels = spine([L5, L4, L3, L2, L1])
    body = labels == L2
    front = body.copy()
    front[:, 10:, :] = False
    labels[front] = L1  # the front half of L2 was called L1, and L1 is also there above
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2, L1]))


def test_a_sacrum_above_the_lumbar_spine_is_removed_and_fragments_go():
    labels = spine([L5, L4, L3, L2, L1])
    labels[3:9, 4:14, 93:98] = S  # the real sacrum, below L5
    labels[3:9, 18:23, 50:60] = S  # a "sacrum" beside L3: impossible
    labels[0, 0, 0] = L3  # one stray voxel
    expected = spine([L5, L4, L3, L2, L1])
    expected[3:9, 4:14, 93:98] = S
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, expected)


def test_a_sacrum_speck_far_below_is_removed_like_any_fragment():
    """Found on chu_16: a 1,582-voxel "S" 13 cm below L5 (bodies about 30,000) was kept as the sacrum."""
    labels = np.zeros((12, 24, 160), np.uint8)
    labels[:, :, :100] = spine([L5, L4, L3, L2, L1])
    labels[5:7, 18:20, 150:152] = S  # 8 voxels, 1 % of a body, 58 voxels below L5
    expected = labels.copy()
    expected[labels == S] = 0
    np.testing.assert_array_equal(counted(volume(labels)).array, expected)


def test_discs_are_ordered_on_their_own():
    labels = spine([L5, L4, L3], [L4L5, L3L4, L3L4])  # the top disc is L2/L3, called L3/L4
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3], [L4L5, L3L4, L2L3]))


def rotation_about_x(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])


@pytest.mark.parametrize("degrees", [0.0, 20.0, -35.0])
def test_order_follows_the_patients_superior_axis_not_the_array(degrees):
    labels = spine([L1, L2, L3, L4, L5])  # L1 at the highest k, L5 at the lowest
    k_up = rotation_about_x(degrees)  # LPS z grows with k: L1 is the top, already right
    np.testing.assert_array_equal(counted(volume(labels, k_up)).array, labels)
    k_down = k_up @ np.diag([1.0, -1.0, -1.0])  # same array, patient upside down
    np.testing.assert_array_equal(counted(volume(labels, k_down)).array, spine([L5, L4, L3, L2, L1]))


def test_a_body_split_between_two_names_takes_the_next_name_up():
    labels = spine([L5, L4, L3, L2])
    top = labels == L2
    front = top.copy()
    front[:, :9, :] = False  # 7 of the 12 columns of the top body called L1: a narrow majority
    labels[front] = L1
    out = counted(volume(labels)).array
    np.testing.assert_array_equal(out, spine([L5, L4, L3, L2]))  # not L1: that would skip L2


def test_a_level_the_network_missed_leaves_a_gap_and_the_rest_keep_their_names():
    labels = spine([L5, L4, L3, L2, L1])
    labels[labels == L3] = 0
    np.testing.assert_array_equal(counted(volume(labels)).array, labels)


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 4.0), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)])
def test_specks_go_by_their_size_in_millilitres_at_any_voxel_size(spacing):
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[2:30, 2:30, 2:10] = L4  # a body, well above the speck floor at every spacing here
    labels[2:30, 2:30, 14:22] = L3
    voxel_ml = float(np.prod(spacing)) / 1000.0
    speck_side = max(1, int((0.5 * SPECK_ML / voxel_ml) ** (1 / 3)))  # under half the floor
    labels[35:35 + speck_side, 35:35 + speck_side, 35:35 + speck_side] = L1
    vol = Volume(labels, spacing=spacing)
    assert {p.label_id for p in find_pieces(labels)} == {L4, L3, L1}
    cleaned = clean_pieces(vol).array
    assert (cleaned == L1).sum() == 0 and (cleaned == L4).sum() == (labels == L4).sum()


def test_diagonal_neighbours_are_one_piece_and_largest_keeps_one_per_label():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1, 1, 1] = labels[2, 2, 2] = L3  # touching at a corner: one piece
    labels[4, 4, 4] = L3
    assert sorted(p.size for p in find_pieces(labels, (L3,))) == [1, 2]
    kept = keep_largest_component(labels)
    assert kept[1, 1, 1] == kept[2, 2, 2] == L3 and kept[4, 4, 4] == 0
