"""Random draws of the augmentations, all from one ``torch.Generator`` per sample (seeded, reproducible)."""

from __future__ import annotations

import torch


def draw(gen: torch.Generator) -> float:
    """A uniform number in [0, 1)."""
    return float(torch.rand((), generator=gen))


def uniform(gen: torch.Generator, bounds: tuple[float, float]) -> float:
    """A uniform number in [bounds[0], bounds[1])."""
    return bounds[0] + (bounds[1] - bounds[0]) * draw(gen)


def happens(gen: torch.Generator, prob: float) -> bool:
    """True with probability ``prob`` (no draw is used when ``prob`` is 0)."""
    return prob > 0 and draw(gen) < prob


def sign(gen: torch.Generator) -> int:
    """+1 or -1 with equal probability."""
    return 1 if draw(gen) < 0.5 else -1
