"""Local fine-tuning from corrected cases (the stores themselves are in :mod:`SAFNetSpineLib.stores`)."""

from SAFNetSpineLib.finetune.config import FinetuneConfig
from SAFNetSpineLib.finetune.finetune import FinetuneCancelled, FinetuneResult, finetune

__all__ = [
    "FinetuneCancelled",
    "FinetuneConfig",
    "FinetuneResult",
    "finetune",
]
