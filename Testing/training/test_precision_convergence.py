"""bf16 autocast training converges as fp32 does (phantoms; CPUs without native bf16 skip)."""

from __future__ import annotations

import numpy as np
import pytest

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.runtime import cpu_has_native_bf16
from SAFNetSpineLib.training import TrainConfig, train

TINY_GRID = PreprocessConfig(target_shape=(8, 64, 32)).to_dict()


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (emulated bf16 is slow)")
def test_bf16_training_tracks_fp32(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    runs = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(epochs=25, width=8, batch_size=1, lr=1e-2, augment=False, preprocess=TINY_GRID,
                             device="cpu", precision=precision)
        runs[precision] = train(config, cases[:4], cases[4:], tmp_path / precision, cache_dir=tmp_path / "cache")
    losses = {p: np.array([h["loss"] for h in r.history]) for p, r in runs.items()}
    dice = {p: np.mean([h["val_dice"] for h in r.history][-3:]) for p, r in runs.items()}
    assert losses["bf16"][-3:].mean() < 0.35 * losses["bf16"][0]  # it learns
    assert abs(losses["bf16"][-3:].mean() - losses["fp32"][-3:].mean()) < 0.25 * losses["fp32"][-3:].mean(), losses
    assert dice["bf16"] > dice["fp32"] - 0.1, dice
