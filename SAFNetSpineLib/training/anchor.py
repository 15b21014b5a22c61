"""L2-SP: a penalty that keeps fine-tuned weights near their starting point.

Li, Grandvalet and Davoine, "Explicit inductive bias for transfer learning with
convolutional networks" (ICML 2018): instead of weight decay towards 0, the loss gets
``alpha / 2 * ||w - w_parent||^2`` over the parent's parameters, so a weight the new cases
say little about stays where the parent had it (the parent's competence elsewhere is
kept), while the cases' gradients still move the weights they need.
"""

from __future__ import annotations

import torch


def capture_anchor(module: torch.nn.Module) -> list[torch.Tensor]:
    """fp32 copies of ``module``'s parameters, in ``module.parameters()`` order (the anchor point).

    Args:
        module: The network as loaded from the parent weights, before any step.

    Returns:
        One detached fp32 tensor per parameter, same shape and device.
    """
    return [p.detach().float().clone() for p in module.parameters()]


def anchor_penalty(module: torch.nn.Module, anchor: list[torch.Tensor], weight: float) -> torch.Tensor:
    """``weight / 2 * sum_i ||p_i - anchor_i||^2`` over ``module``'s parameters, in fp32.

    Computed outside any autocast region (the parameters are cast to fp32), so it is the same
    under fp32, bf16 and fp16 training; under DistributedDataParallel pass the plain module
    inside the wrapper: every process adds the same term, so the averaged gradient gets it once.

    Args:
        module: The network being trained.
        anchor: :func:`capture_anchor` of the starting weights.
        weight: alpha, per squared weight unit (>= 0).

    Returns:
        A scalar fp32 tensor (zero at the anchor), differentiable in the parameters.
    """
    squares = [((p.float() - a) ** 2).sum() for p, a in zip(module.parameters(), anchor, strict=True)]
    return 0.5 * weight * torch.stack(squares).sum()
