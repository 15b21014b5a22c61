"""TrainConfig.below_lumbar_weight: the set-valued term is off by default and trains when on."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.training import TrainConfig, train

FAST = dict(width=8, batch_size=1, lr=1e-2, augment=False, epochs=2, seed=0,
            preprocess=PreprocessConfig(target_shape=(8, 64, 32)).to_dict())
BODIES_ONLY = (2, 3, 4, 5, 6)  # as the real body cases: L1-L5, no sacrum, no discs


def test_the_term_is_off_by_default_and_changes_training_when_on(small_phantoms, tmp_path):
    assert TrainConfig().below_lumbar_weight == 0.0
    cases = [replace(c, annotated_labels=BODIES_ONLY) for c in load_case_folder(small_phantoms)[:2]]
    plain = train(TrainConfig(**FAST), cases, [], tmp_path / "plain")
    taught = train(TrainConfig(below_lumbar_weight=1.0, **FAST), cases, [], tmp_path / "taught")
    losses = [h["loss"] for h in taught.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses != [h["loss"] for h in plain.history]  # the extra term is in the loss
    assert json.loads((tmp_path / "taught" / "train_config.json").read_text())["below_lumbar_weight"] == 1.0
