"""relabel: names by counting on an existing label map; the grid and the structures stay exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from spine_maps import DIRECTIONS, FULL, centre_ras, hint_text, names_of, spine

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming import parse_level_hint
from SAFNetSpineLib.inference.relabel import relabel_file, relabel_stem, relabel_volume
from SAFNetSpineLib.io import read_volume, write_volume

ONE_TOO_LOW = ["S", "L5/S", "S", "L5/S", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1"]
NO_SACRUM = FULL[1:]


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_relabel_round_trips_the_geometry_and_the_structures(tmp_path, direction):
    labels = spine(NO_SACRUM, direction, names=ONE_TOO_LOW[1:])
    source = write_volume(labels, tmp_path / "case_seg.nii.gz")
    hint = parse_level_hint(hint_text("L4", centre_ras(NO_SACRUM, 3)))
    out = tmp_path / "out"
    out.mkdir()
    run = relabel_file(source, out, hint, "both")
    assert [p.name for p in run.written] == ["case_seg.nii.gz", "case.seg.nrrd"]
    original = read_volume(source, is_label=True)
    # in memory the grid is the very same; on disk within what NIfTI's float32 header holds
    renamed = relabel_volume(original, hint).labels
    for field in ("spacing", "origin", "direction"):
        np.testing.assert_array_equal(getattr(renamed, field), getattr(original, field))
    for path, tolerance in zip(run.written, (1e-6, 1e-6), strict=True):
        written = read_volume(path, is_label=True)
        assert written.shape == labels.shape
        np.testing.assert_allclose(written.spacing, original.spacing, rtol=0, atol=tolerance)
        np.testing.assert_allclose(written.origin, original.origin, rtol=0, atol=tolerance)
        np.testing.assert_allclose(written.direction, original.direction, rtol=0, atol=tolerance)
        np.testing.assert_array_equal(written.array > 0, labels.array > 0)  # same voxels, other names
        assert names_of(written, NO_SACRUM) == NO_SACRUM
    summary = json.loads(run.summary.read_text())
    assert run.summary.name == "case_seg.json"
    assert summary["naming"]["anchor"] == "hint" and summary["naming"]["status"] == "confident"
    assert summary["level_hint"].startswith("L4=")
    assert {s["name"] for s in summary["structures"]} == set(NO_SACRUM)
    assert all(0.0 <= s["name_confidence"] <= 1.0 for s in summary["structures"])
    assert summary["input_geometry"]["shape"] == list(labels.shape)


def test_relabel_without_a_hint_counts_from_the_sacrum():
    result = relabel_volume(spine(FULL, "flipped_oblique", names=ONE_TOO_LOW))
    assert names_of(result.labels, FULL) == FULL
    assert result.naming["anchor"] == "sacrum" and result.naming["status"] == "uncertain"
    assert "input labels and the count disagree" in result.naming["reason"]


def test_relabel_refuses_values_outside_the_table_and_points_outside_the_image():
    labels = spine(FULL, "oblique")
    bad = labels.array.copy()
    bad[0, 0, 0] = 42
    with pytest.raises(SpineInputError, match=r"case.nii.gz: label values \[42\]"):
        relabel_volume(labels.with_array(bad), subject="case.nii.gz")
    r, a, s = centre_ras(FULL, 4)
    beside = relabel_volume(labels, parse_level_hint(f"L4={r},{a - 35},{s}"))  # behind L4, off the segmentation
    assert names_of(beside.labels, FULL) == FULL and beside.naming["anchor"] == "hint"
    with pytest.raises(SpineInputError, match="outside the image"):
        relabel_volume(labels, parse_level_hint(f"L4={r},{a},{s + 900}"))


def test_output_stems():
    from pathlib import Path

    assert relabel_stem(Path("a/scan_seg.nii.gz")) == "scan"
    assert relabel_stem(Path("scan.seg.nrrd")) == "scan"
    assert relabel_stem(Path("scan.nrrd")) == "scan"
