"""Report: means per fold and per structure over the right subsets, NaN excluded."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from SAFNetSpineLib.evaluation.report import mean_std, write_report
from SAFNetSpineLib.labels import STRUCTURES


def _row(fold, case, label_id, dice, msd=1.0, hd95=2.0):
    return {"fold": fold, "case": case, "label_id": label_id, "structure": STRUCTURES[label_id].short_name,
            "dice": dice, "msd_mm": msd, "hd95_mm": hd95}


ROWS = [
    _row(1, "a", 2, 0.9), _row(1, "a", 3, 0.7), _row(1, "a", 10, 0.1),  # T9 (id 10) is not in the paper's 17
    _row(2, "b", 2, 0.8), _row(2, "b", 3, float("nan"), float("nan"), float("nan")), _row(2, "b", 19, 0.3),
]


def test_mean_std_over_subsets_excludes_nan():
    assert mean_std(ROWS, "dice") == pytest.approx((np.mean([0.9, 0.7, 0.1, 0.8, 0.3]),
                                                    np.std([0.9, 0.7, 0.1, 0.8, 0.3]), 5))
    from SAFNetSpineLib.labels import PAPER_17_IDS

    mean, std, count = mean_std(ROWS, "dice", PAPER_17_IDS)
    assert count == 3 and mean == pytest.approx(0.8) and std == pytest.approx(np.std([0.9, 0.7, 0.8]))
    assert np.isnan(mean_std(ROWS, "dice", [5])[0])


def test_report_files(tmp_path):
    path = write_report(ROWS, tmp_path, notes=["command: test"])
    text = path.read_text()
    assert "command: test" in text
    assert "| 1 | 1 | 0.567 ± 0.340 | 0.800 ± 0.100 |" in text  # fold 1: all 19 vs paper 17
    assert "| 2 | 1 | 0.550 ± 0.250 | 0.800 ± 0.000 |" in text
    assert "| 3 | L4 | 1 | 0.700 ± 0.000 |" in text and "| 5 | L2 |" not in text
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) == len(ROWS) and rows[4]["dice"] == "nan" and rows[0]["structure"] == "L5"
    assert (tmp_path / "dice_boxplot.png").stat().st_size > 1000
