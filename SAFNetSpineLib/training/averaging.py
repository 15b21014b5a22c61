"""Stochastic weight averaging (Izmailov et al. 2018): the equal-weight mean of the weights after each epoch.

Late in training, with a small learning rate, the weights wander around a good region
and validation Dice jumps from epoch to epoch; their mean usually sits nearer its centre
and scores better than any single epoch. BatchNorm running statistics are not averaged:
they are recomputed for the averaged weights by one pass over the training cases
(no augmentation), because the mean of the per-epoch statistics does not describe
the averaged network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from SAFNetSpineLib.training.cache import PreprocessedCase

#: Prefix of the averaged tensors inside a training checkpoint.
CHECKPOINT_PREFIX = "average/"


class WeightAverage:
    """Running equal-weight mean of a network's parameters.

    Args:
        module: The network being trained (not DDP-wrapped); its parameter names are the keys.
    """

    def __init__(self, module: torch.nn.Module):
        self.count = 0
        self.mean = {name: torch.zeros_like(p, device="cpu", dtype=torch.float32)
                     for name, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Fold the current parameters of ``module`` into the mean."""
        self.count += 1
        for name, parameter in module.named_parameters():
            mean = self.mean[name]
            mean += (parameter.detach().float().cpu() - mean) / self.count

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to store in a checkpoint (the count travels as a one-element tensor)."""
        tensors = {CHECKPOINT_PREFIX + name: value.clone() for name, value in self.mean.items()}
        tensors[CHECKPOINT_PREFIX + "#count"] = torch.tensor([self.count], dtype=torch.int64)
        return tensors

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Restore from checkpoint tensors; False (and unchanged) if they hold no average."""
        key = CHECKPOINT_PREFIX + "#count"
        if key not in tensors:
            return False
        for name in self.mean:
            self.mean[name] = tensors[CHECKPOINT_PREFIX + name].float().clone()
        self.count = int(tensors[key][0])
        return True

    @torch.no_grad()
    def apply_to(self, module: torch.nn.Module, cases: Sequence[PreprocessedCase], device: torch.device) -> None:
        """Load the mean into ``module`` and recompute its BatchNorm statistics on ``cases``.

        Args:
            module: A network of the same architecture (changed in place, left in eval mode).
            cases: Training cases (network-space images, shape (D, H, W)); one forward pass each.
            device: Where ``module`` lives.

        Raises:
            ValueError: nothing has been averaged yet.
        """
        if self.count == 0:
            raise ValueError("no epoch has been averaged yet")
        for name, parameter in module.named_parameters():
            parameter.copy_(self.mean[name].to(parameter.device, parameter.dtype))
        norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative mean over the pass
        module.train()
        for case in cases:
            module(torch.from_numpy(case.image[None, None]).to(device))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        module.eval()
