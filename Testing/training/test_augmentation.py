"""Augmentation: image and label move together, labels stay labels, draws are seeded."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation


def _blocks():
    label = np.zeros((4, 64, 32), np.uint8)
    label[:, 10:22, 8:24] = 3
    label[:, 26:34, 8:24] = 12
    label[:, 40:52, 8:24] = 2
    image = (label.astype(np.float32) * 10.0) + 1.0
    return image, label


def test_spatial_augmentation_moves_image_and_label_together():
    image, label = _blocks()
    transform = build_augmentation(TrainConfig(rotate_prob=1.0, elastic_prob=1.0, contrast_prob=0.0))
    moved = 0
    for seed in range(4):
        new_image, new_label = augment_pair(transform, image, label, seed)
        assert new_image.shape == (1, 4, 64, 32) and new_label.shape == (4, 64, 32)
        assert set(np.unique(new_label.numpy())) <= {0, 2, 3, 12}
        values = new_image[0].numpy()
        lab = new_label.numpy()
        # Away from edges (where linear interpolation mixes), the image says which label sits there.
        for label_id in (2, 3, 12):
            inside = values[lab == label_id]
            assert np.median(inside) == np.float32(label_id * 10.0 + 1.0)
        moved += int((lab != label).sum())
        # identical in every sagittal slice: the deformation is in-plane only
        assert all(np.array_equal(lab[0], lab[d]) for d in range(4))
    assert moved > 100


def test_draws_are_reproducible_and_vary_with_the_seed():
    image, label = _blocks()
    transform = build_augmentation(TrainConfig(rotate_prob=1.0, elastic_prob=1.0, contrast_prob=1.0))
    a = augment_pair(transform, image, label, 7)
    b = augment_pair(transform, image, label, 7)
    c = augment_pair(transform, image, label, 8)
    assert np.array_equal(a[0].numpy(), b[0].numpy()) and np.array_equal(a[1].numpy(), b[1].numpy())
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


def test_contrast_keeps_geometry_and_no_augmentation_is_identity():
    image, label = _blocks()
    contrast = build_augmentation(TrainConfig(rotate_prob=0.0, elastic_prob=0.0, contrast_prob=1.0))
    new_image, new_label = augment_pair(contrast, image, label, 3)
    assert np.array_equal(new_label.numpy(), label)
    assert not np.allclose(new_image[0].numpy(), image)
    assert build_augmentation(TrainConfig(augment=False)) is None
    same_image, same_label = augment_pair(None, image, label, 0)
    assert np.array_equal(same_image[0].numpy(), image) and np.array_equal(same_label.numpy(), label)
