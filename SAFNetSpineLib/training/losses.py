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
