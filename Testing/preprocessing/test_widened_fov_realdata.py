"""The widened field of view (``min_fov_mm``) on a source never trained on (skipped without ../shared/data/spine-mri).

Two 8-epoch continuations of the width-16 leave-``myo_``-out network, the same seed and recipe, one with
``--min-fov-mm 380`` (RESULTS.md, "A field of view widened to a common size"). On the 50 unseen T1 water-fat
cases the widened one finds the bodies at 0.719 within the annotated levels, the plain one at 0.564. Here, on
every tenth case, the widened network must stay clearly ahead, through ``segment``'s own path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_loso import names_ignored_body_dice, superior_axis  # noqa: E402

pytestmark = pytest.mark.realdata

CANDIDATES = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "candidates"
WIDENED = CANDIDATES / "widened-fov-2026-12-07" / "seed37"
PLAIN = CANDIDATES / "naming-checks-2026-12-07" / "N1"  # the same continuation without the widening
CASES = ["myo_10", "myo_20", "myo_30", "myo_40", "myo_50"]


def _in_range_body_dice(weights: Path, real_data_dir: Path) -> list[float]:
    from SAFNetSpineLib.data.cases import load_case, load_case_folder, select_cases
    from SAFNetSpineLib.inference.segmenter import Segmenter

    segmenter = Segmenter([weights], device="cpu", precision="fp32")
    scores = []
    for case in select_cases(load_case_folder(real_data_dir), CASES):
        image, reference = load_case(case)
        labels = np.asarray(segmenter.segment(image).labels.array)
        scores.append(names_ignored_body_dice(labels, np.asarray(reference.array), case.annotated_labels,
                                              range_axis=superior_axis(reference)))
    return scores


def test_the_widened_network_finds_the_unseen_sources_bodies_better(real_data_dir):
    from SAFNetSpineLib.weights import read_manifest

    assert read_manifest(WIDENED).preprocess["min_fov_mm"] == 380.0
    assert not read_manifest(PLAIN).preprocess.get("min_fov_mm")
    widened, plain = _in_range_body_dice(WIDENED, real_data_dir), _in_range_body_dice(PLAIN, real_data_dir)
    assert np.mean(widened) >= np.mean(plain) + 0.08, (widened, plain)
    assert sum(w > p for w, p in zip(widened, plain, strict=True)) >= 4, (widened, plain)
