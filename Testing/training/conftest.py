"""Fixtures of the training tests: zoomed-in phantoms (few, large structures) written once."""

from __future__ import annotations

import pytest
import torch


def write_small_phantoms(folder, n: int = 5, seed: int = 100):
    """n phantoms with a 220 x 160 mm field of view and 2 mm pixels: structures span
    several voxels of the tiny network grid, so a few epochs visibly learn them."""
    from SAFNetSpineLib.data.phantom import PhantomOptions, write_phantom_dataset

    options = PhantomOptions(fov_mm=(220.0, 160.0), inplane_spacing_mm=(2.0, 2.4), slices=(8, 10))
    return write_phantom_dataset(folder, n, seed, options)


@pytest.fixture(scope="session")
def small_phantoms(tmp_path_factory):
    return write_small_phantoms(tmp_path_factory.mktemp("phantoms"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from a second thread, and a shared CI core makes two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
