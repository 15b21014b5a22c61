"""Two-process DistributedDataParallel training on CPU (gloo), launched the way users launch it: torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from SAFNetSpineLib.training.checkpoint import read_checkpoint
from SAFNetSpineLib.weights import load_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync_and_write_one_checkpoint(small_phantoms, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "SAFNetSpineLib", "train", "--data", str(small_phantoms), "--out", str(out),
        "--width", "8", "--epochs", "2", "--batch-size", "2", "--target-shape", "8", "64", "32",
        "--val-cases", "phantom_0103", "phantom_0104", "--no-augment", "--progress", "json", "--average-from", "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((out / "train_result.json").read_text())
    assert result["epochs_run"] == 2
    fingerprints = result["rank_parameter_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1] and fingerprints[0] != 0
    # Only rank 0 wrote: one checkpoint, one log line per epoch, one progress stream.
    assert sorted(p.name for p in out.glob("checkpoint*")) == ["checkpoint.json", "checkpoint.safetensors"]
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    epochs_reported = [json.loads(line)["epoch"] for line in done.stdout.splitlines()
                       if line.startswith("{") and '"epoch"' in line]
    assert epochs_reported == [1, 2]
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert read_checkpoint(out)[1]["state"]["epoch"] == 2
    load_model(out / "best")
    assert load_model(out / "averaged")[1].metrics["averaged_epochs"] == 1  # written once, by rank 0
    split = json.loads((out / "split.json").read_text())
    assert split["val"] == ["phantom_0103", "phantom_0104"] and len(split["train"]) == 3
