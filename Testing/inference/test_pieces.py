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


def test_a_bigger_sacrum_far_below_loses_to_the_one_attached_to_l5_and_a_disc_there_goes():
    """Found on chu_16 (T2): the network called bowel 2.3 L5 heights below L5 "S" (43,645 voxels) and "L5/S",
    and the real top of S1 (13,775 voxels) "S" too; the bigger one was kept, and every name came out one off."""
    labels = np.zeros((12, 24, 160), np.uint8)
    labels[:, :, :100] = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[2:10, 4:16, 95:98] = L5S  # the real L5/S disc, just below L5
    labels[3:9, 4:14, 99:104] = S  # the real top of S1 (240 voxels)
    labels[2:10, 4:16, 120:122] = L5S  # "L5/S" 3.5 L5 heights below L5's bottom
    labels[1:11, 2:20, 125:140] = S  # a bigger "S" below it (2700 voxels)
    expected = labels.copy()
    expected[:, :, 115:] = 0
    cleaned = clean_pieces(volume(labels)).array
    np.testing.assert_array_equal(cleaned, expected)
    np.testing.assert_array_equal(counted(volume(labels)).array, expected)


def test_a_disc_below_the_sacrum_goes_even_when_not_far_below_l5():
    """Found on chu_16 with a later candidate: "L5/S" in the bowel 1.7 L5 heights below L5 (under the 1.9 of a
    detached piece) but below the top of S1; the count then took S1 for L5. No mobile disc lies below the sacrum."""
    labels = np.zeros((12, 24, 160), np.uint8)
    labels[:, :, :100] = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[2:10, 4:16, 92:94] = L5S  # the real L5/S disc, just below L5 (bottom k = 91)
    labels[3:9, 4:14, 94:112] = S  # the sacrum from just below it
    labels[2:10, 16:22, 102:104] = L5S  # "L5/S" in front of it, 1.6 heights below L5's bottom, below its top
    expected = labels.copy()
    expected[2:10, 16:22, 102:104] = 0
    np.testing.assert_array_equal(clean_pieces(volume(labels)).array, expected)
    np.testing.assert_array_equal(counted(volume(labels)).array, expected)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1)])
def test_a_hole_inside_a_body_is_filled_in_its_sagittal_slice_and_an_open_notch_is_not(order):
    """Found on the sample: a dark basivertebral vein left as a hole inside L2 bent its endplates (Genant 2)."""
    labels = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[2:10, 8:11, 50:53] = 0  # a hole through L2 from left to right (j 4-15, k 48-55): enclosed only sagittally
    labels[4:7, 4:6, 62:65] = 0  # a notch open to L3's anterior wall (j 4-15, k 60-67)
    expected = labels.copy()
    expected[2:10, 8:11, 50:53] = L2
    # Any array order: the sagittal slices are found from the direction cosines, not the array axes.
    direction = INFERIOR_K[:, list(order)]
    out = clean_pieces(volume(np.transpose(labels, order), direction)).array
    np.testing.assert_array_equal(out, np.transpose(expected, order))


def test_without_an_attached_piece_the_sacrum_after_a_missed_l5_is_kept():
    """L5 not found: S1 then lies about one body and two discs (1.6 heights) below L4, and stays the sacrum."""
    labels = spine([L5, L4, L3, L2, L1], [L4L5, L3L4, L2L3, L1L2, 0])
    labels[:, :, 80:92] = 0  # L5 and L4/L5 missed: L4 spans k 72-79, 14 mm
    labels[2:10, 4:16, 87:89] = L5S  # top 1.1 heights below L4's bottom
    labels[3:9, 4:14, 90:96] = S  # top 1.6 heights below it
    cleaned = clean_pieces(volume(labels)).array
    assert (cleaned == S).sum() == (labels == S).sum()
    assert (cleaned == L5S).sum() == (labels == L5S).sum()


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
