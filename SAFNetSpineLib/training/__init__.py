"""Training: partial-label loss, augmentation, the training loop, checkpoints and cross-validation.

``TrainConfig`` imports without torch (the CLI builds its flags from it); the loop and
the losses load torch on first use.
"""

from SAFNetSpineLib.cancel import is_cancelled
from SAFNetSpineLib.lazy import lazy_attributes
from SAFNetSpineLib.training.config import TrainConfig

_LAZY = {
    "TrainResult": "loop",
    "train": "loop",
    "marginal_cross_entropy": "losses",
    "marginal_soft_dice_loss": "losses",
}

__all__ = [
    "TrainConfig",
    "TrainResult",
    "is_cancelled",
    "marginal_cross_entropy",
    "marginal_soft_dice_loss",
    "train",
]

__getattr__ = lazy_attributes(__name__, _LAZY)  # torch: only when training is asked for
