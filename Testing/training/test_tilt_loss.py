"""The tilt term: it sees a structure turned in the sagittal plane, which Dice barely does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from SAFNetSpineLib.training.losses import marginal_cross_entropy, tilt_loss, training_loss

SHAPE = (3, 64, 48)  # D, H, W
BODY = 4


def _bar(degrees: float, shift=(0.0, 0.0), length: float = 30.0, height: float = 12.0) -> np.ndarray:
    """(D, H, W) bool: a rectangle of ``length`` (along W) x ``height`` (along H) voxels turned by ``degrees``."""
    rows, cols = np.mgrid[:SHAPE[1], :SHAPE[2]].astype(float)
    rows -= SHAPE[1] / 2 + shift[0]
    cols -= SHAPE[2] / 2 + shift[1]
    a = math.radians(degrees)
    along, across = cols * math.cos(a) + rows * math.sin(a), -cols * math.sin(a) + rows * math.cos(a)
    plane = (np.abs(along) <= length / 2) & (np.abs(across) <= height / 2)
    return np.broadcast_to(plane, SHAPE).copy()


def _target(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.where(mask, BODY, 0)).long()[None]


def _logits(mask: np.ndarray, sharp: float = 6.0) -> torch.Tensor:
    """(1, 20, D, H, W): BODY where ``mask``, background elsewhere, confident by ``sharp`` nats."""
    logits = torch.zeros(1, 20, *SHAPE)
    logits[0, BODY] = torch.from_numpy(np.where(mask, sharp, -sharp)).float()
    return logits


def _annotated(*ids: int) -> torch.Tensor:
    annotated = torch.zeros(1, 20, dtype=torch.bool)
    annotated[0, [0, *ids]] = True
    return annotated


def test_a_turned_prediction_costs_about_one_minus_cos_of_twice_the_turn():
    target, annotated = _target(_bar(10.0)), _annotated(BODY)
    assert tilt_loss(_logits(_bar(10.0)), target, annotated).item() < 2e-4
    costs = {turn: tilt_loss(_logits(_bar(10.0 + turn)), target, annotated).item() for turn in (3.0, 8.0, -8.0)}
    assert costs[3.0] < costs[8.0]
    for turn in (8.0, -8.0):  # the sign of the turn does not matter, its size does
        assert costs[turn] == pytest.approx(1 - math.cos(math.radians(2 * turn)), rel=0.35)


def test_dice_barely_sees_what_the_tilt_term_sees():
    """8 degrees about the centre keep Dice above 0.85; cross-entropy rises by a fraction, the tilt term from 0."""
    truth, turned = _bar(10.0), _bar(18.0)
    dice = 2 * (truth & turned).sum() / (truth.sum() + turned.sum())
    assert dice > 0.85
    target, annotated = _target(truth), _annotated(BODY)
    assert tilt_loss(_logits(turned), target, annotated).item() > 20 * tilt_loss(_logits(truth), target, annotated).item()


def test_a_shifted_structure_costs_nothing_and_a_blob_far_away_does_not_turn_it():
    target, annotated = _target(_bar(10.0)), _annotated(BODY)
    assert tilt_loss(_logits(_bar(10.0, shift=(3.0, 2.0))), target, annotated).item() < 2e-4
    blob = _bar(10.0) | _bar(80.0, shift=(24.0, 0.0), length=14.0, height=6.0)  # 12 voxels beyond the window
    assert tilt_loss(_logits(blob), target, annotated).item() < 2e-4


def test_unannotated_small_or_missed_structures_do_not_count_and_round_ones_little():
    truth, turned = _bar(10.0), _bar(25.0)
    assert tilt_loss(_logits(turned), _target(truth), _annotated()).item() == 0.0  # BODY not annotated
    # A square has no axis (its moments are round): turned 15 degrees it costs next to nothing, a bar does.
    bar_cost = tilt_loss(_logits(_bar(25.0)), _target(_bar(10.0)), _annotated(BODY)).item()
    round_cost = tilt_loss(_logits(_bar(25.0, length=12.0, height=12.0)), _target(_bar(10.0, length=12.0, height=12.0)),
                           _annotated(BODY)).item()
    assert round_cost < 0.2 * bar_cost
    sliver = _bar(10.0, length=6.0, height=3.0)  # 3 slices x ~18 voxels: under MIN_VOXELS
    assert tilt_loss(_logits(_bar(30.0, length=6.0, height=3.0)), _target(sliver), _annotated(BODY)).item() == 0.0
    missed = torch.zeros(1, 20, *SHAPE)
    missed[0, 0] = 6.0
    assert tilt_loss(missed, _target(truth), _annotated(BODY)).item() == 0.0


def test_its_gradient_turns_the_prediction_back():
    target, annotated = _target(_bar(10.0)), _annotated(BODY)
    logits = _logits(_bar(18.0), sharp=2.0).requires_grad_()
    optimiser = torch.optim.Adam([logits], lr=0.05)
    before = tilt_loss(logits, target, annotated).item()
    for _ in range(20):
        optimiser.zero_grad()
        tilt_loss(logits, target, annotated).backward()
        optimiser.step()
    assert tilt_loss(logits, target, annotated).item() < 0.5 * before


def test_training_loss_adds_the_weighted_tilt_term():
    target, annotated = _target(_bar(10.0)), _annotated(BODY)
    logits = _logits(_bar(20.0), sharp=3.0)
    plain = training_loss(logits, target, annotated)
    assert plain.item() == pytest.approx(marginal_cross_entropy(logits, target, annotated).item(), rel=1e-6)
    weighted = training_loss(logits, target, annotated, tilt_weight=10.0)
    assert weighted.item() == pytest.approx(plain.item() + 10.0 * tilt_loss(logits, target, annotated).item(), rel=1e-5)


def test_the_recipe_keeps_it_off_by_default_and_refuses_a_negative_weight():
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.training.config import TrainConfig

    assert TrainConfig().tilt_loss_weight == 0.0
    assert TrainConfig(tilt_loss_weight=10.0).tilt_loss_weight == 10.0
    with pytest.raises((SpineInputError, ValueError), match="tilt_loss_weight"):
        TrainConfig(tilt_loss_weight=-1.0)


def test_with_dice_on_the_shared_projection_gives_the_terms_computed_apart():
    from SAFNetSpineLib.training.losses import marginal_soft_dice_loss

    target, annotated = _target(_bar(10.0)), _annotated(BODY)
    logits = (_logits(_bar(16.0), sharp=3.0) + 0.3 * torch.randn(1, 20, *SHAPE)).requires_grad_()
    fused = training_loss(logits, target, annotated, dice_weight=0.5, tilt_weight=7.0)
    apart = (marginal_cross_entropy(logits, target, annotated) + 0.5 * marginal_soft_dice_loss(logits, target, annotated)
             + 7.0 * tilt_loss(logits, target, annotated))
    assert fused.item() == pytest.approx(apart.item(), rel=1e-5)
    grad_fused, = torch.autograd.grad(fused, logits)
    grad_apart, = torch.autograd.grad(apart, logits)
    assert torch.allclose(grad_fused, grad_apart, atol=1e-6)
