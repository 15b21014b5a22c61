"""Marginal cross-entropy: hand-computed values for full and partial annotation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from SAFNetSpineLib.training.losses import marginal_cross_entropy, marginal_soft_dice_loss


def _two_voxels():
    """Logits of 3 classes at 2 voxels with softmax (1/6, 2/6, 3/6) and (1/2, 1/6, 1/3)."""
    a = [math.log(1), math.log(2), math.log(3)]
    b = [math.log(3), math.log(1), math.log(2)]
    logits = torch.tensor([a, b]).T.reshape(1, 3, 1, 1, 2)  # (B, C, D, H, W)
    target = torch.tensor([2, 0]).reshape(1, 1, 1, 2)  # voxel a: class 2, voxel b: background
    return logits, target


def test_fully_annotated_is_plain_cross_entropy_by_hand():
    logits, target = _two_voxels()
    annotated = torch.tensor([[True, True, True]])
    # -(ln 1/2 + ln 1/2) / 2
    assert marginal_cross_entropy(logits, target, annotated).item() == pytest.approx(math.log(2), abs=1e-6)


def test_unannotated_target_class_merges_into_background_by_hand():
    logits, target = _two_voxels()
    annotated = torch.tensor([[True, True, False]])
    # voxel a: class 2 unknown -> background group {0, 2}: p = 1/6 + 3/6; voxel b: p = 1/2 + 1/3
    expected = -(math.log(4 / 6) + math.log(5 / 6)) / 2
    assert marginal_cross_entropy(logits, target, annotated).item() == pytest.approx(expected, abs=1e-6)


def test_unannotated_other_class_merges_into_background_by_hand():
    logits, target = _two_voxels()
    annotated = torch.tensor([[True, False, True]])
    # voxel a: class 2 annotated -> p = 1/2; voxel b: background group {0, 1}: p = 1/2 + 1/6
    expected = -(math.log(1 / 2) + math.log(2 / 3)) / 2
    assert marginal_cross_entropy(logits, target, annotated).item() == pytest.approx(expected, abs=1e-6)


def test_each_case_of_a_batch_uses_its_own_annotation():
    logits, target = _two_voxels()
    logits = torch.cat([logits, logits])
    target = torch.cat([target, target])
    annotated = torch.tensor([[True, True, True], [True, True, False]])
    expected = (2 * math.log(2) - math.log(4 / 6) - math.log(5 / 6)) / 4
    assert marginal_cross_entropy(logits, target, annotated).item() == pytest.approx(expected, abs=1e-6)


def test_matches_torch_cross_entropy_on_random_full_annotation():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 20, 3, 4, 5, generator=generator) * 3
    target = torch.randint(0, 20, (2, 3, 4, 5), generator=generator)
    annotated = torch.ones(2, 20, dtype=torch.bool)
    ours = marginal_cross_entropy(logits, target, annotated)
    assert ours.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-5)


def test_finding_an_unannotated_structure_is_never_punished():
    logits, target = _two_voxels()
    annotated = torch.tensor([[True, True, False]])
    logits = logits.clone().requires_grad_(True)
    marginal_cross_entropy(logits, target, annotated).backward()
    # At the background voxel b, raising the unannotated class 2 lowers (never raises) the loss ...
    assert logits.grad[0, 2, 0, 0, 1] < 0
    # ... while with full annotation it is pushed down.
    full = logits.detach().clone().requires_grad_(True)
    marginal_cross_entropy(full, target, torch.ones(1, 3, dtype=torch.bool)).backward()
    assert full.grad[0, 2, 0, 0, 1] > 0


def test_loss_is_finite_in_bf16_and_annotation_shape_is_checked():
    logits, target = _two_voxels()
    value = marginal_cross_entropy(logits.bfloat16(), target, torch.tensor([[True, True, False]]))
    assert torch.isfinite(value)
    with pytest.raises(ValueError, match="annotated mask has 2 classes"):
        marginal_cross_entropy(logits, target, torch.tensor([[True, True]]))


def test_soft_dice_perfect_and_wrong_predictions():
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[..., :2, :] = 1
    perfect = F.one_hot(target, 3).movedim(-1, 1).float() * 40.0
    annotated = torch.tensor([[True, True, False]])
    assert marginal_soft_dice_loss(perfect, target, annotated).item() == pytest.approx(0.0, abs=1e-4)
    swapped = F.one_hot(1 - target, 3).movedim(-1, 1).float() * 40.0
    assert marginal_soft_dice_loss(swapped, target, annotated).item() == pytest.approx(1.0, abs=1e-4)
    # predicting the unannotated class 2 where the label says background costs nothing
    unknown = perfect.clone()
    unknown[:, 2, :, 2:, :] = 80.0
    assert marginal_soft_dice_loss(unknown, target, annotated).item() == pytest.approx(0.0, abs=1e-4)


def _body_case(lowest=2, annotate=(2, 3)):
    """(1, D=4, H=12, W=5) target: L4 at H 2..4, the lowest level (L5) at H 5..7, columns D 1..2, W 1..3."""
    target = torch.zeros(1, 4, 12, 5, dtype=torch.long)
    target[0, 1:3, 2:5, 1:4] = 3
    target[0, 1:3, 5:8, 1:4] = lowest
    annotated = torch.zeros(1, 20, dtype=torch.bool)
    annotated[0, 0] = True
    annotated[0, list(annotate)] = True
    return target, annotated


def test_the_region_below_l5_is_its_column_for_two_level_heights():
    from SAFNetSpineLib.training.losses import below_lumbar_region

    target, annotated = _body_case()
    region, allowed = below_lumbar_region(target, annotated, depth_levels=2.0, margin=0)
    expected = torch.zeros_like(region)
    expected[0, 1:3, 8:14, 1:4] = True  # H 8 .. 8 + 2 * 3, cut at the grid's end (12)
    assert torch.equal(region, expected)
    assert allowed[0].nonzero().flatten().tolist() == [0, 1, 11]  # background, S, L5/S
    # a disc case (L5/S annotated): below it only background or S
    disc_target, disc_annotated = _body_case(lowest=11, annotate=(11,))
    _, disc_allowed = below_lumbar_region(disc_target, disc_annotated)
    assert disc_allowed[0].nonzero().flatten().tolist() == [0, 1]
    # nothing is known below a spine whose lowest annotated level is L4
    region_l4, _ = below_lumbar_region(*_body_case(lowest=3, annotate=(3,)))
    assert not region_l4.any()


def test_the_set_valued_loss_by_hand():
    from SAFNetSpineLib.training.losses import below_lumbar_set_loss

    target, annotated = _body_case()
    logits = torch.zeros(1, 20, 4, 12, 5)
    # uniform softmax over 20 classes: P(set {0, S, L5/S}) = 3/20 everywhere in the region
    assert below_lumbar_set_loss(logits, target, annotated).item() == pytest.approx(-math.log(3 / 20), abs=1e-6)
    # calling the bone below L5 "S" costs nothing; calling it "L5" (the one-too-low failure) costs a lot
    sacral = logits.clone()
    sacral[:, 1, :, 8:, :] = 20.0
    lumbar = logits.clone()
    lumbar[:, 2, :, 8:, :] = 20.0
    assert below_lumbar_set_loss(sacral, target, annotated).item() < 1e-6
    assert below_lumbar_set_loss(lumbar, target, annotated).item() > 15.0
    # no region: zero, with a gradient path
    empty = below_lumbar_set_loss(logits.requires_grad_(), *_body_case(lowest=3, annotate=(3,)))
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None


def test_the_set_valued_loss_has_gradients_only_inside_the_region():
    from SAFNetSpineLib.training.losses import below_lumbar_set_loss

    target, annotated = _body_case()
    logits = torch.randn(1, 20, 4, 12, 5, requires_grad=True)
    below_lumbar_set_loss(logits, target, annotated).backward()
    touched = logits.grad.abs().sum(dim=1)[0] > 0  # (D, H, W)
    # one voxel of margin around L5's column (D 1..2, W 1..3), from just below it to the grid's end
    assert touched[0:4, 8:, 0:5].all()
    touched[0:4, 8:, 0:5] = False
    assert not touched.any()


def _reference_terms(logits, target, annotated):
    """The three terms written out the long way: merged softmax, one-hot Dice, masked log-sum-exp."""
    probs = torch.softmax(logits.double(), dim=1)
    group = ~annotated.clone()
    group[:, 0] = True
    merged = (probs * group[:, :, None, None, None]).sum(1)
    own = probs.gather(1, target.unsqueeze(1)).squeeze(1)
    in_group = torch.gather(group, 1, target.flatten(1)).view_as(target)
    ce = -torch.log(torch.where(in_group, merged, own)).mean()
    one_hot = torch.nn.functional.one_hot(target, logits.shape[1]).movedim(-1, 1).double()
    dice = (2 * (probs * one_hot).sum((2, 3, 4)) + 1e-5) / (probs.sum((2, 3, 4)) + one_hot.sum((2, 3, 4)) + 1e-5)
    weight = annotated.clone()
    weight[:, 0] = False
    from SAFNetSpineLib.training.losses import below_lumbar_region

    region, allowed = below_lumbar_region(target, annotated)
    labelled = torch.gather(annotated, 1, target.flatten(1)).view_as(target) & (target > 0)
    region = region & ~labelled
    in_set = (probs * allowed[:, :, None, None, None]).sum(1)
    return ce, 1.0 - dice[weight].mean(), -torch.log(in_set[region]).mean()


@pytest.mark.parametrize("channels_last", [False, True])
def test_training_loss_is_the_sum_of_its_terms_and_each_matches_the_long_way(channels_last):
    from SAFNetSpineLib.training.losses import below_lumbar_set_loss, training_loss

    torch.manual_seed(0)
    target = torch.zeros(2, 4, 12, 5, dtype=torch.long)
    target[:, 1:3, 2:5, 1:4] = 3
    target[:, 1:3, 5:8, 1:4] = 2
    target[1, 0, 0:2, 0:2] = 12  # an unannotated disc in case 2: counts as background there
    annotated = torch.zeros(2, 20, dtype=torch.bool)
    annotated[:, [0, 2, 3]] = True
    logits = torch.randn(2, 20, 4, 12, 5)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last_3d)
    ce, dice, below = _reference_terms(logits, target, annotated)
    assert marginal_cross_entropy(logits, target, annotated).item() == pytest.approx(ce.item(), rel=1e-5)
    assert marginal_soft_dice_loss(logits, target, annotated).item() == pytest.approx(dice.item(), rel=1e-5)
    assert below_lumbar_set_loss(logits, target, annotated).item() == pytest.approx(below.item(), rel=1e-5)
    total = training_loss(logits, target, annotated, dice_weight=0.7, below_lumbar_weight=0.3)
    assert total.item() == pytest.approx((ce + 0.7 * dice + 0.3 * below).item(), rel=1e-5)
    assert training_loss(logits, target, annotated).item() == pytest.approx(ce.item(), rel=1e-5)
    # the gradient is the reference's too
    fused = logits.clone().requires_grad_()
    training_loss(fused, target, annotated, 0.7, 0.3).backward()
    longway = logits.clone().double().requires_grad_()
    ce, dice, below = _reference_terms(longway, target, annotated)
    (ce + 0.7 * dice + 0.3 * below).backward()
    assert torch.allclose(fused.grad.double(), longway.grad, atol=1e-7)
