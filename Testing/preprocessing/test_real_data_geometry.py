"""On real scans: labels line up with images and the network's H axis runs superior -> inferior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.preprocessing import PreprocessConfig, preprocess_image, preprocess_label, restore_labels

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("prefix", ["myo_", "chu_", "ivd_"])
def test_levels_are_stacked_superior_to_inferior(real_data_dir, prefix):
    cases = json.loads((real_data_dir / "dataset.json").read_text())["cases"]
    case = next(c for c in cases if c["case"].startswith(prefix))
    image = read_volume(real_data_dir / case["image"])
    labels = read_volume(real_data_dir / case["label"], is_label=True)
    assert image.same_grid(labels)
    network, grid = preprocess_image(image, PreprocessConfig())
    net_labels = preprocess_label(labels, grid)
    assert network.shape == net_labels.shape == (18, 256, 128)
    # Lower label ids are lower levels (1 S, 2 L5 ... ; 11 L5/S, 12 L4/L5 ...): each must sit
    # further down H (towards inferior) than the next id of its kind.
    heights = {i: np.argwhere(net_labels == i)[:, 1].mean() for i in case["annotated_labels"] if (net_labels == i).any()}
    ids = sorted(heights)
    assert len(ids) >= 4
    for lower, upper in zip(ids[:-1], ids[1:], strict=True):
        if (lower <= 10) == (upper <= 10):
            assert heights[lower] > heights[upper], (case["case"], lower, upper)
    # Going back lands on the input grid and keeps nearly all labelled voxels.
    restored = restore_labels(net_labels, grid, image)
    assert restored.same_grid(image)
    kept = np.count_nonzero((restored.array > 0) & (labels.array > 0)) / np.count_nonzero(labels.array)
    assert kept > 0.8
