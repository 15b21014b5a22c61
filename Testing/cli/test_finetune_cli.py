"""`finetune` and `models` subcommands, run in-process (and once as a child process for signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore, ModelStore
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import ModelManifest, save_weights

TINY = {"width": 8, "in_channels": 1, "num_classes": 20}



def write_tiny_weights(folder: Path, version: str = "tiny", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    manifest = ModelManifest(
        "safnet", TINY, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(), version=version
    )
    return save_weights(build_model("safnet", **TINY), folder, manifest)


def block_case(seed: int) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 15.0, size=(12, 48, 80)).astype(np.float32)
    label = np.zeros(image.shape, np.uint8)
    k0 = int(rng.integers(6, 20))
    label[2:10, 16:30, k0 : k0 + 22] = 3
    image[label == 3] += 300
    spacing, origin = (3.0, 1.1, 1.0), (0.0, 0.0, 0.0)
    return Volume(image, spacing, origin, np.eye(3)), Volume(label, spacing, origin, np.eye(3), is_label=True)


@pytest.fixture()
def setup(tmp_path):
    store = CaseStore(tmp_path / "store")
    for seed in range(3):
        store.add(*block_case(seed), [3], "tiny", case_id=f"case-{seed}", patient_id=f"p{seed}")
    weights = write_tiny_weights(tmp_path / "tiny")
    return store.folder, weights, tmp_path / "models"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_finetune_then_list_activate_rollback(setup, capsys):
    store, weights, models = setup
    code = main(
        [
            "finetune",
            "--store",
            str(store),
            "--from",
            str(weights),
            "--models",
            str(models),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--lr",
            "1e-3",
            "--no-augment",
            "--progress",
            "json",
            "--summary",
            str(models.parent / "summary.json"),
        ]
    )
    assert code == 0
    records = json_lines(capsys.readouterr().out)
    assert all({"stage", "fraction", "message"} <= set(r) for r in records)
    assert {"evaluate", "train"} <= {r["stage"] for r in records}
    final = records[-1]
    assert final["stage"] == "summary" and final["fraction"] == 1.0
    summary = final["summary"]
    assert summary["version"] == "safnet-v1" and summary["parent"] == "tiny"
    evidence = summary["evidence"]  # the promotion rule (SAFNetSpineLib/finetune/promotion.py)
    assert summary["promoted"] == (evidence["improvement"] >= summary["config"]["min_gain"]
                                   and summary["confidence"] >= summary["config"]["min_confidence"])
    assert summary["promotion"] == "cross-validation" and len(summary["per_case"]) == 3
    assert summary["status"] in ("promoted", "candidate")
    assert json.loads((models.parent / "summary.json").read_text()) == summary
    assert json.loads((models / "safnet-v1" / "finetune.json").read_text())["version"] == "safnet-v1"

    # A second version, then activate it and roll back through the CLI.
    with ModelStore(models).publishing("safnet") as version:
        write_tiny_weights(version.folder, version.name, seed=1)
    assert version.name == "safnet-v2"
    assert main(["models", "activate", "safnet-v1", "--models", str(models)]) == 0
    assert main(["models", "activate", "safnet-v2", "--models", str(models)]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--models", str(models), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["active"] == "safnet-v2"
    by_name = {v["name"]: v for v in listing["versions"]}
    assert by_name["safnet-v2"]["active"] and not by_name["safnet-v1"]["active"]
    assert (
        by_name["safnet-v1"]["status"] == summary["status"] and by_name["safnet-v2"]["status"] == "imported"
    )
    assert by_name["safnet-v1"]["dice_after"] == pytest.approx(summary["dice_after"])
    assert Path(by_name["safnet-v2"]["path"]) == models / "safnet-v2"
    assert main(["models", "rollback", "--models", str(models)]) == 0
    assert "active: safnet-v1" in capsys.readouterr().out
    assert main(["models", "list", "--models", str(models)]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith("* safnet-v1") for line in table.splitlines())


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["finetune", "--store", "{tmp}/empty", "--from", "{weights}", "--models", "{models}"],
            "empty: fine-tuning needs at least 2 corrected cases",
        ),
        (
            ["finetune", "--store", "{store}", "--from", "{tmp}/nowhere", "--models", "{models}"],
            "nowhere: weights folder not found",
        ),
        (
            [
                "finetune",
                "--store",
                "{store}",
                "--from",
                "{weights}",
                "--models",
                "{models}",
                "--epochs",
                "-1",
            ],
            "epochs must be >= 1",
        ),
        (
            [
                "finetune",
                "--store",
                "{store}",
                "--from",
                "{weights}",
                "--models",
                "{models}",
                "--val-fraction",
                "0",
            ],
            "validation fraction",
        ),
        (["models", "activate", "safnet-v7", "--models", "{models}"], "no such version"),
        (["models", "rollback", "--models", "{models}"], "no earlier active model"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(setup, capsys, args, message):
    store, weights, models = setup
    filled = [a.format(tmp=store.parent, store=store, weights=weights, models=models) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not models.exists() or not [p for p in models.iterdir() if not p.name.startswith(".")]


def test_weights_for_another_label_table_are_refused(setup, capsys):
    store, weights, models = setup
    manifest = json.loads((weights / "model.json").read_text())
    manifest["label_table"] = [[i, f"X{i}"] for i in range(20)]
    (weights / "model.json").write_text(json.dumps(manifest))
    assert main(["finetune", "--store", str(store), "--from", str(weights), "--models", str(models)]) == 2
    assert "different label table" in capsys.readouterr().err


def test_sigint_in_a_child_process_exits_130_and_changes_nothing(setup):
    store, weights, models = setup
    command = [
        sys.executable,
        "-m",
        "SAFNetSpineLib",
        "finetune",
        "--store",
        str(store),
        "--from",
        str(weights),
        "--models",
        str(models),
        "--epochs",
        "50",
        "--device",
        "cpu",
        "--progress",
        "json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in child.stdout:
            if json.loads(line)["stage"] == "train":
                child.send_signal(signal.SIGINT)
                break
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "cancelled" in err and "unchanged" in err
    assert json_lines(out)[-1]["stage"] == "cancelled"
    assert list(models.iterdir()) == []
