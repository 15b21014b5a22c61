"""Training: partial-label loss, augmentation, the training loop, checkpoints and cross-validation."""

from SAFNetSpineLib.training.config import TrainConfig
from SAFNetSpineLib.training.loop import TrainResult, is_cancelled, train
from SAFNetSpineLib.training.losses import marginal_cross_entropy, marginal_soft_dice_loss

__all__ = [
    "TrainConfig",
    "TrainResult",
    "is_cancelled",
    "marginal_cross_entropy",
    "marginal_soft_dice_loss",
    "train",
]
