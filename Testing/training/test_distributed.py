"""Two-process DistributedDataParallel training on CPU (gloo), launched the way users launch it: torchrun."""

from __future__ import annotations

import json
import os
import re
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


_LEFTOVER_PROBE = """
import gc, json, os, sys
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from SAFNetSpineLib.data.cases import load_case_folders
from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.training import train
from SAFNetSpineLib.training.config import TrainConfig

gc.disable()  # only what train() itself frees counts, not a collection that happens to run
cases, _ = load_case_folders([sys.argv[1]])
config = TrainConfig(width=8, epochs=1, batch_size=2, augment=False,
                     preprocess=PreprocessConfig.from_dict({"target_shape": (8, 64, 32)}).to_dict())
rank = int(os.environ["RANK"])
train(config, cases[:3], cases[3:], f"{sys.argv[2]}/rank{rank}")
left = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
print(json.dumps({"rank": rank, "ddp_left": left, "group_left": dist.is_initialized()}), flush=True)
"""


@pytest.mark.slow
def test_train_leaves_no_ddp_wrapper_or_process_group_for_interpreter_shutdown(small_phantoms, tmp_path):
    """The root of a rank's abort at exit ("terminate called without an active exception"): a DDP
    wrapper, kept alive by reference cycles after ``train`` returned, held the gloo group until the
    interpreter tore it down. ``train`` must hand back with nothing of the group left."""
    probe = tmp_path / "probe.py"
    probe.write_text(_LEFTOVER_PROBE)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(probe), str(small_phantoms), str(tmp_path / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # The ranks share one stdout: their lines may arrive run together ('{...}{...}\n\n'), so read every object.
    reports = [json.loads(found) for found in re.findall(r'\{"rank"[^{}]*\}', done.stdout)]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert all(r["ddp_left"] == 0 and r["group_left"] is False for r in reports), reports
