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
import torch.nn.functional as F


def _background_group(annotated: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, C) bool: background plus every class the case did not annotate."""
    if annotated.shape[1] != num_classes:
        raise ValueError(f"annotated mask has {annotated.shape[1]} classes, logits have {num_classes}")
    group = ~annotated.bool()
    group[:, 0] = True
    return group


def marginal_log_probs(logits: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Log-probabilities with the unannotated classes merged into background.

    Args:
        logits: (B, C, *spatial) network output.
        annotated: (B, C) bool, True where the case annotated class c (background is
            always treated as annotated).

    Returns:
        (B, C, *spatial) float32 log-probabilities; channel 0 holds the merged
        background group, unannotated channels hold -inf.
    """
    logits = logits.float()
    num_classes = logits.shape[1]
    group = _background_group(annotated.to(logits.device), num_classes)
    view = group.view(group.shape[0], num_classes, *([1] * (logits.dim() - 2)))
    log_norm = torch.logsumexp(logits, dim=1, keepdim=True)  # (B, 1, *spatial)
    merged = torch.logsumexp(logits.masked_fill(~view, float("-inf")), dim=1, keepdim=True)
    log_probs = (logits - log_norm).masked_fill(view, float("-inf"))
    return torch.cat([merged - log_norm, log_probs[:, 1:]], dim=1)


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
    num_classes = logits.shape[1]
    group = _background_group(annotated.to(logits.device), num_classes)
    target = target.long()
    # Voxels whose label falls in the background group are scored against channel 0.
    in_group = torch.gather(group, 1, target.flatten(1)).view_as(target)
    target = target.masked_fill(in_group, 0)
    return F.nll_loss(marginal_log_probs(logits, annotated), target)


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
    probs = marginal_log_probs(logits, annotated).exp()  # (B, C, *spatial)
    one_hot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = tuple(range(2, probs.dim()))
    intersection = (probs * one_hot).sum(dims)
    denominator = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + smooth) / (denominator + smooth)  # (B, C)
    weight = annotated.to(probs.device).bool().clone()
    weight[:, 0] = False
    if not weight.any():
        return logits.sum() * 0.0
    return 1.0 - dice[weight].mean()


#: Label ids the set-valued term needs: the sacrum, L5 and the L5/S disc.
_SACRUM, _L5, _L5_S = 1, 2, 11


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
    allowed[:, _SACRUM] = True
    for b in range(batch):
        lowest = _L5_S if bool(annotated[b, _L5_S]) else _L5 if bool(annotated[b, _L5]) else None
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
        if lowest == _L5:
            allowed[b, _L5_S] = True
    return region, allowed


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
    region, allowed = below_lumbar_region(target, annotated.to(target.device).bool(), depth_levels)
    # Voxels already labelled with an annotated structure keep their own supervision.
    labelled = torch.gather(annotated.to(target.device).bool(), 1, target.long().flatten(1)).view_as(target)
    region = region & ~(labelled & (target > 0))
    if not region.any():
        return logits.sum() * 0.0
    log_probs = torch.log_softmax(logits.float(), dim=1)  # (B, C, D, H, W)
    view = allowed.view(*allowed.shape, *([1] * (logits.dim() - 2))).to(log_probs.device)
    in_set = torch.logsumexp(log_probs.masked_fill(~view, float("-inf")), dim=1)  # (B, D, H, W)
    return -in_set[region].mean()
