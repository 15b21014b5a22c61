"""ModelStore: versions, the active pointer, activate and rollback, atomic version folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune import ModelStore
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.weights import ModelManifest, load_model, save_weights


def write_weights(folder: Path, version: str, seed: int = 0, parent: str | None = None) -> Path:
    torch.manual_seed(seed)
    config = {"width": 8, "in_channels": 1, "num_classes": 20}
    model = build_model("safnet", **config)
    manifest = ModelManifest(
        architecture="safnet",
        model_config=config,
        preprocess=PreprocessConfig(target_shape=(8, 64, 32)).to_dict(),
        trained_on="test",
        version=version,
        parent_version=parent,
    )
    return save_weights(model, folder, manifest)


@pytest.fixture()
def stores(tmp_path):
    bundled = write_weights(tmp_path / "bundled" / "safnet-default", "safnet-default")
    return ModelStore(tmp_path / "models", bundled_dir=bundled)


def add_version(store: ModelStore, status: str, seed: int) -> str:
    def write(folder: Path, name: str) -> None:
        write_weights(folder, name, seed=seed, parent="safnet-default")
        (folder / "finetune.json").write_text(
            json.dumps({"status": status, "dice_before": 0.5, "dice_after": 0.6})
        )

    return store.publish_version("safnet", write)


def test_empty_store_falls_back_to_the_bundled_default(stores):
    assert stores.active() == stores.bundled_dir
    assert stores.active_name() == "safnet-default"
    (only,) = stores.versions()
    assert only.status == "bundled" and only.active and only.name == "safnet-default"
    with pytest.raises(SpineInputError, match="no earlier active model"):
        stores.rollback()


def test_versions_are_numbered_and_listed_with_status(stores):
    assert add_version(stores, "promoted", 1) == "safnet-v1"
    assert add_version(stores, "candidate", 2) == "safnet-v2"
    listed = {v.name: v for v in stores.versions()}
    assert list(listed) == ["safnet-default", "safnet-v1", "safnet-v2"]
    assert listed["safnet-v1"].status == "promoted" and listed["safnet-v2"].status == "candidate"
    assert (
        listed["safnet-v2"].version == "safnet-v2" and listed["safnet-v2"].parent_version == "safnet-default"
    )
    assert listed["safnet-v2"].to_dict()["dice_after"] == 0.6
    # Publishing never activates by itself.
    assert stores.active_name() == "safnet-default"
    # Each version folder loads as weights with the sha256 checks.
    model, manifest = load_model(listed["safnet-v2"].folder)
    assert manifest.version == "safnet-v2"


def test_activate_and_rollback_step_back_through_history(stores):
    add_version(stores, "promoted", 1)
    add_version(stores, "promoted", 2)
    stores.activate("safnet-v1")
    stores.activate("safnet-v2")
    assert stores.active() == stores.models_dir / "safnet-v2"
    assert [v.name for v in stores.versions() if v.active] == ["safnet-v2"]
    assert stores.rollback() == "safnet-v1"
    assert stores.active_name() == "safnet-v1"
    assert stores.rollback() == "safnet-default"
    assert stores.active() == stores.bundled_dir
    with pytest.raises(SpineInputError, match="no earlier active model"):
        stores.rollback()
    # Re-activating the active version adds nothing to roll back to.
    stores.activate("safnet-default")
    with pytest.raises(SpineInputError):
        stores.rollback()
    stores.activate("safnet-v2")
    stores.activate("safnet-default")
    assert stores.rollback() == "safnet-v2"


def test_unknown_or_broken_versions_are_refused(stores):
    add_version(stores, "promoted", 1)
    with pytest.raises(SpineInputError, match="no such version.*safnet-v1"):
        stores.activate("safnet-v9")
    with pytest.raises(SpineInputError, match="no such version"):
        stores.activate("../bundled")
    broken = stores.models_dir / "broken-v1"
    broken.mkdir()
    (broken / "model.json").write_text("{}")
    with pytest.raises(SpineInputError, match="broken-v1"):
        stores.activate("broken-v1")
    listed = {v.name: v for v in stores.versions()}
    assert (
        listed["broken-v1"].status == "invalid"
        and "no model.safetensors" in listed["broken-v1"].summary["reason"]
    )
    assert listed["safnet-v1"].status == "promoted"
    assert stores.active_name() == "safnet-default"


def test_weights_for_another_label_table_are_refused(stores):
    folder = stores.models_dir / "other-v1"
    write_weights(folder, "other-v1")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["label_table"] = manifest["label_table"][:-1]
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(SpineInputError, match="different label table"):
        stores.activate("other-v1")


def test_failed_or_crashed_publish_leaves_no_version(stores):
    def write_then_fail(folder: Path, name: str) -> None:
        write_weights(folder, name)
        raise RuntimeError("killed while writing (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        stores.publish_version("safnet", write_then_fail)
    assert [p.name for p in stores.models_dir.iterdir() if not p.name.startswith(".")] == []
    # A temp folder left by a killed process is not listed and does not take a number.
    stray = stores.make_temp_folder("safnet-v1")
    write_weights(stray, "safnet-v1")
    assert [v.name for v in stores.versions()] == ["safnet-default"]
    assert add_version(stores, "promoted", 1) == "safnet-v1"


def test_active_pointer_naming_a_missing_folder_is_an_error(stores):
    add_version(stores, "promoted", 1)
    stores.activate("safnet-v1")
    (stores.models_dir / "active.json").write_text(json.dumps({"active": "safnet-v7", "history": []}))
    with pytest.raises(SpineInputError, match="safnet-v7"):
        stores.active()
    (stores.models_dir / "active.json").write_text("{not json")
    with pytest.raises(SpineInputError, match="active.json"):
        stores.active()


@pytest.mark.skipif(os.name == "nt", reason="owner check is POSIX-only")
def test_work_folders_of_killed_runs_are_removed_and_live_ones_kept(stores):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(finished.stdout)
    live = stores.make_work_folder()
    stale = stores.make_work_folder()
    owner = json.loads((stale / "owner.json").read_text())
    (stale / "owner.json").write_text(json.dumps({**owner, "pid": dead_pid}))
    (stale / "checkpoint.safetensors").write_bytes(b"left by a killed run")
    assert stores.remove_stale_work_folders() == [stale]
    assert not stale.exists() and live.exists()
    assert [v.name for v in stores.versions()] == ["safnet-default"]
