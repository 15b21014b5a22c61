"""The evaluation report counts confident and uncertain level names, and the silent errors."""

from __future__ import annotations

from SAFNetSpineLib.evaluation.report import write_report


def _row(case, status, level_ok, label_id=3):
    return {"fold": 0, "case": case, "label_id": label_id, "structure": "L4", "dice": 0.8, "msd_mm": 1.0,
            "hd95_mm": 2.0, "level_ok": level_ok, "naming_status": status}


def test_report_counts_naming_status_per_case(tmp_path):
    rows = [_row("a", "confident", 1.0), _row("a", "confident", 1.0, 4), _row("b", "confident", 0.0),
            _row("c", "uncertain", 0.0), _row("c", "uncertain", 1.0, 4)]
    text = write_report(rows, tmp_path).read_text()
    assert "Level names: 2 cases confident, 1 uncertain; 1 confident case(s) with a level named wrong." in text


def test_rows_without_naming_status_add_no_line(tmp_path):
    rows = [{k: v for k, v in _row("a", None, 1.0).items() if k != "naming_status"}]
    assert "Level names" not in write_report(rows, tmp_path).read_text()


def test_out_of_range_cases_are_counted_apart_from_uncertain_ones(tmp_path):
    rows = [_row("a", "confident", 1.0), _row("b", "out_of_range", 0.0), _row("c", "uncertain", 1.0)]
    text = write_report(rows, tmp_path).read_text()
    assert ("Level names: 1 cases confident, 1 uncertain, 1 out of range (no names); "
            "0 confident case(s) with a level named wrong.") in text
