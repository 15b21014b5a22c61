"""Windows of a scan far larger than the training scans': exact blocks, put back exactly, the sacrum's kept."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.inference.field_of_view import in_plane_fov_mm
from SAFNetSpineLib.inference.windows import (
    SACRUM_MARGIN_MM,
    choose_window,
    cut_below,
    on_the_sacrum,
    paste,
    sub_volume,
    window_boxes,
    windows_holding,
)
from SAFNetSpineLib.labels import SACRUM_ID
from SAFNetSpineLib.volume import Volume


def _oblique(shape=(12, 300, 700), spacing=(4.0, 1.0, 1.0)):
    """A scan stored k, i, j with one axis flipped and turned 10 deg: k runs superior-inferior (700 mm)."""
    turn = np.deg2rad(10.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(turn), -np.sin(turn)], [0, np.sin(turn), np.cos(turn)]])
    direction = rotation @ (np.eye(3) * np.array([1.0, -1.0, 1.0]))
    rng = np.random.default_rng(0)
    return Volume(rng.integers(0, 20, shape).astype(np.int16), np.asarray(spacing), np.array([5.0, -3.0, 40.0]),
                  direction, is_label=True)


def test_a_window_lies_where_its_voxels_lie_and_goes_back_exactly():
    scan = _oblique()
    box = (slice(2, 9), slice(10, 250), slice(100, 490))
    window = sub_volume(scan, box)
    assert window.shape == (7, 240, 390)
    # The window's voxel (0, 0, 0) is the scan's voxel (2, 10, 100), in the patient.
    np.testing.assert_allclose(window.affine_lps @ [0, 0, 0, 1], scan.affine_lps @ [2, 10, 100, 1], atol=1e-9)
    np.testing.assert_allclose(window.affine_lps @ [6, 239, 389, 1], scan.affine_lps @ [8, 249, 489, 1], atol=1e-9)
    back = paste(window, box, scan)
    assert back.same_grid(scan) and back.is_label
    np.testing.assert_array_equal(back.array[box], scan.array[box])
    outside = np.ones(scan.shape, bool)
    outside[box] = False
    assert not back.array[outside].any()


def test_only_an_axis_far_larger_than_the_training_scans_is_cut_into_windows_that_cover_it():
    scan = _oblique()  # 700 mm superior-inferior (k), 300 mm anterior-posterior (j)
    assert window_boxes(scan, None) is None
    assert window_boxes(scan, [200.0, 620.0]) is None  # 700 < WINDOW_AT (1.15) x 620
    assert window_boxes(scan, [200.0, 600.0]) is not None
    boxes = window_boxes(scan, [200.0, 390.0])
    assert boxes and all(b[0] == slice(0, 12) and b[1] == slice(0, 300) for b in boxes)  # AP and LR whole
    starts = [b[2].start for b in boxes]
    assert starts[0] == 0 and boxes[-1][2].stop == 700 and all(b[2].stop - b[2].start == 390 for b in boxes)
    assert max(np.diff(starts)) <= 195  # overlapping by half: every point of the spine well inside one window
    assert in_plane_fov_mm(sub_volume(scan, boxes[0]).shape, scan.spacing, scan.direction) == (390.0, 300.0)
    square = _oblique(shape=(12, 700, 700))  # both in-plane axes far larger: one central AP window too
    boxes = window_boxes(square, [200.0, 390.0])
    assert all((b[1].start, b[1].stop) == (155, 545) for b in boxes) and len(boxes) == 3


def test_the_window_with_the_largest_sacrum_is_kept_or_the_one_holding_the_hint():
    empty, bodies, sacrum = np.zeros((4, 4)), np.full((4, 4), 3), np.zeros((4, 4))
    sacrum[0, :2] = SACRUM_ID
    assert choose_window([empty, bodies, sacrum]) == 2  # the sacrum before more structure
    assert choose_window([empty, bodies]) == 1
    assert choose_window([empty, bodies, sacrum], candidates=[0, 1]) == 1
    scan = _oblique()
    boxes = window_boxes(scan, [200.0, 390.0])
    assert windows_holding(boxes, (5, 100, 650)) == [len(boxes) - 1]  # near k = 650: only the last window holds it
    assert windows_holding(boxes, None) == list(range(len(boxes)))  # a hint outside the image: any window


def test_a_sacrum_at_a_window_s_lower_edge_inside_the_scan_does_not_choose_the_window():
    """The network takes the lowest body a window shows for a sacrum: where the window's lower edge cuts the
    spine, that "sacrum" must not win over the real one, whole in a lower window or at the scan's own edge."""
    scan = Volume(np.zeros((4, 50, 700), np.int16), np.array([4.0, 1.0, 1.0]), np.zeros(3), np.eye(3),
                  is_label=True)
    boxes = window_boxes(scan, [200.0, 390.0])
    cuts = [cut_below(scan, box) for box in boxes]
    inferior_at_end = cuts[0] is not None and cuts[0][1] == 389  # which end of k is inferior, as the grid says
    assert (cuts[-1] is None) == inferior_at_end and (cuts[0] is None) != inferior_at_end
    false_window = 0 if inferior_at_end else len(boxes) - 1  # its inferior edge lies inside the scan
    real_window = len(boxes) - 1 - false_window  # its inferior edge is the scan's
    arrays = [np.zeros((4, 50, 390), np.int16) for _ in boxes]
    edge = slice(360, 390) if inferior_at_end else slice(0, 30)
    arrays[false_window][:, :, edge] = SACRUM_ID  # a large "sacrum" at the cut edge
    arrays[real_window][:, :, edge] = SACRUM_ID  # the real one, at the scan's edge, smaller
    arrays[real_window][:, :10] = 0
    assert choose_window(arrays) == false_window  # counted, the false one wins
    assert choose_window(arrays, cuts=cuts) == real_window


def test_the_kept_window_is_placed_again_with_its_lower_edge_just_below_the_sacrum():
    from SAFNetSpineLib.preprocessing.orientation import match_network_axes

    for flip in (1.0, -1.0):  # superior-inferior along +k or -k
        scan = Volume(np.zeros((4, 50, 1000), np.int16), np.array([4.0, 1.0, 1.0]), np.zeros(3),
                      np.diag([1.0, 1.0, flip]), is_label=True)
        axes, signs = match_network_axes(scan.direction)
        assert axes[1] == 2
        box = (slice(0, 4), slice(0, 50), slice(300, 690))
        labels = np.zeros((4, 50, 390), np.int16)
        labels[:, :, 150:210] = SACRUM_ID  # the sacrum at k 450-509 of the scan
        placed = on_the_sacrum(scan, box, labels)
        assert placed[:2] == box[:2] and placed[2].stop - placed[2].start == 390
        margin = int(SACRUM_MARGIN_MM)  # 1 mm voxels
        if signs[1] > 0:  # inferior is +k: the window ends margin past the sacrum's last voxel
            assert placed[2].stop == 510 + margin
        else:  # inferior is -k: the window starts margin before the sacrum's first voxel
            assert placed[2].start == 450 - margin
        assert on_the_sacrum(scan, box, np.zeros_like(labels)) is None  # no sacrum: left where it was
        at_edge = np.zeros_like(labels)
        at_edge[:, :, :10] = SACRUM_ID if signs[1] < 0 else 0
        at_edge[:, :, -10:] = SACRUM_ID if signs[1] > 0 else 0
        far = (slice(0, 4), slice(0, 50), slice(0, 390)) if signs[1] < 0 else (slice(0, 4), slice(0, 50),
                                                                                  slice(610, 1000))
        assert on_the_sacrum(scan, far, at_edge) is None  # clipped to the scan: it cannot move


def test_the_bundled_weights_find_the_bodies_of_a_scan_twice_the_training_field_in_a_window():
    """The sample zero-padded to twice its field of view (740 x 560 mm): on one grid its vertebrae are drawn
    smaller than any the network learnt; in a window of the largest trained field they have a learnt size."""
    import dataclasses

    from SAFNetSpineLib.data.phantom import SAMPLE_OPTIONS, SAMPLE_SEED, make_phantom
    from SAFNetSpineLib.inference import Segmenter
    from SAFNetSpineLib.labels import VERTEBRA_IDS
    from SAFNetSpineLib.preprocessing.orientation import match_network_axes
    from SAFNetSpineLib.weights import default_weights_dir

    image, labels = make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)
    axes, _ = match_network_axes(image.direction)
    pad = [(0, 0)] * 3
    for axis in axes[1:]:
        pad[axis] = (image.shape[axis] // 2, image.shape[axis] - image.shape[axis] // 2)
    scan = dataclasses.replace(image, array=np.pad(np.asarray(image.array, np.float32), pad))
    truth = np.isin(np.pad(labels.array, pad), VERTEBRA_IDS)
    dice = {}
    for fit in (True, False):
        result = Segmenter([default_weights_dir()], device="cpu", precision="fp32", fit_fov=fit).segment(scan)
        assert result.labels.same_grid(scan)
        found = np.isin(result.labels.array, VERTEBRA_IDS)
        dice[fit] = 2 * (found & truth).sum() / (found.sum() + truth.sum())
        assert (result.field_of_view["window_mm"] is not None) == fit
        assert (result.field_of_view["warning"] is None) == fit  # the window is within the trained range
    assert dice[True] >= 0.75 and dice[True] >= dice[False] + 0.15, dice
