"""Shared fixtures: real-data location, small synthetic volumes, tiny trained-free weights."""

from __future__ import annotations

import os

# Before torch loads: oneDNN's AMX kernels make bf16 training differ run to run (same seed, same
# data; see docs/TRAINING.md), and tests that train decide a margin in one run. Capped at AVX-512
# BF16, training on an AMX CPU gives the same bits every time, bf16 included; CPUs without AMX are
# unaffected. Child processes the tests start inherit it.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

from pathlib import Path  # noqa: E402

import numpy as np
import pytest
import torch

from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.weights import ModelManifest, save_weights

# Tests run many tiny tensors, where one thread is faster than two and the suite's child
# processes (CLI runs, 2-process DDP) do not fight over the machine's two cores.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
#: Real spine MRI (never copied into the repository); tests that need it skip when absent.
REAL_DATA = REPO.parent / "shared" / "data" / "spine-mri"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (REAL_DATA / "dataset.json").is_file():
        pytest.skip(f"real data not available at {REAL_DATA}")
    return REAL_DATA


def oblique_direction(angle_deg: float = 17.0) -> np.ndarray:
    """An oblique, flipped, permuted LPS direction matrix (columns orthonormal)."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    perm = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float)
    return rot @ perm


@pytest.fixture
def oblique_volume():
    """A small anisotropic, oblique float32 Volume with structure in it."""
    from SAFNetSpineLib.volume import Volume

    rng = np.random.default_rng(3)
    array = rng.normal(100.0, 20.0, size=(20, 14, 30)).astype(np.float32)
    array[5:15, 4:10, 8:20] += 300.0
    return Volume(array, np.array([0.9, 4.0, 1.3]), np.array([-12.5, 40.0, 7.25]), oblique_direction())


#: A small network grid for fast tests (the paper's is 18 x 256 x 128).
SMALL = PreprocessConfig(target_shape=(8, 64, 32))



def save_tiny_weights(folder, seed=0, version="tiny"):
    """An untrained width-8 SAFNet on a small grid: fast, and real weights on disk."""
    torch.manual_seed(seed)
    model = build_model("safnet", width=8)
    manifest = ModelManifest("safnet", {"width": 8}, SMALL.to_dict(), trained_on="nothing (test)", version=version)
    return save_weights(model, folder, manifest)


@pytest.fixture
def make_tiny_weights():
    return save_tiny_weights


@pytest.fixture
def tiny_weights(tmp_path):
    return save_tiny_weights(tmp_path / "tiny")
