"""Local fine-tuning from corrected cases: the case store, model versions, and the fine-tune run."""

from SAFNetSpineLib.finetune.case_store import CaseStore, StoredCase
from SAFNetSpineLib.finetune.config import FinetuneConfig
from SAFNetSpineLib.finetune.finetune import FinetuneCancelled, FinetuneResult, finetune
from SAFNetSpineLib.finetune.model_store import ModelStore, ModelVersion
from SAFNetSpineLib.finetune.validation_split import split_cases, split_roles

__all__ = [
    "CaseStore",
    "FinetuneCancelled",
    "FinetuneConfig",
    "FinetuneResult",
    "ModelStore",
    "ModelVersion",
    "StoredCase",
    "finetune",
    "split_cases",
    "split_roles",
]
