"""Tiny real inputs for the tests that run the library's commands as child processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_weights(folder: Path, version: str = "tiny") -> Path:
    """An untrained width-8 SAFNet on a small network grid: real weights, fast on CPU."""
    import torch

    from SAFNetSpineLib.models import build_model
    from SAFNetSpineLib.preprocessing import PreprocessConfig
    from SAFNetSpineLib.weights import ModelManifest, save_weights

    torch.manual_seed(0)
    manifest = ModelManifest("safnet", {"width": 8}, PreprocessConfig(target_shape=(8, 64, 32)).to_dict(),
                             trained_on="nothing (test)", version=version)
    return save_weights(build_model("safnet", width=8), folder, manifest)


def tiny_case_store(folder: Path, count: int = 3) -> Path:
    """A corrected-case store of ``count`` small, coarse synthetic spines (the library's phantom), all reviewed."""
    from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
    from SAFNetSpineLib.stores.case_store import CaseStore

    store = CaseStore(folder)
    coarse = PhantomOptions(slices=(8, 8), inplane_spacing_mm=(3.0, 3.0), slice_spacing_mm=(4.0, 4.0))
    for seed in range(count):
        image, labels = make_phantom(seed, coarse)
        present = sorted(int(v) for v in np.unique(np.asarray(labels.array)) if v)
        store.add(image, labels, present, "phantom", case_id=f"case-{seed}")
    return store.folder
