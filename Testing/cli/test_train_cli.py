"""`train` and `cv` subcommands, run in-process: flags reach the config, runs resume, bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from SAFNetSpineLib.cli import build_parser, main
from SAFNetSpineLib.cli.train import config_from_args
from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.checkpoint import read_checkpoint

TINY = ["--width", "8", "--batch-size", "2", "--target-shape", "8", "64", "32", "--no-augment"]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from SAFNetSpineLib.data.phantom import PhantomOptions, write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("ph"), 4, 30,
                                 PhantomOptions(fov_mm=(220.0, 160.0), inplane_spacing_mm=(2.0, 2.4), slices=(8, 9)))



def test_every_recipe_flag_reaches_the_config():
    args = build_parser().parse_args([
        "train", "--data", "d", "--out", "o", "--model", "unet3d", "--width", "16", "--epochs", "7",
        "--batch-size", "3", "--lr", "0.005", "--weight-decay", "0", "--plateau-patience", "3",
        "--plateau-factor", "0.25", "--min-lr", "1e-5", "--dice-loss-weight", "0.5", "--no-augment",
        "--rotate-degrees", "5", "--rotate-prob", "0.2", "--gamma-range", "0.8", "1.2", "--gamma-prob", "0.1",
        "--elastic-prob", "0", "--elastic-spacing", "16", "20", "--elastic-magnitude", "0.5", "1", "--precision",
        "fp32", "--device", "cpu", "--num-workers", "1", "--val-every", "2", "--seed", "9",
        "--model-option", "use_aspp=false", "--target-shape", "8", "64", "32", "--ap-crop-fraction", "0.6",
        "--repeat", "chu_=4", "--repeat", "ivd_=6",
    ])
    config = config_from_args(args)
    assert config == TrainConfig(
        model="unet3d", width=16, epochs=7, batch_size=3, lr=0.005, weight_decay=0.0, plateau_patience=3,
        plateau_factor=0.25, min_lr=1e-5, dice_loss_weight=0.5, augment=False,
        augmentation=AugmentConfig(rotate_degrees=5.0, rotate_prob=0.2, gamma_range=(0.8, 1.2), gamma_prob=0.1,
                                   elastic_prob=0.0, elastic_spacing=(16.0, 20.0), elastic_magnitude=(0.5, 1.0)),
        precision="fp32", device="cpu", num_workers=1, val_every=2, seed=9,
        model_options={"use_aspp": False}, case_repeats={"chu_": 4, "ivd_": 6},
        preprocess={"target_shape": [8, 64, 32], "ap_crop_fraction": 0.6},
    )
    defaults = config_from_args(build_parser().parse_args(["train", "--data", "d", "--out", "o"]))
    assert defaults == TrainConfig()
    assert (defaults.lr, defaults.weight_decay, defaults.epochs, defaults.batch_size) == (1e-3, 1e-4, 50, 8)


def test_train_resume_and_refusals(phantoms, tmp_path, capsys):
    out = tmp_path / "run"
    val_file = tmp_path / "val.txt"
    val_file.write_text("# held out\nphantom_0033\n")
    assert main(["train", "--data", str(phantoms), "--out", str(out), "--epochs", "1", "--val-cases",
                 str(val_file), "--progress", "json", *TINY]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"preprocess", "train"} <= {line["stage"] for line in lines}
    assert lines[-1]["stage"] == "train" and lines[-1]["fraction"] == 1.0 and lines[-1]["epoch"] == 1
    assert json.loads((out / "split.json").read_text())["val"] == ["phantom_0033"]
    assert (out / "best" / "model.json").is_file()

    assert main(["train", "--data", str(phantoms), "--out", str(out), "--epochs", "1", *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err

    assert main(["train", "--data", str(phantoms), "--out", str(out), "--epochs", "2", "--resume",
                 "--progress", "none", *TINY]) == 0
    assert json.loads((out / "train_result.json").read_text())["epochs_run"] == 2
    assert "best validation Dice" in capsys.readouterr().out

    report = tmp_path / "eval"
    assert main(["evaluate", "--weights", str(out / "best"), "--data", str(phantoms), "--cases",
                 str(out / "split.json"), "--out", str(report), "--progress", "none", "--no-surface"]) == 0
    assert "levels named correctly" in capsys.readouterr().out
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "phantom_0033" in text and "| vertebrae |" in text and "| discs |" in text
    assert len((report / "metrics.csv").read_text().splitlines()) == 1 + 19
    assert main(["evaluate", "--weights", str(out / "best"), "--data", str(phantoms), "--cases", "nobody",
                 "--out", str(report)]) == 2
    assert "unknown case ids ['nobody']" in capsys.readouterr().err


@pytest.mark.parametrize("extra, problem", [
    (["--val-cases", "nobody"], "--val-cases: unknown case ids ['nobody']"),
    (["--lr", "0"], "training config: lr must be > 0"),
    (["--model-option", "nonsense"], "expected KEY=VALUE"),
    (["--repeat", "chu_=0"], "case_repeats must map case-id prefixes to whole numbers >= 1"),
    (["--repeat", "chu_"], "--repeat: expected PREFIX=N"),
])
def test_bad_train_arguments_are_one_line_errors(phantoms, tmp_path, capsys, extra, problem):
    code = main(["train", "--data", str(phantoms), "--out", str(tmp_path / "x"), "--epochs", "1", *TINY, *extra])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1


def test_data_folder_errors_and_duplicate_ids(phantoms, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["train", "--data", str(phantoms), "--data", str(phantoms), "--out", str(tmp_path / "x")]) == 2
    assert "also occurs in" in capsys.readouterr().err


def test_cv_needs_enough_cases(phantoms, tmp_path, capsys):
    assert main(["cv", "--data", str(phantoms), "--out", str(tmp_path / "cv"), "--folds", "5", *TINY]) == 2
    assert "4 cases are fewer than the 5 folds" in capsys.readouterr().err


def test_sigint_stops_between_batches_and_keeps_the_checkpoint(phantoms, tmp_path):
    """A real process, a real signal: exit 130, the last completed epoch's checkpoint intact, resumable."""
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "SAFNetSpineLib", "train", "--data", str(phantoms), "--out", str(out),
               "--epochs", "500", "--progress", "none", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-2000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "continue with --resume" in stdout
    epoch = read_checkpoint(out)[1]["state"]["epoch"]
    assert 1 <= epoch < 500
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert main(["train", "--data", str(phantoms), "--out", str(out), "--epochs", str(epoch + 1), "--resume",
                 "--progress", "none", *TINY]) == 0
    assert read_checkpoint(out)[1]["state"]["epoch"] == epoch + 1
