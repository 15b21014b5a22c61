"""Partial-label losses: cross-entropy (and an optional soft Dice) that only trust annotated classes.

A case annotated only for L1-L5 says nothing about its discs: a voxel of an
unlabelled disc is stored as 0 in the mask. Plain cross-entropy would teach the
network to call that disc background. The *marginal* loss instead merges every class
the case did not annotate into background before comparing with the mask:

    log p'(bg) = logsumexp(z_bg, z_u for u unannotated) - logsumexp(z)

so predicting an unannotated structure where the mask says 0 costs nothing, while the
annotated structures are learned exactly as with cross-entropy. With every class
annotated the merged group is background alone and the loss is plain cross-entropy.
(Marginal loss: Shi et al., "Marginal loss and exclusion loss for partially supervised
multi-organ segmentation", MedIA 2021.)
"""

from __future__ import annotations

import torch

from SAFNetSpineLib.labels import L5_ID, L5_S_ID, SACRUM_ID
from SAFNetSpineLib.training.tilt_loss import _tilt


def _check_classes(annotated: torch.Tensor, num_classes: int) -> None:
    if annotated.shape[1] != num_classes:
        raise ValueError(f"annotated mask has {annotated.shape[1]} classes, logits have {num_classes}")


def _background_group(annotated: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, C) bool: background plus every class the case did not annotate."""
    _check_classes(annotated, num_classes)
    group = ~annotated.bool()
    group[:, 0] = True
    return group


def _per_class(mask: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """(B, C) -> (B, C, 1, ..., 1), to broadcast a per-class mask over the spatial axes."""
    return mask.view(*mask.shape, *([1] * spatial_dims))


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial) float32 log-softmax over the classes: the one full-size step every term shares."""
    return torch.log_softmax(logits.float(), dim=1)


def _merged_background(log_probs: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """(B, *spatial) log-probability of the merged background group (background + unannotated)."""
    view = _per_class(group.to(log_probs.device), log_probs.dim() - 2)
    return torch.logsumexp(log_probs.masked_fill(~view, float("-inf")), dim=1)


def _cross_entropy(log_probs: torch.Tensor, target: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Marginal cross-entropy from the plain log-softmax (see :func:`marginal_cross_entropy`)."""
    target = target.long()
    in_group = torch.gather(group, 1, target.flatten(1)).view_as(target)
    picked = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, *spatial)
    return -torch.where(in_group, _merged_background(log_probs, group), picked).mean()


def marginal_cross_entropy(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over voxels with unannotated classes merged into background.

    Args:
        logits: (B, C, D, H, W) network output (any number of spatial dims works).
        target: (B, D, H, W) int64 label ids in [0, C).
        annotated: (B, C) bool, True for the classes annotated in each case.

    Returns:
        Scalar loss (natural log units, mean over all voxels of the batch). A target
        voxel holding an unannotated id counts as background.
    """
    group = _background_group(annotated.to(logits.device), logits.shape[1])
    return _cross_entropy(_log_softmax(logits), target, group)


def _soft_dice(log_probs: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor,
               smooth: float = 1e-5, projected: torch.Tensor | None = None) -> torch.Tensor:
    """Marginal soft Dice loss from the plain log-softmax (see :func:`marginal_soft_dice_loss`).

    The overlap is summed per class by scattering each voxel's probability of its own
    label, so no (B, C, *spatial) one-hot is built. ``projected``, the probabilities
    summed over the first spatial axis ((B, C, H, W), shared with the tilt term), saves
    one full-size pass when given.
    """
    weight = annotated.to(log_probs.device).bool().clone()
    weight[:, 0] = False
    if not weight.any():
        return log_probs.sum() * 0.0
    batch, num_classes = log_probs.shape[:2]
    dims = tuple(range(2, log_probs.dim()))
    target = target.long()
    own = log_probs.gather(1, target.unsqueeze(1)).flatten(1).exp()  # (B, N): P(own label)
    target = target.flatten(1)
    intersection = torch.zeros(batch, num_classes, dtype=own.dtype, device=own.device).scatter_add(1, target, own)
    counts = torch.zeros(batch, num_classes, dtype=own.dtype, device=own.device).scatter_add(
        1, target, torch.ones_like(own))
    # Only the annotated foreground classes are scored: their probabilities are the plain softmax.
    totals = log_probs.exp().sum(dims) if projected is None else projected.sum((2, 3))  # (B, C)
    dice = (2 * intersection + smooth) / (totals + counts + smooth)
    return 1.0 - dice[weight].mean()


def marginal_soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor, smooth: float = 1e-5
) -> torch.Tensor:
    """1 - mean soft Dice over the annotated foreground classes of each case.

    Not part of the paper's recipe (which is cross-entropy only); an option for small
    data sets where thin structures such as discs are rare voxels.

    Args:
        logits: (B, C, *spatial) network output.
        target: (B, *spatial) int64 label ids.
        annotated: (B, C) bool annotated classes per case.
        smooth: Added to numerator and denominator (avoids 0/0 for absent classes).

    Returns:
        Scalar loss in [0, 1]; 0 when nothing is annotated.
    """
    _check_classes(annotated, logits.shape[1])
    return _soft_dice(_log_softmax(logits), target, annotated, smooth)


def below_lumbar_region(target: torch.Tensor, annotated: torch.Tensor, depth_levels: float = 2.0,
                        margin: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the real cases say "this is no lumbar vertebra": just below the lowest lumbar level.

    A case that annotates L5 (body cases) or the L5/S disc (disc cases) says where the
    lumbar spine ends: below it lies the sacrum. The region is the lowest level's own
    left-right and anterior-posterior box (``margin`` voxels wider), from just below
    it down ``depth_levels`` times its height, on the network grid (H runs superior ->
    inferior).

    Args:
        target: (B, D, H, W) int64 label ids on the network grid.
        annotated: (B, C) bool annotated classes per case.
        depth_levels: Depth of the region in heights of the lowest level.
        margin: Widening of the box in D and W, voxels.

    Returns:
        ``(region, allowed)``: (B, D, H, W) bool voxels, and (B, C) bool classes a voxel
        there may be: background and S, plus L5/S where the disc was not annotated
        (body cases). Cases without L5 or L5/S annotated and present have no region.
    """
    batch, num_classes = annotated.shape
    region = torch.zeros_like(target, dtype=torch.bool)
    allowed = torch.zeros(batch, num_classes, dtype=torch.bool, device=target.device)
    allowed[:, 0] = True
    allowed[:, SACRUM_ID] = True
    for b in range(batch):
        lowest = L5_S_ID if bool(annotated[b, L5_S_ID]) else L5_ID if bool(annotated[b, L5_ID]) else None
        if lowest is None:
            continue
        where = torch.nonzero(target[b] == lowest)
        if len(where) == 0:
            continue
        low, high = where.min(dim=0).values, where.max(dim=0).values
        height = int(high[1] - low[1]) + 1
        d0, w0 = max(int(low[0]) - margin, 0), max(int(low[2]) - margin, 0)
        d1, w1 = int(high[0]) + margin + 1, int(high[2]) + margin + 1
        top = int(high[1]) + 1  # first voxel below the level (H grows inferiorly)
        region[b, d0:d1, top:top + int(round(depth_levels * height)), w0:w1] = True
        if lowest == L5_ID:
            allowed[b, L5_S_ID] = True
    return region, allowed


def _below_lumbar(log_probs: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor,
                  depth_levels: float = 2.0) -> torch.Tensor:
    """Set-valued term from the plain log-softmax (see :func:`below_lumbar_set_loss`)."""
    annotated = annotated.to(target.device).bool()
    region, allowed = below_lumbar_region(target, annotated, depth_levels)
    # Voxels already labelled with an annotated structure keep their own supervision.
    labelled = torch.gather(annotated, 1, target.long().flatten(1)).view_as(target)
    region = region & ~(labelled & (target > 0))
    if not region.any():
        return log_probs.sum() * 0.0
    view = _per_class(allowed.to(log_probs.device), log_probs.dim() - 2)
    in_set = torch.logsumexp(log_probs.masked_fill(~view, float("-inf")), dim=1)  # (B, D, H, W)
    return -in_set[region].mean()


def below_lumbar_set_loss(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor,
                          depth_levels: float = 2.0) -> torch.Tensor:
    """Set-valued supervision below the lowest annotated lumbar level: -log P(voxel in the allowed set).

    There a voxel may be background, S or (in body cases) L5/S, never another vertebra
    or disc: the loss is the mean over the region of ``-log sum_{c allowed} p_c``, so
    it costs nothing to call the sacrum S or background, and teaches the network that
    the bone under L5 is not L5, L4 ... (the "every name one too low" failure). Voxels
    whose mask holds an annotated structure are left to the marginal cross-entropy.

    Args:
        logits: (B, C, D, H, W) network output.
        target: (B, D, H, W) int64 label ids.
        annotated: (B, C) bool annotated classes per case.
        depth_levels: Depth of the region in heights of the lowest level (see
            :func:`below_lumbar_region`).

    Returns:
        Scalar loss (natural log units); 0 when no case has a region.
    """
    return _below_lumbar(_log_softmax(logits), target, annotated, depth_levels)


def tilt_loss(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Mean over annotated structures of the orientation cost: about ``1 - cos(2 * dtheta)``, dtheta the
    angle between the principal sagittal axes of the predicted probabilities and of the mask.

    A structure counts when the case annotates it, its mask has at least :data:`~.tilt_loss.MIN_VOXELS`
    voxels, and the prediction holds at least :data:`~.tilt_loss.MIN_PREDICTED_SHARE` of its mass near it.
    5 degrees of tilt cost 0.015, 10 degrees 0.060 (less for a near-round mask or prediction).

    Args:
        logits: (B, C, D, H, W) network output; D left-right, H superior-inferior, W anterior-posterior.
        target: (B, D, H, W) int64 label ids.
        annotated: (B, C) bool annotated classes per case.

    Returns:
        Scalar loss >= 0; 0 when no structure counts.
    """
    _check_classes(annotated, logits.shape[1])
    return _tilt(_log_softmax(logits), target, annotated)


def training_loss(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor,
                  dice_weight: float = 0.0, below_lumbar_weight: float = 0.0,
                  tilt_weight: float = 0.0) -> torch.Tensor:
    """The training objective: marginal cross-entropy + weighted soft Dice + weighted set-valued term
    + weighted tilt term.

    Equal to summing :func:`marginal_cross_entropy`, :func:`marginal_soft_dice_loss`,
    :func:`below_lumbar_set_loss` and :func:`tilt_loss`, but the full-size log-softmax (B x 20 classes x the
    18 x 256 x 128 grid) is computed, and back-propagated, once instead of three times.

    Args:
        logits: (B, C, D, H, W) network output.
        target: (B, D, H, W) int64 label ids.
        annotated: (B, C) bool annotated classes per case.
        dice_weight: Weight of the soft Dice term (0 = off).
        below_lumbar_weight: Weight of the set-valued term (0 = off).
        tilt_weight: Weight of the structures' orientation term (0 = off).

    Returns:
        Scalar loss.
    """
    group = _background_group(annotated.to(logits.device), logits.shape[1])
    log_probs = _log_softmax(logits)
    loss = _cross_entropy(log_probs, target, group)
    # The probabilities summed over the left-right slices serve the Dice totals and the tilt term alike.
    projected = log_probs.exp().sum(2) if tilt_weight > 0 else None
    if dice_weight > 0:
        loss = loss + dice_weight * _soft_dice(log_probs, target, annotated, projected=projected)
    if below_lumbar_weight > 0:
        loss = loss + below_lumbar_weight * _below_lumbar(log_probs, target, annotated)
    if tilt_weight > 0:
        loss = loss + tilt_weight * _tilt(log_probs, target, annotated, projected=projected)
    return loss
