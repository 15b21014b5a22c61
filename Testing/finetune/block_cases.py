"""The fine-tuning tests' small synthetic cases: two bright blocks a width-8 SAFNet learns in a few epochs."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.volume import Volume


def block_case(seed: int, swap: bool = False) -> tuple[Volume, Volume]:
    """A 12 x 48 x 80 image with a bright block labelled L4 (3) and a brighter one L4/L5 (12).

    ``swap`` gives the blocks each other's id (a wrong correction).
    """
    rng = np.random.default_rng(seed)
    shape = (12, 48, 80)  # (left-right, posterior, superior) voxels, LPS identity direction
    image = rng.normal(100.0, 15.0, size=shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    k0, j0 = int(rng.integers(6, 20)), int(rng.integers(14, 20))
    label[2:10, j0 : j0 + 14, k0 : k0 + 22] = 3
    label[2:10, j0 : j0 + 14, k0 + 24 : k0 + 32] = 12
    image[label == 3] += 300
    image[label == 12] += 600
    if swap:
        label = np.where(label == 3, 12, np.where(label == 12, 3, 0)).astype(np.uint8)
    spacing, origin = (3.0, 1.1, 1.0), (5.0, -3.0, 20.0)
    return Volume(image, spacing, origin, np.eye(3)), Volume(label, spacing, origin, np.eye(3), is_label=True)
