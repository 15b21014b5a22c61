"""``python -m SAFNetSpineLib relabel``, in process: outputs, the hint, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from spine_maps import FULL, centre_ras, hint_text, names_of, spine  # noqa: E402

from SAFNetSpineLib.cli import main  # noqa: E402
from SAFNetSpineLib.io import read_volume, write_volume  # noqa: E402

NO_SACRUM = FULL[1:]
SHIFTED = ["L5/S", "S", "L5/S", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1"]


def test_relabel_with_a_hint_fixes_every_name(tmp_path, capsys):
    source = write_volume(spine(NO_SACRUM, "oblique", names=SHIFTED), tmp_path / "scan.nrrd")
    hint = hint_text("L2/L3", centre_ras(NO_SACRUM, 6))
    assert main(["relabel", str(source), "--level-hint", hint, "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "level names confident (anchor: hint; counted from your L2/L3)" in captured.out
    assert "warning" not in captured.err
    assert names_of(read_volume(tmp_path / "out" / "scan_seg.nii.gz", is_label=True), NO_SACRUM) == NO_SACRUM
    summary = json.loads((tmp_path / "out" / "scan_seg.json").read_text())
    assert summary["naming"]["anchor"] == "hint"


def test_relabel_without_a_hint_warns_once_when_uncertain(tmp_path, capsys):
    source = write_volume(spine(NO_SACRUM, "oblique", names=SHIFTED), tmp_path / "scan_seg.nii.gz")
    assert main(["relabel", str(source), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "uncertain" in warnings[0] and "no sacrum" in warnings[0]


def test_relabel_errors_are_one_line(tmp_path, capsys):
    source = write_volume(spine(FULL, "oblique"), tmp_path / "scan.nii.gz")
    for hint in ("L3=1,2", "X9=1,2,3", "L3=500,500,500"):
        assert main(["relabel", str(source), "--level-hint", hint, "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "level-hint" in err.replace(" ", "-")
    assert main(["relabel", str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "o")]) == 2
    assert "missing.nii.gz" in capsys.readouterr().err
