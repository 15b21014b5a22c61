"""Cross-validation: folds train and test once, splits and finished folds are reused, report files."""

from __future__ import annotations

import csv
import json

import pytest

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.cv import cross_validate

CONFIG = TrainConfig(width=8, epochs=1, batch_size=2, augment=False,
                     preprocess=PreprocessConfig(target_shape=(8, 64, 32)).to_dict())


def test_cross_validation_report_and_reuse(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    out = tmp_path / "cv"
    summary = cross_validate(CONFIG, cases, out, folds=2, n_val=1, only_folds=[2], surface=False)
    assert summary.folds_done == [2] and not (out / "fold_1" / "test_metrics.json").exists()

    summary = cross_validate(CONFIG, cases, out, folds=2, n_val=1, surface=True)
    assert summary.folds_done == [1, 2] and not summary.cancelled
    splits = json.loads((out / "splits.json").read_text())
    tested = sorted(c for fold in splits for c in fold["test"])
    assert tested == sorted(c.case_id for c in cases)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 19 * len(cases)  # phantoms annotate all 19 structures
    assert {(r["fold"], r["case"]) for r in rows} == {(str(i + 1), c) for i, f in enumerate(splits) for c in f["test"]}
    assert all(r["dice"] == "nan" or 0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    report = summary.report.read_text(encoding="utf-8")
    assert "| 1 |" in report and "| 2 |" in report and "Dice (paper 17)" in report and "| 2 | L5 |" in report
    assert (out / "dice_boxplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second run reuses the splits and the finished folds (nothing is retrained).
    stamp = (out / "fold_1" / "test_metrics.json").stat().st_mtime_ns
    again = cross_validate(CONFIG, cases, out, folds=2, n_val=1, split_seed=5)
    assert (out / "fold_1" / "test_metrics.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "splits.json").read_text()) == splits
    assert len(again.rows) == len(summary.rows)


def test_cross_validation_bad_inputs(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    with pytest.raises(SpineInputError, match="5 cases are fewer than the 6 folds"):
        cross_validate(CONFIG, cases, tmp_path / "a", folds=6)
    with pytest.raises(SpineInputError, match=r"fold numbers \[3\]"):
        cross_validate(CONFIG, cases, tmp_path / "b", folds=2, n_val=1, only_folds=[3])
    cross_validate(CONFIG, cases[:2], tmp_path / "c", folds=2, n_val=0, only_folds=[])
    with pytest.raises(SpineInputError, match="splits name cases not found"):
        cross_validate(CONFIG, cases[2:4], tmp_path / "c", folds=2, n_val=0, only_folds=[])
