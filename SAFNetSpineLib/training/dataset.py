"""Torch dataset over preprocessed cases, and validation Dice in network space (Dice from evaluation/)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from SAFNetSpineLib.training.augmentation import augment_pair
from SAFNetSpineLib.training.cache import PreprocessedCase


class TrainingCases(Dataset):
    """Preprocessed cases as training samples, augmented reproducibly, some of them synthesised.

    The augmentation of sample ``i`` in epoch ``e`` is drawn from seed (seed, e, i), so
    a resumed run and a DDP run see the same augmentations as an uninterrupted one. With
    a ``synthesizer``, sample ``i`` of epoch ``e`` is instead drawn from its case's
    generation map with probability ``synth_fraction`` (decided by seed (seed, e, i, 1));
    the label map and annotated mask stay the case's own.

    Args:
        cases: Preprocessed cases (held in memory).
        transform: From build_augmentation, or None.
        seed: Run seed.
        synthesizer: A :class:`~.synth_image.Synthesizer`, or None (no synthetic samples).
        generation_maps: One (D, H, W) generation map per case (same order), with ``synthesizer``.
        synth_fraction: Share of samples synthesised.
    """

    def __init__(self, cases: Sequence[PreprocessedCase], transform=None, seed: int = 0, synthesizer=None,
                 generation_maps: Sequence[np.ndarray] | None = None, synth_fraction: float = 0.0):
        self.cases = list(cases)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.synthesizer = synthesizer if synth_fraction > 0 else None
        self.generation_maps = list(generation_maps) if self.synthesizer is not None else []
        if self.synthesizer is not None and len(self.generation_maps) != len(self.cases):
            raise ValueError("one generation map per case is needed for synthesis")
        self.synth_fraction = float(synth_fraction)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cases)

    def is_synthetic(self, index: int) -> bool:
        """Whether sample ``index`` of the current epoch is synthesised."""
        if self.synthesizer is None:
            return False
        state = np.random.SeedSequence([self.seed, self.epoch, index, 1]).generate_state(1)[0]
        return float(state) / 2.0**32 < self.synth_fraction

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Sample ``index``: image (1, D, H, W) float32, label (D, H, W) int64, annotated (C,) bool."""
        case = self.cases[index]
        draw = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        if self.is_synthetic(index):
            image, label = self.synthesizer(torch.from_numpy(self.generation_maps[index].astype(np.int64)),
                                            torch.from_numpy(case.label.astype(np.int64)), draw)
            image, label = image.contiguous()[None], label.contiguous()
        else:
            image, label = augment_pair(self.transform, case.image, case.label, draw)
        return {"image": image, "label": label, "annotated": torch.from_numpy(case.annotated.copy())}


@torch.no_grad()
def validation_dice(model: torch.nn.Module, cases: Sequence[PreprocessedCase], device: torch.device,
                    autocast) -> np.ndarray:
    """Per-case, per-class Dice of ``model`` on preprocessed cases (network space).

    Args:
        model: The network (evaluated in eval mode; its mode is restored).
        cases: Validation cases.
        device: Device of the model.
        autocast: Zero-argument callable returning the autocast context to run under.

    Returns:
        (N, C) Dice array (C = NUM_CLASSES), from
        :func:`~SAFNetSpineLib.evaluation.metrics.dice_per_structure`: NaN for the
        background, for classes the case does not annotate and for classes in neither map.
    """
    from SAFNetSpineLib.evaluation.metrics import dice_per_structure
    from SAFNetSpineLib.labels import NUM_CLASSES

    was_training = model.training
    model.eval()
    rows = []
    for case in cases:
        image = torch.from_numpy(case.image[None, None]).to(device)
        with autocast():
            logits = model(image)
        prediction = logits[0].float().argmax(0).cpu().numpy()
        row = np.full(NUM_CLASSES, np.nan)
        for label_id, value in dice_per_structure(prediction, case.label, np.flatnonzero(case.annotated)).items():
            row[label_id] = value
        rows.append(row)
    model.train(was_training)
    return np.array(rows, dtype=np.float64).reshape(len(rows), NUM_CLASSES)
