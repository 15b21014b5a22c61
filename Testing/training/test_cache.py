"""Preprocessed-case cache: built once, reused, keyed by file content and config, plain .npy."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.io import read_volume, write_volume
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.training.cache import cache_key, preprocess_case

GRID = PreprocessConfig(target_shape=(8, 64, 32)).to_dict()


def test_cache_is_reused_and_keyed_by_content_and_config(small_phantoms, tmp_path):
    case = load_case_folder(small_phantoms)[0]
    cache = tmp_path / "cache"
    first = preprocess_case(case, GRID, cache)
    files = sorted(p.name for p in cache.iterdir())
    assert files == [f"{cache_key(case, GRID)}.image.npy", f"{cache_key(case, GRID)}.label.npy"]
    assert first.image.shape == (8, 64, 32) and first.image.dtype == np.float32 and first.label.dtype == np.uint8
    assert abs(float(first.image.mean())) < 1e-3  # z-scored
    assert set(np.unique(first.label)) <= set(range(20)) and first.annotated.all()

    # A cache hit returns the stored arrays (plain .npy, loadable without pickle).
    stored = np.load(cache / files[0], allow_pickle=False)
    stored[:] = 7.0
    np.save(cache / files[0], stored, allow_pickle=False)
    assert np.all(preprocess_case(case, GRID, cache).image == 7.0)

    other = {**GRID, "target_shape": [8, 32, 32]}
    assert cache_key(case, other) != cache_key(case, GRID)
    assert preprocess_case(case, other, cache).image.shape == (8, 32, 32)


def test_changed_file_or_corrupt_entry_is_rebuilt(small_phantoms, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(small_phantoms, folder)
    case = load_case_folder(folder)[1]
    cache = tmp_path / "cache"
    key = cache_key(case, GRID)
    reference = preprocess_case(case, GRID, cache)
    (cache / f"{key}.image.npy").write_bytes(b"garbage")
    assert np.array_equal(preprocess_case(case, GRID, cache).image, reference.image)

    label = read_volume(case.label_path, is_label=True)
    write_volume(label.with_array(np.zeros_like(label.array)), case.label_path)
    assert cache_key(case, GRID) != key
    assert not preprocess_case(case, GRID, cache).label.any()
