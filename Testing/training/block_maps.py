"""The augmentation tests' label maps: three blocks, and an image that is a known function of the label."""

from __future__ import annotations

import numpy as np


def blocks(depth: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(D, 64, 32) float image and uint8 label map of three blocks (ids 3, 12, 2); image = 10 * label + 1."""
    label = np.zeros((depth, 64, 32), np.uint8)
    label[:, 10:22, 8:24] = 3
    label[:, 26:34, 8:24] = 12
    label[:, 40:52, 8:24] = 2
    image = (label.astype(np.float32) * 10.0) + 1.0
    return image, label
