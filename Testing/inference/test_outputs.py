"""The segment output contract: file names, the summary and its extension points."""

import json
from pathlib import Path

import numpy as np

from SAFNetSpineLib.inference.outputs import (
    OutputPaths,
    SegmentOutputs,
    level_table,
    output_stem,
    write_label_outputs,
)
from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.volume import Volume


def test_output_stem_strips_known_suffixes_only():
    assert output_stem(Path("/a/scan.nii.gz")) == "scan"
    assert output_stem(Path("case 01.NRRD")) == "case 01"
    assert output_stem(Path("prior.seg.nrrd")) == "prior"
    assert output_stem(Path("dicom_folder")) == "dicom_folder"
    assert output_stem(Path("x.tar.gz")) == "x.tar.gz"


def test_output_paths_for_input():
    paths = OutputPaths.for_input(Path("/out"), Path("/in/case 01.nii.gz"))
    assert paths.nifti == Path("/out/case 01_seg.nii.gz")
    assert paths.seg_nrrd == Path("/out/case 01.seg.nrrd")
    assert paths.summary == Path("/out/case 01_seg.json")
    assert paths.overlay == Path("/out/case 01_overlay.png")


def _outputs(tmp_path):
    image = Volume(np.zeros((4, 5, 6), np.float32), spacing=(1.0, 2.0, 3.0))
    labels = Volume(np.zeros((4, 5, 6), np.uint8), spacing=(1.0, 2.0, 3.0))
    labels.array[1:3, 1:3, 1:3] = STRUCTURES[1].label_id
    paths = OutputPaths.for_input(tmp_path, Path("scan.nii.gz"))
    written = write_label_outputs(labels, image, paths, "both")
    volumes = {STRUCTURES[1].short_name: 0.048}
    return SegmentOutputs(input=Path("scan.nii.gz"), outputs=written, model_version="v", weights=[Path("w")],
                          device="cpu", precision="fp32", tta=False, turns=True, volumes_ml=volumes, image=image,
                          timings_s={"read": 0.1}), paths, labels


def test_summary_fields_and_written_files(tmp_path):
    outputs, paths, labels = _outputs(tmp_path)
    summary = outputs.summary()
    assert list(summary) == ["input", "outputs", "model_version", "weights", "device", "precision", "tta",
                             "turns", "structures", "input_geometry", "timings_s"]
    assert summary["outputs"] == ["scan_seg.nii.gz", "scan.seg.nrrd"]
    assert summary["structures"] == [{"id": STRUCTURES[1].label_id, "name": STRUCTURES[1].short_name,
                                      "full_name": STRUCTURES[1].full_name, "volume_ml": 0.048}]
    assert summary["input_geometry"]["shape"] == [4, 5, 6]
    assert summary["input_geometry"]["spacing_mm"] == [1.0, 2.0, 3.0]
    assert len(summary["input_geometry"]["direction_lps"]) == 9
    np.testing.assert_array_equal(read_volume(paths.nifti, is_label=True).array, labels.array)
    outputs.write_summary(paths.summary)
    assert json.loads(paths.summary.read_text()) == summary


def test_extra_and_per_structure_fields_are_added(tmp_path):
    outputs, _, _ = _outputs(tmp_path)
    name = STRUCTURES[1].short_name
    outputs.extra["naming"] = {"method": "test"}
    outputs.structure_fields[name] = {"name_confidence": 0.5}
    summary = outputs.summary()
    assert list(summary)[-1] == "naming" and summary["naming"] == {"method": "test"}
    assert summary["structures"][0]["name_confidence"] == 0.5
    assert summary["structures"][0]["volume_ml"] == 0.048


def test_level_table_lists_found_structures():
    assert "(no structure found)" in level_table({})
    table = level_table({STRUCTURES[1].short_name: 1.5})
    assert STRUCTURES[1].full_name in table and "1.50" in table


def test_the_overlay_says_where_the_count_starts(tmp_path):
    from spine_maps import FULL, spine

    from SAFNetSpineLib.inference.outputs import OutputPaths, write_label_outputs
    from SAFNetSpineLib.inference.overlay import naming_caption

    assert naming_caption({"status": "confident", "counted_from": "counted from S1"}) == \
        "level names confident, counted from S1"
    assert naming_caption({"status": "uncertain", "counted_from": "counted from your L3"}).endswith("your L3")
    assert naming_caption({"status": "out_of_range", "counted_from": "no anchor"}).startswith("no level names")
    labels = spine(FULL, "oblique")
    image = labels.with_array(labels.array.astype("float32"), is_label=False)
    paths = OutputPaths.for_input(tmp_path, tmp_path / "case.nii.gz")
    written = write_label_outputs(labels, image, paths, overlay=True,
                                  naming={"status": "confident", "counted_from": "counted from S1"})
    assert paths.overlay in written and paths.overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
