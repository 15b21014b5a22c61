"""Issue 25: a process killed at any rename leaves the stores consistent, and the next command cleans up.

A child process publishes a promoted version (or adds a case) with ``os.rename`` and
``os.replace`` patched to end the process (``os._exit``, no clean-up code runs: what a
``kill -9`` leaves) at the N-th rename. The parent then checks what the user would see.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from SAFNetSpineLib.cli import main
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore, ModelStore
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import ModelManifest, save_weights

#: Ends the process at the N-th rename (argv[1]); the rest of argv goes to the script after it.
CRASH_AT_RENAME = """
import os, sys
limit, calls = int(sys.argv[1]), [0]
def crashing(real):
    def rename(*args, **kwargs):
        calls[0] += 1
        if calls[0] == limit:
            os._exit(77)
        return real(*args, **kwargs)
    return rename
os.rename, os.replace = crashing(os.rename), crashing(os.replace)
"""

PUBLISH = CRASH_AT_RENAME + """
import shutil
from pathlib import Path
from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.stores import ModelStore
models, bundled, source = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
store = ModelStore(models, bundled_dir=bundled)

with store.publishing("safnet", activate_if_active=store.active_name()) as version:
    for file in ("model.safetensors", "model.json"):
        shutil.copy(source / file, version.folder / file)
    write_json_atomic({"status": "promoted" if version.activates else "candidate", "dice_before": 0.5,
                       "dice_after": 0.6}, version.folder / "finetune.json")
"""

ADD = CRASH_AT_RENAME + """
from pathlib import Path
from SAFNetSpineLib.stores.case_files import add_case_files
add_case_files(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), "3", case_id="killed")
"""


def run_child(script: str, *args) -> int:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=300).returncode


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    config = {"width": 8, "in_channels": 1, "num_classes": 20}
    torch.manual_seed(0)
    manifest = ModelManifest("safnet", config, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(),
                             trained_on="test", version="base")
    bundled = save_weights(build_model("safnet", **config), folder / "safnet-default", manifest)
    return bundled


def test_a_kill_at_every_rename_of_publish_and_activate_leaves_list_and_pointer_agreeing(tmp_path, weights, capsys):
    renames_seen = set()
    for crash_at in range(1, 9):
        models = tmp_path / f"models-{crash_at}"
        store = ModelStore(models, bundled_dir=weights)
        code = run_child(PUBLISH, crash_at, models, weights, weights)
        renames_seen.add(code)
        assert code in (0, 77), code
        assert store.disagreements() == [], (crash_at, store.disagreements())
        # The next command that opens the models folder finishes or undoes the publish and cleans up.
        assert main(["models", "list", "--models", str(models)]) == 0
        capsys.readouterr()
        assert [p.name for p in models.iterdir() if p.name.startswith(".tmp-")] == [], crash_at
        pointer = json.loads((models / "active.json").read_text()) if (models / "active.json").is_file() else {}
        assert pointer.get("pending") is None
        assert store.disagreements() == [], (crash_at, store.disagreements())
        if code == 77:
            assert store.active_name() in ("safnet-default", "safnet-v1")
        else:
            assert store.active_name() == "safnet-v1"
    assert renames_seen == {0, 77}  # some crash points killed the child, the last ones let it finish


def test_a_killed_case_add_leaves_no_patient_copy_after_the_next_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 15.0, size=(6, 20, 24)).astype(np.float32)
    label = np.zeros(image.shape, np.uint8)
    label[1:5, 4:12, 4:12] = 3
    image_path = write_volume(Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), tmp_path / "i.nii.gz")
    label_path = write_volume(Volume(label, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), is_label=True),
                              tmp_path / "l.nii.gz")
    for crash_at, command in ((1, "list"), (2, "add")):  # 1: the image written; 2: the label map too
        store = tmp_path / f"store-{crash_at}"
        assert run_child(ADD, crash_at, store, image_path, label_path) == 77
        left = [p for p in (store / "cases").iterdir() if p.name.startswith(".tmp-")]
        assert left and any("image.nii.gz" in p.name for p in left[0].iterdir())  # a copy of the patient image
        if command == "list":
            assert main(["cases", "list", "--store", str(store)]) == 0
            assert "left by an add that was killed" in capsys.readouterr().out
        else:
            assert main(["cases", "add", str(image_path), str(label_path), "--store", str(store),
                         "--reviewed", "3"]) == 0
        assert [p.name for p in (store / "cases").iterdir() if p.name.startswith(".")] == []
        assert len(CaseStore(store).list()) == (0 if command == "list" else 1)
