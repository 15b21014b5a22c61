"""The ``segment`` command, in-process and as a child process, including every bad input."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
from SAFNetSpineLib.io import read_seg_nrrd, read_volume, write_volume

REPO = Path(__file__).resolve().parents[2]
SMALL_PHANTOM = PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5))


@pytest.fixture
def phantom_file(tmp_path):
    image, _ = make_phantom(5, SMALL_PHANTOM)
    return write_volume(image, tmp_path / "case 01.nii.gz")


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_cli(*args):
    """Run ``python -m SAFNetSpineLib`` as a child process, as the Slicer module does."""
    return subprocess.run([sys.executable, "-m", "SAFNetSpineLib", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def test_segment_in_process_writes_all_outputs(tmp_path, phantom_file, tiny_weights, capsys):
    before = _sha(phantom_file)
    out = tmp_path / "out"
    code = main(["segment", str(phantom_file), "-o", str(out), "--weights", str(tiny_weights),
                 "--format", "both", "--overlay", "--device", "cpu", "--progress", "none"])
    assert code == 0
    assert _sha(phantom_file) == before, "the input must never be modified"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["case 01.seg.nrrd", "case 01_overlay.png", "case 01_seg.json", "case 01_seg.nii.gz"]
    image = read_volume(phantom_file)
    labels = read_volume(out / "case 01_seg.nii.gz", is_label=True)
    assert labels.same_grid(image, atol=1e-5)
    seg = read_seg_nrrd(out / "case 01.seg.nrrd")
    assert seg.same_grid(image, atol=1e-4)
    np.testing.assert_array_equal(seg.array, labels.array)
    summary = json.loads((out / "case 01_seg.json").read_text())
    assert summary["model_version"] == "tiny" and summary["device"] == "cpu"
    assert summary["turns"] is False  # off unless asked for
    found = {s["name"]: s["volume_ml"] for s in summary["structures"]}
    present = set(np.unique(labels.array)) - {0}
    assert len(found) == len(present)
    assert summary["input_geometry"]["shape"] == list(image.shape)
    assert {"read", "network", "restore", "write"} <= set(summary["timings_s"])
    assert (out / "case 01_overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "level" in capsys.readouterr().out


def test_turns_on_is_recorded_and_a_bad_value_refused(tmp_path, phantom_file, tiny_weights, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(phantom_file), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu",
                 "--progress", "none", "--turns", "on"])
    assert code == 0
    assert json.loads((out / "case 01_seg.json").read_text())["turns"] is True
    with pytest.raises(SystemExit):
        main(["segment", str(phantom_file), "-o", str(out), "--weights", str(tiny_weights), "--turns", "yes"])
    assert "--turns" in capsys.readouterr().err


def test_progress_json_lines_as_a_child_process(tmp_path, phantom_file, tiny_weights):
    result = run_cli("segment", phantom_file, "-o", tmp_path / "out", "--weights", tiny_weights,
                     "--progress", "json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) >= 5
    assert all({"stage", "fraction", "message"} <= set(r) for r in records)
    fractions = [r["fraction"] for r in records]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert records[-1]["stage"] == "done"
    assert (tmp_path / "out" / "case 01_seg.nii.gz").is_file()


def _write_image(path, array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing((tuple(spacing) + (1.0,))[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def _bad_inputs(tmp):
    corrupt = tmp / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + os.urandom(300))
    noise = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    nan = noise.copy()
    nan[2, 3, 4] = np.nan
    return {
        "missing": (tmp / "absent.nii.gz", "not found"),
        "corrupt": (corrupt, ""),
        "2d": (_write_image(tmp / "flat.nii.gz", noise[0]), "2D"),
        "4d": (_write_image(tmp / "series.nii.gz", np.stack([noise, noise])), "4D"),
        "nonfinite": (_write_image(tmp / "nan.mha", nan), "finite"),  # NIfTI I/O turns NaN into 0
        "constant": (_write_image(tmp / "constant.nii.gz", np.full((8, 16, 16), 7, np.int16)), "constant"),
        "absurd": (_write_image(tmp / "huge.nii.gz", np.zeros((2, 2, 5000), np.uint8) + np.arange(5000, dtype=np.uint8)),
                   "more than"),
    }


@pytest.mark.parametrize("case", ["missing", "corrupt", "2d", "4d", "nonfinite", "constant", "absurd"])
def test_bad_input_gives_one_line_naming_the_file(tmp_path, tiny_weights, case, capsys):
    path, words = _bad_inputs(tmp_path)[case]
    code = main(["segment", str(path), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights),
                 "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and path.name in err[0]
    assert words.lower() in err[0].lower()
    assert not list((tmp_path / "out").glob("*_seg.*")) if (tmp_path / "out").exists() else True


def test_bad_input_as_a_child_process_has_no_traceback(tmp_path, tiny_weights):
    corrupt = tmp_path / "broken.nrrd"
    corrupt.write_text("NRRD0004\nthis is not a header\n")
    result = run_cli("segment", corrupt, "-o", tmp_path / "out", "--weights", tiny_weights)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "broken.nrrd" in result.stderr.strip().splitlines()[-1]


def test_tampered_weights_and_unwritable_output(tmp_path, phantom_file, tiny_weights, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # The output folder is checked before any model is loaded: a bad --weights is not reached.
    code = main(["segment", str(phantom_file), "-o", str(blocker / "out"), "--weights", str(tmp_path / "nope")])
    assert code == 2 and "out" in capsys.readouterr().err
    data = bytearray((tiny_weights / "model.safetensors").read_bytes())
    data[-1] ^= 0x55
    (tiny_weights / "model.safetensors").write_bytes(bytes(data))
    code = main(["segment", str(phantom_file), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights)])
    err = capsys.readouterr().err
    assert code == 2 and "model.safetensors" in err and "checksum" in err


def test_a_field_of_view_unlike_the_training_scans_is_recorded_and_warned(tmp_path, phantom_file, tiny_weights,
                                                                          capsys):
    """The weights' training range against the scan's field of view: in NAME_seg.json, and one warning line."""
    manifest_path = tiny_weights / "model.json"
    summaries = {}
    for trained, fit in (([100.0, 150.0], "off"), ([250.0, 400.0], "on"), (None, "on"), ([600.0, 900.0], "on"),
                         ([600.0, 900.0], "off"), ([100.0, 150.0], "on")):
        manifest = json.loads(manifest_path.read_text())
        manifest["trained_fov_mm"] = trained
        manifest_path.write_text(json.dumps(manifest))
        out = tmp_path / f"out{len(summaries)}"
        assert main(["segment", str(phantom_file), "-o", str(out), "--weights", str(tiny_weights),
                     "--device", "cpu", "--progress", "none", "--fit-fov", fit]) == 0
        summaries[f"{trained} {fit}"] = (json.loads((out / "case 01_seg.json").read_text())["field_of_view"],
                                         capsys.readouterr().err)
    summaries = {key.removesuffix(" on"): value for key, value in summaries.items()}
    far, err = summaries["[100.0, 150.0] off"]
    assert far["trained_mm"] == [100.0, 150.0] and far["in_plane_mm"][0] > 1.4 * 150
    assert far["warning"] and f"warning: case 01.nii.gz: {far['warning']}" in err
    near, err = summaries["[250.0, 400.0]"]
    assert near["warning"] is None and near["in_plane_mm"] == far["in_plane_mm"] and "field of view" not in err
    unknown, _ = summaries["None"]
    assert unknown["trained_mm"] is None and unknown["warning"] is None
    # Under 0.75 x the smallest trained field: widened to it (a note, no warning), or with --fit-fov off warned.
    widened, err = summaries["[600.0, 900.0]"]
    assert widened["widened_to_mm"] == 600.0 and widened["warning"] is None
    assert "note: case 01.nii.gz:" in err and "widened to 600 mm" in err and "field of view" not in err.split("note")[0]
    kept, err = summaries["[600.0, 900.0] off"]
    assert kept["widened_to_mm"] is None and f"warning: case 01.nii.gz: {kept['warning']}" in err and "note" not in err
    assert far["widened_to_mm"] is None and near["widened_to_mm"] is None
    # At least 1.4 x the largest: segmented in a window of the largest (a note, no warning), or whole and warned.
    windowed, err = summaries["[100.0, 150.0]"]
    assert windowed["window_mm"] == pytest.approx([150.0, 150.0], abs=1.5) and windowed["warning"] is None and far["window_mm"] is None
    assert "note: case 01.nii.gz:" in err and "mm window holding the sacrum" in err
