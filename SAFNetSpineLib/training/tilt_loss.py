"""A loss on each structure's sagittal orientation: the tilt that Dice barely sees.

A lumbar body turned 5 degrees about its centre still overlaps its mask with Dice ~0.95,
so cross-entropy and Dice hardly mind it; but radiologists read lordosis and segmental
angles off exactly that tilt, and a network trained on them alone measures tilts
compressed towards the image's rows (``Testing/benchmarks/bench_orientation.py``). This
term (public form: :func:`~.losses.tilt_loss`; here its arithmetic) compares, per annotated
structure, the orientation of the second moments (the principal axis in the
superior-inferior x anterior-posterior plane, summed over the left-right slices) of the
predicted probabilities with those of the mask.

Moments are taken in network voxels (rows H, columns W): the grid's anisotropy maps
both orientations the same way, so they agree in voxels exactly when they agree in mm.
Predicted probability counts only within a few voxels (in-plane) of the structure's
mask in any slice (:data:`WINDOW_VOXELS`), so a stray blob elsewhere does not turn the
axis (Dice and cross-entropy deal with blobs). Orientations are compared as doubled-angle vectors of the
trace-normalised covariance, ``a = (c_ww - c_hh, 2 c_hw) / (c_hh + c_ww)`` (an axis, not a
direction; its length is the elongation e): ``|a_pred| |a_mask| (1 - cos(2 * dtheta)) / e_mask^2``,
which is ``1 - cos(2 * dtheta)`` for a prediction as elongated as its mask and ignores a
rounder or longer outline (Dice sees that). A near-round mask (e below
:data:`ROUND_ELONGATION`) or prediction counts less, so an unstable axis does not dominate.
"""

from __future__ import annotations

import torch

#: How far (voxels, in-plane) around a structure's mask its predicted probability is counted.
WINDOW_VOXELS = 4
#: Structures with fewer mask voxels in the crop are not oriented (a sliver at the crop's edge).
MIN_VOXELS = 200
#: Elongation, (l1 - l2) / (l1 + l2) of the mask's moments, below which a structure's axis counts less
#: (its term is scaled by (elongation / ROUND_ELONGATION)^2): a near-round outline's axis follows its
#: corners, not its tilt. Lumbar bodies measure 0.1-0.45 on the network grid, discs 0.7-0.9.
ROUND_ELONGATION = 0.2
#: A prediction holding less than this share of the mask's mass is left to the other terms.
MIN_PREDICTED_SHARE = 0.25


def _moments(mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total mass and doubled-angle axis vector of (B, C, H, W) masses.

    Returns:
        (B, C) total mass, and (B, C, 2) vectors (c_ww - c_hh, 2 c_hw) with the covariance
        normalised by its trace (so the vector's length is the elongation, in [0, 1]).
    """
    rows = torch.arange(mass.shape[2], dtype=mass.dtype, device=mass.device) - mass.shape[2] / 2
    cols = torch.arange(mass.shape[3], dtype=mass.dtype, device=mass.device) - mass.shape[3] / 2
    total = mass.sum((2, 3))
    safe = total.clamp_min(1e-6)
    by_row, by_col = mass.sum(3), mass.sum(2)  # (B, C, H), (B, C, W)
    mean_h, mean_w = (by_row * rows).sum(2) / safe, (by_col * cols).sum(2) / safe
    c_hh = (by_row * rows**2).sum(2) / safe - mean_h**2
    c_ww = (by_col * cols**2).sum(2) / safe - mean_w**2
    c_hw = torch.einsum("bchw,h,w->bc", mass, rows, cols) / safe - mean_h * mean_w
    trace = (c_hh + c_ww).clamp_min(1e-6)
    return total, torch.stack([(c_ww - c_hh) / trace, 2 * c_hw / trace], dim=-1)


def _tilt(log_probs: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor,
          projected: torch.Tensor | None = None) -> torch.Tensor:
    """Tilt term from the plain log-softmax (see :func:`~.losses.tilt_loss`; the classes already checked).

    Everything but one pass over the probabilities (their sum over the left-right slices,
    ``projected`` (B, C, H, W) when the caller has it) works on (B, C, H, W) projections,
    so the term costs a small share of a training step.
    """
    batch, num_classes, depth, height, width = log_probs.shape
    flat = target.long().reshape(batch, depth, height * width)
    truth = torch.zeros(batch, num_classes, height * width, dtype=torch.float64, device=log_probs.device)
    truth = truth.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64)).view(
        batch, num_classes, height, width)  # mask voxels per class, summed over the slices
    window = torch.nn.functional.max_pool2d(truth, kernel_size=2 * WINDOW_VOXELS + 1, stride=1,
                                            padding=WINDOW_VOXELS) > 0
    if projected is None:
        projected = log_probs.exp().sum(2)
    predicted = projected.double() * window  # (B, C, H, W)
    true_mass, true_axis = _moments(truth)
    pred_mass, pred_axis = _moments(predicted)
    use = annotated.to(log_probs.device).bool().clone()
    use[:, 0] = False
    use &= true_mass >= MIN_VOXELS
    use &= pred_mass >= MIN_PREDICTED_SHARE * true_mass
    if not use.any():
        return log_probs.sum() * 0.0
    pred_axis, true_axis = pred_axis[use], true_axis[use]
    # |a_p| |a_t| (1 - cos 2 dtheta): the turn alone (not a rounder or longer outline), weighted by both
    # elongations; divided by e_t^2 it is 1 - cos 2 dtheta for a prediction as elongated as its mask.
    turned = _length(pred_axis) * _length(true_axis) - (pred_axis * true_axis).sum(-1)
    return (turned / (true_axis * true_axis).sum(-1).clamp_min(ROUND_ELONGATION**2)).mean().float()


def _length(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last axis, with a finite gradient at 0."""
    return (vectors * vectors).sum(-1).add(1e-12).sqrt()
