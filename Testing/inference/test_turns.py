"""Turned passes (inference.turns): the turn and its inverse, the spine's course, kinds against levels, the blend."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
from SAFNetSpineLib.inference import Segmenter
from SAFNetSpineLib.inference.turns import (
    TURN_ANGLES_DEG,
    levels_from,
    spine_course,
    transfer_names,
    turn_grid,
    turned_probabilities,
)
from SAFNetSpineLib.labels import DISC_IDS, NUM_CLASSES, VERTEBRA_IDS
from SAFNetSpineLib.preprocessing import preprocess_image

SHAPE = (3, 96, 64)  # (D, H, W)
L3 = 4  # a vertebra id


def _centred(n: int) -> np.ndarray:
    return np.arange(n) + 0.5 - n / 2


def _sample(volume: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    return F.grid_sample(volume[None, None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0, 0]


def _tilted_bar(slope: float, half_width: float = 6.0) -> np.ndarray:
    """(H, W) mask of a bar through the grid's centre whose column moves ``slope`` voxels per row."""
    rows, cols = _centred(SHAPE[1])[:, None], _centred(SHAPE[2])[None, :]
    return np.abs(cols - slope * rows) <= half_width


def _probabilities(mask: np.ndarray, label_id: int) -> torch.Tensor:
    """(C, D, H, W) probabilities: ``label_id`` on ``mask`` (every slice), background elsewhere."""
    p = np.zeros((NUM_CLASSES,) + SHAPE, np.float32)
    p[label_id][:, mask] = 1.0
    p[0][:, ~mask] = 1.0
    return torch.from_numpy(p)


@pytest.mark.parametrize("centre", [(0.0, 0.0), (20.0, -7.5)])
def test_a_turn_is_undone_by_the_opposite_turn_about_the_same_point(centre):
    rows, cols = np.meshgrid(_centred(SHAPE[1]), _centred(SHAPE[2]), indexing="ij")
    smooth = np.cos(rows / 9.0) + np.sin(cols / 7.0)
    volume = torch.from_numpy(np.broadcast_to(smooth, SHAPE).astype(np.float32).copy())
    there = _sample(volume, turn_grid(SHAPE, 17.0, centre))
    back = _sample(there, turn_grid(SHAPE, -17.0, centre))
    inner = (slice(None), slice(30, 66), slice(20, 44))  # away from what the turn pushed out of the grid
    assert float((back - volume)[inner].abs().max()) < 0.05
    assert float((there - volume)[inner].abs().max()) > 0.5  # the turn itself moved the pattern
    wrong_way = _sample(there, turn_grid(SHAPE, 17.0, centre))
    assert float((wrong_way - volume)[inner].abs().max()) > 0.5


def test_the_turn_point_stays_where_it_is():
    image = torch.zeros(SHAPE)
    image[:, 68, 40] = 1.0  # row 68 and column 40 are 20 and 8 voxels from the centre (+0.5)
    moved = _sample(image, turn_grid(SHAPE, 20.0, (20.5, 8.5)), mode="nearest")
    assert moved[:, 68, 40].min() == 1.0
    about_the_centre = _sample(image, turn_grid(SHAPE, 20.0), mode="nearest")
    assert about_the_centre[:, 68, 40].max() == 0.0


@pytest.mark.parametrize("slope", [-0.35, 0.0, 0.25])
def test_the_upright_turn_is_the_angle_of_the_spine_and_stands_it_upright(slope):
    course = spine_course(_probabilities(_tilted_bar(slope), L3))
    middle = slice(20, 76)
    np.testing.assert_allclose(course.upright[middle], math.degrees(math.atan(slope)), atol=0.5)
    assert course.seen[middle].all()
    # Turned by that angle the bar runs straight down the rows: one column for every row.
    bar = torch.from_numpy(np.broadcast_to(_tilted_bar(slope), SHAPE).astype(np.float32).copy())
    upright = _sample(bar, turn_grid(SHAPE, math.degrees(math.atan(slope))))
    centroid = (upright[1] * torch.from_numpy(_centred(SHAPE[2])).float()).sum(1) / upright[1].sum(1).clamp_min(1e-6)
    assert float(centroid[30:66].abs().max()) < 1.0
    if slope:
        tilted = (bar[1] * torch.from_numpy(_centred(SHAPE[2])).float()).sum(1) / bar[1].sum(1)
        assert float(tilted[30:66].abs().max()) > 3.5


def test_no_spine_asks_for_no_turn():
    course = spine_course(_probabilities(np.zeros(SHAPE[1:], bool), L3))
    assert not course.upright.any()
    assert course.centre_for(np.ones(SHAPE[1])) is None


def test_kinds_come_from_the_blend_and_levels_from_the_plain_pass():
    rng = np.random.default_rng(0)
    plain = torch.softmax(torch.from_numpy(rng.normal(size=(NUM_CLASSES,) + SHAPE).astype(np.float32)), dim=0)
    blended = torch.softmax(torch.from_numpy(rng.normal(size=(NUM_CLASSES,) + SHAPE).astype(np.float32)) * 3, dim=0)
    out = levels_from(plain, blended)
    torch.testing.assert_close(out.sum(0), torch.ones(SHAPE), atol=1e-5, rtol=0)
    for ids in (list(VERTEBRA_IDS), list(DISC_IDS)):
        torch.testing.assert_close(out[ids].sum(0), blended[ids].sum(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[ids] / out[ids].sum(0), plain[ids] / plain[ids].sum(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[0], blended[0])
    # Where the plain pass gives a kind nothing, the blend's own shares stand.
    plain[list(DISC_IDS)] = 0.0
    plain[0] += 1.0 - plain.sum(0)
    out = levels_from(plain, blended)
    torch.testing.assert_close(out[list(DISC_IDS)], blended[list(DISC_IDS)])


def _pointwise(network_input: np.ndarray) -> torch.Tensor:
    """A network that reads every voxel alone (L3 where bright, background elsewhere): turning commutes with it."""
    x = torch.from_numpy(network_input)
    logits = torch.full((NUM_CLASSES,) + tuple(x.shape), -20.0)
    logits[0], logits[L3] = -4.0 * x, 4.0 * x
    return torch.softmax(logits, dim=0)


def test_the_blend_of_a_network_that_turning_cannot_fool_is_its_plain_reading():
    bar = np.broadcast_to(_tilted_bar(0.3), SHAPE).astype(np.float32) * 2.0 - 1.0
    plain = _pointwise(bar)
    blended = turned_probabilities(_pointwise, bar, plain)
    torch.testing.assert_close(blended.sum(0), torch.ones(SHAPE), atol=1e-3, rtol=0)
    inner = (slice(None), slice(20, 76), slice(12, 52))
    # Bilinear turns soften the bar's edges a little; the reading is otherwise unchanged.
    assert float((blended[L3] - plain[L3])[inner].abs().mean()) < 0.03
    assert ((blended[L3] > 0.5) == (plain[L3] > 0.5))[inner].float().mean() > 0.97


def test_each_row_is_read_mostly_from_the_pass_that_stands_the_spine_upright_there():
    """A "network" that only finds upright bars: the blend finds a tilted bar where the plain pass does not."""
    slope = math.tan(math.radians(TURN_ANGLES_DEG[-1]))
    bar = np.broadcast_to(_tilted_bar(slope), SHAPE).astype(np.float32) * 2.0 - 1.0

    def upright_only(network_input: np.ndarray) -> torch.Tensor:
        p = _pointwise(network_input)
        bright_rows = (torch.from_numpy(network_input) > 0).float().mean(dim=(0, 1))  # (W,) share of rows bright
        upright = bright_rows > 0.6  # columns bright on most rows
        p[L3] *= upright[None, None, :]
        p[0] = 1.0 - p[L3]
        return p

    plain = upright_only(bar)
    plain = plain * 0.5 + _pointwise(bar) * 0.5  # the plain pass still sees where the spine runs, faintly
    blended = turned_probabilities(upright_only, bar, plain)
    on_bar = torch.from_numpy(np.broadcast_to(_tilted_bar(slope, 4.0), SHAPE).copy())
    on_bar[:, :30] = on_bar[:, 66:] = False  # rows the turned passes see whole
    assert float(plain[L3][on_bar].mean()) < 0.55
    assert float(blended[L3][on_bar].mean()) > 0.65


def test_segment_runs_the_turned_passes_only_when_told(tiny_weights):
    image, _ = make_phantom(3, PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5)))
    turned = Segmenter([tiny_weights], device="cpu", precision="fp32", turns=True)
    plain = Segmenter([tiny_weights], device="cpu", precision="fp32")
    assert turned.turns and not plain.turns
    x, _ = preprocess_image(image, plain.preprocess_config)
    p_plain, p_turned = plain.predict_probabilities(x), turned.predict_probabilities(x)
    torch.testing.assert_close(p_turned.sum(0), torch.ones_like(p_turned[0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(p_turned, turned_probabilities(plain.predict_probabilities, x, p_plain))


def _stack(layers: list[tuple[int, int, int]], shape=(4, 60, 30)) -> np.ndarray:
    """(I, J, K) label map of horizontal slabs: (label id, first row, last row) along J, every I and K."""
    labels = np.zeros(shape, np.uint8)
    for label_id, low, high in layers:
        labels[:, low:high + 1, 8:22] = label_id
    return labels


def test_outlines_take_the_names_of_the_plain_pass_by_kind():
    l4, l3, l3_l4 = 3, 4, 13
    named = _stack([(l4, 40, 52), (l3_l4, 35, 39), (l3, 22, 34)])
    # The blend moved the endplates, lost the disc (the bodies touch) and found a body 20 mm off.
    outline = _stack([(l4, 37, 54), (l4, 20, 36)])
    outline[:, 2:6, 8:22] = l4
    spacing = np.array([4.0, 1.0, 1.0])
    result = transfer_names(named, outline, spacing)
    assert set(np.unique(result)) == {0, l4, l3}
    np.testing.assert_array_equal(result[:, 38:55, 8:22], l4)  # nearest named body below the old disc's middle
    np.testing.assert_array_equal(result[:, 20:37, 8:22], l3)
    assert not result[:, 2:6].any()  # only the blend found it: never counted, left out
    # A disc is named after the nearest disc, never after the body beside it.
    outline[:, 36:40, 8:22] = 11  # some disc id
    result = transfer_names(named, outline, spacing)
    np.testing.assert_array_equal(result[:, 36:40, 8:22], l3_l4)
    assert not transfer_names(np.zeros_like(named), outline, spacing).any()
