"""The team's sacrum labels: region growing below L5 finds a marrow-like block and stops at the corridor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training.sacrum_labels import SACRUM, add_sacrum, grow_sacrum, read_review


def _spine(depth: int = 6):
    """(image, structures): L4 and L5 bodies, an L5/S disc, a sacrum-like block below and a bright organ in front.

    Grid (D, 128, 64), H downwards, W towards posterior; marrow intensity 1.0, disc 3.0, soft tissue 0.
    """
    image = np.zeros((depth, 128, 64), np.float32)
    structures = np.zeros(image.shape, np.uint8)
    structures[1:5, 20:40, 20:40] = 3  # L4
    structures[1:5, 46:66, 20:40] = 2  # L5
    structures[1:5, 66:72, 20:40] = 11  # L5/S disc
    image[structures == 3] = 1.0
    image[structures == 2] = 1.0
    image[structures == 11] = 3.0
    for row in range(74, 110):  # the sacrum: marrow below the disc, tilting back as it descends
        shift = int(0.6 * (row - 74))
        image[1:5, row, 22 + shift:44 + shift] = 1.0
    image[1:5, 80:100, 0:8] = 1.0  # a marrow-bright organ in front, outside the corridor
    image[1:5, 90:91, 8:32] = 1.0  # a one-voxel bridge joining it to the sacrum
    rng = np.random.default_rng(0)
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    return image, structures


def test_grows_the_block_below_l5_and_not_into_what_lies_in_front():
    image, structures = _spine()
    mask = grow_sacrum(image, structures)
    sacrum = np.zeros(mask.shape, bool)
    for row in range(74, 110):
        shift = int(0.6 * (row - 74))
        sacrum[1:5, row, 22 + shift:44 + shift] = True
    assert (mask & sacrum).sum() > 0.8 * sacrum.sum()
    assert not mask[:, 80:100, 0:8].any()  # the organ in front stays out
    assert not mask[structures > 0].any()  # never on another structure
    assert not mask[:, :66].any()  # nothing above the disc


def test_no_l5_no_sacrum_and_labels_gain_s_as_annotated():
    image, structures = _spine()
    assert not grow_sacrum(image, np.where(structures == 2, 0, structures)).any()
    mask = grow_sacrum(image, structures)
    label = np.where(structures == 2, 2, 0).astype(np.uint8)
    annotated = np.zeros(20, bool)
    annotated[[0, 2]] = True
    new_label, new_annotated = add_sacrum(label, annotated, mask)
    assert new_annotated[SACRUM] and not annotated[SACRUM]
    assert (new_label[mask] == SACRUM).all() and (new_label[label == 2] == 2).all()


def test_review_file_is_checked(tmp_path):
    path = tmp_path / "review.json"
    path.write_text(json.dumps({"accepted": ["chu_05"], "rejected": {"myo_01": "leaks into fat"}}))
    assert read_review(path)["accepted"] == ["chu_05"]
    path.write_text("{")
    with pytest.raises(SpineInputError):
        read_review(path)


def test_accepted_cases_gain_the_sacrum_as_a_target_and_others_stay(tmp_path):
    from SAFNetSpineLib.training.cache import PreprocessedCase
    from SAFNetSpineLib.training.sacrum_labels import with_team_sacrum

    image, structures = _spine()
    label = np.where(structures == 2, 2, 0).astype(np.uint8)
    annotated = np.zeros(20, bool)
    annotated[[0, 2]] = True
    cases = [PreprocessedCase(name, image, label, annotated) for name in ("a", "b")]
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"accepted": ["a"], "rejected": {"b": "leaks"}, "params": {"length_mm": 20.0}}))
    a, b = with_team_sacrum(cases, [structures, structures], review)
    assert a.annotated[SACRUM] and (a.label == SACRUM).sum() > 300
    assert not (a.label[:, 90:] == SACRUM).any()  # params from the file: 20 mm below the disc (row 68.5) at most
    assert b is cases[1]
    review.write_text(json.dumps({"accepted": ["a"], "params": {"colour": 1}}))
    with pytest.raises(SpineInputError):
        with_team_sacrum(cases, [structures, structures], review)


def test_polygon_mask_holds_the_inside_of_a_drawn_outline():
    from SAFNetSpineLib.training.sacrum_labels import polygon_mask

    square = polygon_mask([[10, 10], [10, 20], [20, 20], [20, 10]], (32, 32))
    assert square.sum() == 100 and square[15, 15] and not square[5, 15] and not square[15, 25]
    triangle = polygon_mask([[0, 0], [0, 30], [30, 0]], (32, 32))
    assert triangle[5, 5] and not triangle[25, 25] and 400 < triangle.sum() < 500


def test_outline_labels_bright_sacral_marrow_the_band_misses_and_nothing_outside_it():
    from SAFNetSpineLib.training.sacrum_labels import outline_sacrum

    image, structures = _spine()
    image[:, 74:110] = np.where(image[:, 74:110] > 0.5, 2.5, image[:, 74:110])  # T2: sacral marrow brighter than L5
    assert grow_sacrum(image, structures)[:, 80:].sum() == 0  # the marrow band stops where the brightness steps
    outline = [[73, 20], [73, 46], [110, 68], [110, 40]]  # drawn around the sacrum, the organ in front left out
    mask = outline_sacrum(image, structures, outline)
    truth = np.zeros(mask.shape, bool)
    for row in range(74, 110):
        shift = int(0.6 * (row - 74))
        truth[1:5, row, 22 + shift:44 + shift] = True
    assert (mask & truth).sum() > 0.8 * truth.sum()
    assert not mask[:, :, :8].any() and not mask[:, :72].any()  # neither the organ nor L5 and its disc
    assert not mask[0].any() and not mask[5].any()  # L5's slices +-1, where the outside slices hold no marrow
    top, tip = mask[:, 80].any(axis=1), mask[:, 108].any(axis=1)  # slices labelled near the top and at the tip
    assert top[[1, 4]].all() and tip.any() and not tip[[1, 4]].any()  # the sacrum narrows to the middle slices
    assert outline_sacrum(image, np.zeros_like(structures), outline).sum() == 0


def test_review_outlines_are_checked(tmp_path):
    path = tmp_path / "review.json"
    path.write_text(json.dumps({"accepted": ["chu_05"], "outlines": {"chu_05": [[1, 2], [3, 4]]}}))
    with pytest.raises(SpineInputError, match="chu_05"):
        read_review(path)
    path.write_text(json.dumps({"accepted": ["chu_05"], "outlines": {"chu_05": [[1, 2], [3, 4], [5, 0]]}}))
    assert len(read_review(path)["outlines"]["chu_05"]) == 3


def test_an_accepted_case_with_an_outline_gets_the_outlined_sacrum(tmp_path):
    from SAFNetSpineLib.training.cache import PreprocessedCase
    from SAFNetSpineLib.training.sacrum_labels import with_team_sacrum

    image, structures = _spine()
    image[:, 74:110] = np.where(image[:, 74:110] > 0.5, 2.5, image[:, 74:110])
    label = np.where(structures == 2, 2, 0).astype(np.uint8)
    annotated = np.zeros(20, bool)
    annotated[[0, 2]] = True
    case = PreprocessedCase("a", image, label, annotated)
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"accepted": ["a"]}))
    grown = with_team_sacrum([case], [structures], review)[0]
    review.write_text(json.dumps({"accepted": ["a"], "outlines": {"a": [[73, 20], [73, 46], [110, 68], [110, 40]]}}))
    drawn = with_team_sacrum([case], [structures], review)[0]
    assert (drawn.label[:, 85:] == SACRUM).sum() > 500 > (grown.label[:, 85:] == SACRUM).sum()
