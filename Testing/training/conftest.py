"""Fixtures of the training tests: zoomed-in phantoms (few, large structures) written once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # this folder's helper modules (block_maps), under --import-mode=importlib
    sys.path.insert(0, HERE)


def write_small_phantoms(folder, n: int = 5, seed: int = 100):
    """n phantoms with a 220 x 160 mm field of view and 2 mm pixels: structures span
    several voxels of the tiny network grid, so a few epochs visibly learn them."""
    from SAFNetSpineLib.data.phantom import PhantomOptions, write_phantom_dataset

    options = PhantomOptions(fov_mm=(220.0, 160.0), inplane_spacing_mm=(2.0, 2.4), slices=(8, 10))
    return write_phantom_dataset(folder, n, seed, options)


@pytest.fixture(scope="session")
def small_phantoms(tmp_path_factory):
    return write_small_phantoms(tmp_path_factory.mktemp("phantoms"))

