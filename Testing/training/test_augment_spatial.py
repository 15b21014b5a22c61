"""Spatial augmentation: one grid moves image and label map together, by the drawn amounts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from block_maps import blocks

from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation

OFF = AugmentConfig.off()
SPATIAL = ["rotate_prob", "scale_prob", "fov_prob", "elastic_prob", "bend_prob", "slip_prob", "curve_prob",
           "collapse_prob"]


@pytest.mark.parametrize("name", [*SPATIAL, "all"])
def test_label_map_moves_with_the_image(name):
    config = OFF.replace(**{n: 1.0 for n in SPATIAL}) if name == "all" else OFF.replace(**{name: 1.0})
    image, label = blocks(depth=6)
    transform = build_augmentation(config)
    moved = 0
    for seed in range(4):
        new_image, new_label = augment_pair(transform, image, label, seed)
        values, lab = new_image[0].numpy(), new_label.numpy()
        assert np.isfinite(values).all() and set(np.unique(lab)) <= {0, 2, 3, 12}
        # Where the interpolated image equals a structure's value exactly (away from edges),
        # the nearest-neighbour label map names that structure.
        for label_id in (0, 2, 3, 12):
            exact = values == np.float32(label_id * 10.0 + 1.0)
            assert exact.sum() > 0
            assert (lab[exact] == label_id).mean() > 0.995, (name, seed, label_id)
        moved += int((lab != label).sum())
        if name not in ("bend_prob", "all"):  # in-plane transforms: every sagittal slice alike
            assert all(np.array_equal(lab[0], lab[d]) for d in range(lab.shape[0]))
    assert moved > 50, name


def _area(label: torch.Tensor, label_id: int) -> int:
    return int((label[0] == label_id).sum())


def test_zoom_and_field_of_view_crop_scale_structures_as_drawn():
    image, label = blocks(depth=6)
    zoom = build_augmentation(OFF.replace(scale_prob=1.0, scale_range=(1.2, 1.2)))
    _, zoomed = augment_pair(zoom, image, label, 0)
    assert _area(zoomed, 3) / (label[0] == 3).sum() == pytest.approx(1.44, abs=0.08)
    crop = build_augmentation(OFF.replace(fov_prob=1.0, fov_keep=(0.5, 0.5)))
    inside = 0
    for seed in range(4):
        _, cropped = augment_pair(crop, image, label, seed)
        for label_id, rows in ((3, 12), (12, 8), (2, 12)):
            found = np.flatnonzero((cropped[0] == label_id).any(1).numpy())
            if len(found) and 0 < found[0] and found[-1] < 63:  # wholly inside the cropped view
                assert abs(len(found) - 2 * rows) <= 1, (seed, label_id, len(found))
                inside += 1
            widths = np.flatnonzero((cropped[0] == label_id).any(0).numpy())
            assert len(widths) in (0, 16)  # anterior-posterior untouched
    assert inside >= 2


def test_bend_moves_labels_across_slices_and_slip_shifts_rows():
    _, label = blocks(depth=12)
    label[6:] = 0  # structures in the left half only
    image = label.astype(np.float32) * 10 + 1
    bend = build_augmentation(OFF.replace(bend_prob=1.0, bend_slices=(2.0, 2.0)))
    _, bent = augment_pair(bend, image, label, 1)
    per_row = (bent.numpy() > 0).any(2)  # (D, H): which slices hold structure per row
    extents = {int(np.flatnonzero(per_row[:, h]).max()) for h in range(64) if per_row[:, h].any()}
    assert len(extents) > 1  # the left-right extent changes along superior-inferior
    slip = build_augmentation(OFF.replace(slip_prob=1.0, slip_voxels=(5.0, 5.0)))
    _, slipped = augment_pair(slip, image, label, 2)
    starts = [int(np.flatnonzero(slipped[0, h].numpy())[0]) for h in (15, 45)]
    assert abs(starts[0] - starts[1]) >= 3


def test_sagittal_curve_turns_rows_against_each_other_by_the_drawn_share():
    import math

    from SAFNetSpineLib.training.augment_spatial import _centred, curve, warp

    height, width = 256, 128
    label = torch.zeros((2, height, width), dtype=torch.int64)
    label[:, 62:66, 24:104] = 1  # two "endplates" 128 rows apart
    label[:, 190:194, 24:104] = 2
    rows = _centred(height)[:, None].expand(height, width)
    cols = _centred(width)[None, :].expand(height, width)

    def tilts(turn_deg: float) -> tuple[float, float]:
        r, c = curve(rows, cols, math.radians(turn_deg), height)
        grid = torch.stack(((c / (width / 2))[None].expand(2, height, width),
                            (r / (height / 2))[None].expand(2, height, width),
                            (_centred(2)[:, None, None] / 1.0).expand(2, height, width)), dim=-1)[None]
        _, moved = warp(torch.zeros((2, height, width)), label, grid)
        angles = []
        for label_id in (1, 2):
            ys, xs = np.nonzero(moved[0].numpy() == label_id)
            angles.append(math.degrees(math.atan(np.polyfit(xs, ys, 1)[0])))
        return angles[0], angles[1]

    for turn in (20.0, -20.0):
        top, bottom = tilts(turn)
        assert abs(abs(bottom - top) - abs(turn) / 2) < 1.5, (turn, top, bottom)  # 128 of 256 rows apart
    assert np.sign(tilts(20.0)[1] - tilts(20.0)[0]) == -np.sign(tilts(-20.0)[1] - tilts(-20.0)[0])
    assert tilts(0.0) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_a_cut_keeps_the_superior_band_so_the_lowest_structures_leave_the_view():
    """Row 0 is the most superior: a cut to the top half stretches rows 0-31 onto all 64, as a scan that ends
    above the sacrum is fitted to the grid; the lowest block (rows 40-51) is gone, the top one twice as tall."""
    image, label = blocks(depth=4)
    cut = build_augmentation(OFF.replace(cut_prob=1.0, cut_keep=(0.5, 0.5)))
    for seed in range(3):
        _, kept = augment_pair(cut, image, label, seed)
        assert _area(kept, 2) == 0  # the inferior block left the view
        top = np.flatnonzero((kept[0] == 3).any(1).numpy())
        assert abs(len(top) - 24) <= 1 and abs(int(top[0]) - 20) <= 1, top
        assert np.array_equal(np.flatnonzero((kept[0] == 3).any(0).numpy()), np.arange(8, 24))  # AP untouched
    with pytest.raises(Exception, match="cut_keep"):
        AugmentConfig(cut_keep=(0.5, 1.2))


def _rows(label: torch.Tensor, label_id: int, col: int) -> np.ndarray:
    return np.flatnonzero((label[0, :, col] == label_id).numpy())


def test_a_collapsed_body_loses_height_towards_its_inferior_endplate():
    """Blocks 3 (L4, rows 10-21) and 2 (L5, rows 40-51), 12 rows tall, columns 8-23 (anterior -> posterior).

    Kept to half at the anterior wall and to a share between that and 1 at the posterior wall: the drawn
    body keeps its inferior edge and loses height, most in front (a wedge or a crush); whatever lies above
    it moves down by what it lost in that column; below it nothing moves.
    """
    image, label = blocks(depth=4)
    transform = build_augmentation(OFF.replace(collapse_prob=1.0, collapse_keep=(0.5, 0.5)))
    drawn = set()
    for seed in range(8):
        _, moved = augment_pair(transform, image, label, seed)
        body, top = (3, 10) if len(_rows(moved, 3, 9)) < 12 else (2, 40)
        drawn.add(body)
        front, back = _rows(moved, body, 9), _rows(moved, body, 22)
        assert abs(len(front) - 6) <= 1 and len(front) - 1 <= len(back) <= 13, (seed, body, len(front), len(back))
        assert front[-1] == top + 11 and back[-1] == top + 11  # the inferior endplate stays
        if body == 3:  # the disc and L5 below it do not move
            for other in (12, 2):
                assert np.array_equal(_rows(moved, other, 9), np.flatnonzero(label[0, :, 9] == other))
        else:  # L4 above moves down by what L5 lost in front, whole
            lost = 12 - len(front)
            assert abs(_rows(moved, 3, 9)[0] - (10 + lost)) <= 1 and len(_rows(moved, 3, 9)) == 12
    assert drawn == {2, 3}  # either body can be drawn


def test_no_body_in_the_label_map_no_collapse():
    image, label = blocks(depth=4)
    label[label != 12] = 0  # only the disc
    image = label.astype(np.float32) * 10.0 + 1.0
    transform = build_augmentation(OFF.replace(collapse_prob=1.0))
    new_image, new_label = augment_pair(transform, image, label, 0)
    assert np.array_equal(new_label.numpy(), label) and np.allclose(new_image.numpy(), image)
    with pytest.raises(Exception, match="collapse_keep"):
        AugmentConfig(collapse_keep=(0.5, 1.2))


def test_collapse_body_collapses_the_body_asked_for():
    from SAFNetSpineLib.training.augment_spatial import collapse_body

    image, label = blocks(depth=2)
    new_image, new_label = collapse_body(torch.from_numpy(image), torch.from_numpy(label.astype(np.int64)), 2,
                                         (0.5, 1.0))
    front, back = len(_rows(new_label, 2, 8)), len(_rows(new_label, 2, 23))
    assert abs(front - 6) <= 1 and back == 12  # a wedge of L5
    for col, height in ((8, front), (23, back)):  # L4 above moves down by what L5 lost in that column
        assert abs(_rows(new_label, 3, col)[0] - (10 + 12 - height)) <= 1
    exact = new_image.numpy() == np.float32(21.0)  # image = 10 * label + 1: L5's value, away from its edges
    assert exact.sum() > 50 and (new_label.numpy()[exact] == 2).mean() > 0.995
