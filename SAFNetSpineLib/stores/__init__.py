"""The two stores a site keeps on disk: corrected cases (:class:`CaseStore`) and model versions (:class:`ModelStore`).

Every command finds its weights through the model store (``segment``: the active version;
``finetune``: the parent and the next version; ``models``: list, activate, roll back), and
fine-tuning reads its cases from the case store. Neither module imports torch, so the
Slicer panel may use them.
"""

from SAFNetSpineLib.stores.case_store import CaseStore, StoredCase
from SAFNetSpineLib.stores.model_store import ModelStore, Publication
from SAFNetSpineLib.stores.versions import ModelVersion

__all__ = ["CaseStore", "ModelStore", "ModelVersion", "Publication", "StoredCase"]
