"""``segment`` names levels by counting: the bundled weights on the bundled phantom, the hint, the warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.labels import STRUCTURES, neighbour, structure_by_name
from SAFNetSpineLib.volume import LPS_TO_RAS

REPO = Path(__file__).resolve().parents[2]
PHANTOM = REPO / "Resources" / "SampleData" / "SAFNetSpinePhantom.nii.gz"


def _centre_ras(labels, label_id) -> str:
    voxels = np.argwhere(np.asarray(labels.array) == label_id).mean(axis=0)
    lps = labels.origin + labels.direction @ (labels.spacing * voxels)
    r, a, s = LPS_TO_RAS @ lps
    return f"{r:.2f},{a:.2f},{s:.2f}"


@pytest.mark.slow
def test_the_phantom_says_how_far_its_names_go_and_a_hint_overrides_the_count(tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["segment", str(PHANTOM), "-o", str(out), "--device", "cpu", "--progress", "none"]) == 0
    printed = capsys.readouterr()
    summary = json.loads((out / "SAFNetSpinePhantom_seg.json").read_text())
    naming = summary["naming"]
    # (The sample phantom of issue 23 has a network T10+T9 piece with no disc seen: not confident today.)
    assert naming["status"] in ("confident", "uncertain") and summary["level_hint"] is None
    assert naming["counted_from"] == {"sacrum": "counted from S1", "none": "no anchor"}[naming["anchor"]]
    assert f"level names: {naming['status']} (anchor: {naming['anchor']}; {naming['counted_from']})" in printed.out
    assert ("warning" in printed.err) == (naming["status"] != "confident")
    floor = 0.9 if naming["status"] == "confident" else 0.0
    assert all(floor <= s["name_confidence"] <= 1.0 for s in summary["structures"])
    labels = read_volume(out / "SAFNetSpinePhantom_seg.nii.gz", is_label=True)
    # The user says the body the count called L3 is L2: every body and disc moves one name down the table.
    l3 = structure_by_name("L3").label_id
    hinted = tmp_path / "hinted"
    assert main(["segment", str(PHANTOM), "-o", str(hinted), "--device", "cpu", "--progress", "none",
                 "--level-hint", f"L2={_centre_ras(labels, l3)}"]) == 0
    # The hint wins, but it pushes the top levels beyond T9: the result says so instead of claiming confidence.
    printed = capsys.readouterr()
    assert "level names: uncertain (anchor: hint; counted from your L2)" in printed.out
    assert "fall above T9" in printed.out
    assert "warning" in printed.err
    renamed = read_volume(hinted / "SAFNetSpinePhantom_seg.nii.gz", is_label=True)
    before, after = np.asarray(labels.array), np.asarray(renamed.array)
    # Every structure the count named (and that has a name one vertebra up) carries that name now.
    checked = 0
    for label_id in (int(i) for i in np.unique(before) if i):
        moved = neighbour(label_id, 2)
        inside = after[before == label_id]
        if moved and inside.size >= 50:
            assert np.mean(inside == moved) > 0.95, (STRUCTURES[label_id].short_name, STRUCTURES[moved].short_name)
            checked += 1
    assert checked >= 6
    assert json.loads((hinted / "SAFNetSpinePhantom_seg.json").read_text())["naming"]["anchor"] == "hint"


def test_hint_errors_are_one_line(tmp_path, capsys):
    for hint, inputs in (("L3=1,2", [PHANTOM]), ("L3=0,0,0", [PHANTOM, PHANTOM])):
        code = main(["segment", *map(str, inputs), "-o", str(tmp_path), "--device", "cpu", "--progress", "none",
                     "--level-hint", hint])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error:") and "\n" not in err and "--level-hint" in err


def test_every_structure_of_the_summary_has_a_name_confidence(tmp_path, capsys):
    from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
    from SAFNetSpineLib.io import write_volume
    from SAFNetSpineLib.weights import default_weights_dir

    image, _ = make_phantom(3, PhantomOptions(slices=(12, 14)))
    source = write_volume(image, tmp_path / "p.nii.gz")
    assert main(["segment", str(source), "-o", str(tmp_path), "--weights", str(default_weights_dir()),
                 "--cleanup", "none", "--device", "cpu", "--progress", "none"]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "p_seg.json").read_text())
    assert summary["naming"]["status"] in ("confident", "uncertain", "out_of_range")
    assert summary["naming"]["anchor"] in ("sacrum", "hint", "none")
    assert {s["name"] for s in summary["structures"]} <= {s.short_name for s in STRUCTURES}
    assert all(0.0 <= s["name_confidence"] <= 1.0 for s in summary["structures"])
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == (summary["naming"]["status"] != "confident")


def test_a_noise_volume_gets_no_level_names_in_the_summary_and_the_overlay(tmp_path, capsys):
    from SAFNetSpineLib.io import write_volume
    from SAFNetSpineLib.volume import Volume

    noise = np.random.default_rng(22).normal(300.0, 120.0, (18, 256, 256)).astype(np.float32)
    source = write_volume(Volume(noise, spacing=np.array([4.0, 1.2, 1.2])), tmp_path / "noise.nii.gz")
    assert main(["segment", str(source), "-o", str(tmp_path / "out"), "--device", "cpu", "--progress", "none",
                 "--overlay"]) == 0
    printed = capsys.readouterr()
    summary = json.loads((tmp_path / "out" / "noise_seg.json").read_text())
    assert summary["naming"]["status"] == "out_of_range" and summary["naming"]["counted_from"] == "no anchor"
    assert summary["structures"] == [] and "no level names (out of range)" in printed.err
    assert (tmp_path / "out" / "noise_overlay.png").stat().st_size > 0
