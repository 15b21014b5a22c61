"""``segment`` never overwrites an input, reports every failure in one line, and stops cleanly on SIGTERM."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.io import write_seg_nrrd, write_volume

REPO = Path(__file__).resolve().parents[2]
SMALL_PHANTOM = PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5))


@pytest.fixture
def phantom(tmp_path):
    image, labels = make_phantom(5, SMALL_PHANTOM)
    return image, labels


def segment(*args) -> int:
    return main(["segment", *map(str, args), "--device", "cpu", "--progress", "none"])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_output_equal_to_an_input_is_refused_before_compute(tmp_path, phantom, tiny_weights, capsys):
    image, labels = phantom
    x = write_volume(image, tmp_path / "X.nii.gz")
    x_seg = write_volume(image, tmp_path / "X_seg.nii.gz")  # an image that happens to carry this name
    before = x_seg.read_bytes()
    started = time.perf_counter()
    assert segment(x, x_seg, "-o", tmp_path, "--weights", tiny_weights) == 2
    line = one_error_line(capsys)
    assert f"{x_seg}: would overwrite the input {x_seg}" in line
    assert time.perf_counter() - started < 5  # no model was loaded, nothing segmented
    assert x_seg.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["X.nii.gz", "X_seg.nii.gz"]


def test_seg_nrrd_input_with_seg_nrrd_output_in_its_folder_is_refused(tmp_path, phantom, tiny_weights, capsys):
    _, labels = phantom
    case = write_seg_nrrd(labels, tmp_path / "case.seg.nrrd")
    before = case.read_bytes()
    assert segment(case, "--format", "seg.nrrd", "-o", tmp_path, "--weights", tiny_weights) == 2
    # A segmentation is never an image to segment (issue 25), so it is refused before its output is planned.
    assert "case.seg.nrrd: is a Slicer segmentation (.seg.nrrd), not an MR image" in one_error_line(capsys)
    assert case.read_bytes() == before


def test_an_input_reached_through_a_link_is_refused_too(tmp_path, phantom, tiny_weights, capsys):
    image, _ = phantom
    real = tmp_path / "data"
    real.mkdir()
    write_volume(image, real / "scan.nii.gz")
    target = write_volume(image, real / "scan_seg.nii.gz")
    (tmp_path / "view").symlink_to(real)
    assert segment(real / "scan.nii.gz", target, "-o", tmp_path / "view", "--weights", tiny_weights) == 2
    assert "would overwrite the input" in one_error_line(capsys)


def test_same_name_inputs_are_refused_and_help_says_so(tmp_path, phantom, tiny_weights, capsys):
    image, _ = phantom
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_volume(image, tmp_path / folder / "scan.nii.gz")
    out = tmp_path / "out"
    assert segment(tmp_path / "a" / "scan.nii.gz", tmp_path / "b" / "scan.nii.gz", "-o", out,
                   "--weights", tiny_weights) == 2
    line = one_error_line(capsys)
    assert "scan_seg.nii.gz: both" in line and "a/scan.nii.gz and" in line and "b/scan.nii.gz would" in line
    assert not out.exists() or not list(out.iterdir())
    assert segment(tmp_path / "a" / "scan.nii.gz", tmp_path / "a" / "scan.nii.gz", "-o", out,
                   "--weights", tiny_weights) == 2
    assert "is given twice" in one_error_line(capsys)
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert "same NAME" in " ".join(capsys.readouterr().out.split())


def test_summary_that_cannot_be_written_is_one_line(tmp_path, phantom, tiny_weights, capsys):
    image, _ = phantom
    scan = write_volume(image, tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    (out / "scan_seg.json").mkdir(parents=True)  # something in the way that a rename cannot replace
    assert segment(scan, "-o", out, "--weights", tiny_weights) == 2
    line = one_error_line(capsys)
    assert "scan_seg.json: could not write the file" in line and "nothing was replaced" in line
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX-only")
def test_fifo_input_is_refused_at_once(tmp_path, tiny_weights, capsys):
    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)
    assert segment(fifo, "-o", tmp_path / "out", "--weights", tiny_weights) == 2
    assert "input is a named pipe (FIFO)" in one_error_line(capsys)


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    with pytest.raises(SpineInputError, match="file not found"):
        main(["segment", str(tmp_path / "absent.nii.gz"), "-o", str(tmp_path), "--debug"])
    with pytest.raises(SpineInputError):
        main(["--debug", "segment", str(tmp_path / "absent.nii.gz"), "-o", str(tmp_path)])
    assert main(["segment", str(tmp_path / "absent.nii.gz"), "-o", str(tmp_path)]) == 2
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "active.json").write_text("[")
    with pytest.raises(SpineInputError, match="active.json"):
        main(["models", "list", "--models", str(tmp_path / "models"), "--debug"])


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "SAFNetSpineLib", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300, **kwargs)


def test_error_line_starts_on_its_own_line_after_a_progress_bar(tmp_path, phantom, tiny_weights):
    image, _ = phantom
    good = write_volume(image, tmp_path / "good.nii.gz")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(good.read_bytes()[:200])  # passes the early checks, fails when read
    result = run_cli("segment", good, broken, "-o", tmp_path / "out", "--weights", tiny_weights,
                     "--device", "cpu", "--progress", "bar")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.split("\n") if "error:" in line]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: "), repr(result.stderr[-400:])
    assert "broken.nii.gz" in error_lines[0]


def test_help_and_argument_errors_import_no_torch_nor_itk():
    code = ("import sys\nfrom SAFNetSpineLib.cli import main\ntry:\n    main(['segment'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('torch', 'monai', 'SimpleITK', 'scipy', 'matplotlib') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    assert "required" in result.stderr  # the argument error itself


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM semantics are POSIX")
def test_sigterm_during_segment_is_one_line_and_exit_143(tmp_path, phantom, tiny_weights):
    image, _ = phantom
    inputs = [write_volume(image, tmp_path / f"case{i:02d}.nii.gz") for i in range(40)]
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "SAFNetSpineLib", "segment", *map(str, inputs), "-o", str(out),
                              "--weights", str(tiny_weights), "--device", "cpu", "--progress", "json"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in child.stdout:
        if json.loads(line)["stage"] == "done":
            child.send_signal(signal.SIGTERM)  # after the first case, while the next is running
            break
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)")
    assert "Traceback" not in err
    names = {p.name for p in out.iterdir()}
    assert "case00_seg.nii.gz" in names and "case00_seg.json" in names
    assert not [n for n in names if n.startswith(".tmp-")]
    assert len([n for n in names if n.endswith("_seg.json")]) < len(inputs)


# --- issue 25: inputs and options that were taken silently, or ended in a traceback -----------------

def test_a_segmentation_given_as_the_image_is_refused_before_compute(tmp_path, phantom, tiny_weights, capsys):
    _, labels = phantom
    case = write_seg_nrrd(labels, tmp_path / "case.seg.nrrd")
    out = tmp_path / "out"
    assert segment(case, "-o", out, "--weights", tiny_weights) == 2
    assert f"{case}: is a Slicer segmentation (.seg.nrrd), not an MR image" in one_error_line(capsys)
    assert not out.exists()  # refused before the output folder (and the model) were touched


def test_a_models_folder_that_does_not_exist_is_refused(tmp_path, phantom, capsys):
    image, _ = phantom
    scan = write_volume(image, tmp_path / "scan.nii.gz")
    typo = tmp_path / "modles"
    assert segment(scan, "-o", tmp_path / "out", "--models", typo) == 2  # was: the bundled weights, silently
    assert f"{typo}: models folder not found" in one_error_line(capsys)
    assert not (tmp_path / "out" / "scan_seg.nii.gz").exists()


@pytest.mark.parametrize("command", ["segment", "relabel"])
def test_an_empty_level_hint_is_refused_not_ignored(tmp_path, phantom, tiny_weights, capsys, command):
    image, labels = phantom
    source = write_volume(image if command == "segment" else labels, tmp_path / "scan.nii.gz")
    extra = ["--weights", str(tiny_weights), "--device", "cpu", "--progress", "none"] if command == "segment" else []
    assert main([command, str(source), "-o", str(tmp_path / "out"), "--level-hint", "", *extra]) == 2
    assert "--level-hint is empty" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def weights_asking_for(make_tiny_weights, folder: Path, target_shape: list) -> Path:
    weights = make_tiny_weights(folder)
    manifest = json.loads((weights / "model.json").read_text())
    manifest["preprocess"]["target_shape"] = target_shape
    (weights / "model.json").write_text(json.dumps(manifest))  # the checksum covers the tensors only
    return weights


@pytest.mark.parametrize("target_shape, problem", [
    ([1, 1, 1], "H and W must be multiples of 16"),  # was: "image is constant inside the network field of view"
    ([8, 72, 32], "H and W must be multiples of 16"),  # was: a ValueError traceback from the network
    ([64, 4096, 4096], "is more than 8,388,608 voxels"),  # was: gigabytes allocated, then a traceback
])
def test_weights_asking_for_an_absurd_network_grid_are_one_line(tmp_path, phantom, make_tiny_weights, capsys,
                                                               target_shape, problem):
    image, _ = phantom
    scan = write_volume(image, tmp_path / "scan.nii.gz")
    weights = weights_asking_for(make_tiny_weights, tmp_path / "odd", target_shape)
    assert segment(scan, "-o", tmp_path / "out", "--weights", weights) == 2
    line = one_error_line(capsys)
    assert f"{weights / 'model.json'}: bad 'preprocess' entry (target_shape" in line and problem in line


def test_an_image_constant_inside_the_field_of_view_names_its_file(tmp_path, tiny_weights, capsys):
    from SAFNetSpineLib.volume import Volume

    array = np.full((10, 40, 30), 100.0, dtype=np.float32)
    array[:, :2, :] += np.random.default_rng(0).normal(0, 20, (10, 2, 30)).astype(np.float32)  # anterior edge only
    scan = write_volume(Volume(array, (3.0, 1.0, 1.0)), tmp_path / "flat.nii.gz")  # j runs posterior: cropped away
    assert segment(scan, "-o", tmp_path / "out", "--weights", tiny_weights) == 2
    assert f"{scan}: image is constant inside the network field of view" in one_error_line(capsys)


def test_an_input_warning_is_one_line_and_the_image_is_still_segmented(tmp_path, phantom, tiny_weights):
    image, _ = phantom
    scan = write_volume(image, tmp_path / "noforms.nii.gz")
    raw = bytearray(gzip.decompress(scan.read_bytes()))
    raw[252:256] = struct.pack("<2h", 0, 0)  # qform_code, sform_code: no orientation in the header
    scan.write_bytes(gzip.compress(bytes(raw)))
    result = run_cli("segment", scan, "-o", tmp_path / "out", "--weights", tiny_weights, "--device", "cpu",
                     "--progress", "none")
    assert result.returncode == 0, result.stderr[-600:]
    warning_lines = [line for line in result.stderr.splitlines() if "no orientation" in line]
    assert warning_lines == [f"warning: {scan}: no orientation in the NIfTI header (qform and sform codes are 0): "
                             "read with identity direction and origin 0"], result.stderr
    assert (tmp_path / "out" / "noforms_seg.nii.gz").is_file()
