"""Training: partial-label loss, augmentation, the training loop, checkpoints and cross-validation.

``TrainConfig`` imports without torch (the CLI builds its flags from it); the loop and
the losses load torch on first use.
"""

import importlib

from SAFNetSpineLib.cancel import is_cancelled
from SAFNetSpineLib.training.config import TrainConfig

_LAZY = {
    "TrainResult": "SAFNetSpineLib.training.loop",
    "train": "SAFNetSpineLib.training.loop",
    "marginal_cross_entropy": "SAFNetSpineLib.training.losses",
    "marginal_soft_dice_loss": "SAFNetSpineLib.training.losses",
}

__all__ = [
    "TrainConfig",
    "TrainResult",
    "is_cancelled",
    "marginal_cross_entropy",
    "marginal_soft_dice_loss",
    "train",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)  # torch: only when training is asked for
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
