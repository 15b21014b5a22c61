"""ModelStore: versions, the active pointer, activate and rollback, atomic version folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import ModelStore
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
    with store.publishing("safnet") as version:
        write_weights(version.folder, version.name, seed=seed, parent="safnet-default")
        (version.folder / "finetune.json").write_text(
            json.dumps({"status": status, "dice_before": 0.5, "dice_after": 0.6})
        )
    return version.name


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
    with pytest.raises(RuntimeError, match="simulated"), stores.publishing("safnet", "safnet-default") as version:
        write_weights(version.folder, version.name)
        raise RuntimeError("killed while writing (simulated)")
    assert stores.active_name() == "safnet-default"  # the activation it would have made did not happen
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


def test_garbage_summary_marks_one_version_invalid_and_lists_the_others(stores):
    add_version(stores, "promoted", 1)
    add_version(stores, "candidate", 2)
    add_version(stores, "candidate", 3)
    (stores.models_dir / "safnet-v2" / "finetune.json").write_bytes(b"\x00\x01 not json")
    (stores.models_dir / "safnet-v3" / "finetune.json").write_text(json.dumps({"status": "promoted",
                                                                               "dice_after": "0.9"}))
    listed = {v.name: v for v in stores.versions()}
    assert list(listed) == ["safnet-default", "safnet-v1", "safnet-v2", "safnet-v3"]
    assert listed["safnet-v1"].status == "promoted"
    assert listed["safnet-v2"].status == "invalid"
    assert "safnet-v2/finetune.json: unreadable fine-tuning summary" in listed["safnet-v2"].to_dict()["reason"]
    assert listed["safnet-v3"].status == "invalid"
    assert "'dice_after' is not a number" in listed["safnet-v3"].to_dict()["reason"]
    (stores.models_dir / "safnet-v3" / "finetune.json").write_text("[1, 2]")
    assert "not a JSON object" in {v.name: v for v in stores.versions()}["safnet-v3"].to_dict()["reason"]


@pytest.mark.parametrize("manifest, reason", [
    ("[1, 2, 3]", "the manifest is a JSON array"),
    (None, "'model_config' is a JSON null"),
])
def test_malformed_model_json_is_listed_invalid_and_refused_on_activate(stores, manifest, reason):
    add_version(stores, "promoted", 1)
    add_version(stores, "promoted", 2)
    path = stores.models_dir / "safnet-v2" / "model.json"
    if manifest is None:
        data = json.loads(path.read_text())
        manifest = json.dumps({**data, "model_config": None})
    path.write_text(manifest)
    listed = {v.name: v for v in stores.versions()}
    assert listed["safnet-v2"].status == "invalid" and reason in listed["safnet-v2"].summary["reason"]
    assert listed["safnet-v1"].status == "promoted"
    with pytest.raises(SpineInputError, match=f"safnet-v2/model.json: unreadable manifest .*{reason}"):
        stores.activate("safnet-v2")


def test_active_pointer_naming_a_missing_version_is_flagged_in_the_list(stores):
    add_version(stores, "promoted", 1)
    (stores.models_dir / "active.json").write_text(json.dumps({"active": "safnet-v7", "history": [None]}))
    listed = stores.versions()
    assert [v.name for v in listed] == ["safnet-default", "safnet-v1", "safnet-v7"]
    missing = listed[-1]
    assert missing.status == "missing" and missing.active
    assert "names this version but its folder is gone" in missing.to_dict()["reason"]
    assert not any(v.active for v in listed[:-1])


@pytest.mark.parametrize("pointer", [
    {"active": "../m3/safnet-v1", "history": []},
    {"active": "/etc", "history": []},
    {"active": "safnet-v1", "history": ["../../outside"]},
    {"active": ["safnet-v1"], "history": []},
    ["safnet-v1"],
    {"active": "safnet-v1", "history": "safnet-v0"},
])
def test_active_pointer_outside_its_folder_or_malformed_is_refused(stores, tmp_path, pointer):
    add_version(stores, "promoted", 1)
    outside = ModelStore(tmp_path / "m3", bundled_dir=stores.bundled_dir)
    add_version(outside, "promoted", 5)  # a real weights folder the pointer must not reach
    (stores.models_dir / "active.json").write_text(json.dumps(pointer))
    with pytest.raises(SpineInputError, match="active.json") as caught:
        stores.active()
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_active_version_linked_outside_the_models_folder_is_refused(stores, tmp_path):
    outside = ModelStore(tmp_path / "m3", bundled_dir=stores.bundled_dir)
    add_version(outside, "promoted", 5)
    stores.models_dir.mkdir(parents=True, exist_ok=True)
    (stores.models_dir / "safnet-v1").symlink_to(tmp_path / "m3" / "safnet-v1")
    (stores.models_dir / "active.json").write_text(json.dumps({"active": "safnet-v1", "history": [None]}))
    with pytest.raises(SpineInputError, match="links outside"):
        stores.active()


def test_publishing_activates_when_the_model_it_was_compared_with_is_still_active(stores):
    with stores.publishing("safnet", activate_if_active="safnet-default") as version:
        assert version.activates and version.active == "safnet-default"
        write_weights(version.folder, version.name, seed=1)
    assert stores.active_name() == "safnet-v1"
    assert stores.rollback() == "safnet-default"


def test_publishing_keeps_a_candidate_when_another_model_was_activated_meanwhile(stores):
    add_version(stores, "promoted", 1)
    stores.activate("safnet-v1")  # another run finished first
    with stores.publishing("safnet", activate_if_active="safnet-default") as version:
        assert not version.activates and version.active == "safnet-v1"
        write_weights(version.folder, version.name, seed=2)
    assert stores.active_name() == "safnet-v1"
    assert [v.name for v in stores.versions()] == ["safnet-default", "safnet-v1", "safnet-v2"]
    with stores.publishing("safnet") as version:  # no comparison asked: a candidate
        write_weights(version.folder, version.name, seed=3)
    assert not version.activates and stores.active_name() == "safnet-v1"


def test_a_folder_that_takes_the_name_while_publishing_is_never_replaced(stores):
    with pytest.raises(SpineOutputError, match="safnet-v1: appeared while"), \
            stores.publishing("safnet", activate_if_active="safnet-default") as version:
        write_weights(version.folder, version.name)
        (stores.models_dir / version.name).mkdir()  # written by hand, without the lock
        (stores.models_dir / version.name / "note.txt").write_text("mine")
    assert (stores.models_dir / "safnet-v1" / "note.txt").read_text() == "mine"
    assert stores.active_name() == "safnet-default"
    assert [p.name for p in stores.models_dir.iterdir() if p.name.startswith(".tmp-")] == []


PUBLISHER = """
import json, sys, time
from pathlib import Path
from SAFNetSpineLib.stores import ModelStore
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.weights import ModelManifest, save_weights
models, bundled, tag, go = sys.argv[1:5]
store = ModelStore(models, bundled_dir=bundled)
config = {"width": 8, "in_channels": 1, "num_classes": 20}
Path(models, f"ready-{tag}").touch()
while not Path(go).exists():
    time.sleep(0.01)
with store.publishing("safnet", activate_if_active="safnet-default") as version:
    time.sleep(0.3)  # writing takes a while; the other process must wait for the lock
    save_weights(build_model("safnet", **config), version.folder, ModelManifest(
        "safnet", config, PreprocessConfig(target_shape=(8, 64, 32)).to_dict(), version=version.name))
print(json.dumps({"name": version.name, "promoted": version.activates, "active": version.active}))
"""


def test_two_processes_publishing_from_the_same_model_activate_only_one(stores, tmp_path):
    # Issue 10: two fine-tunes from the same parent; the one that publishes second must not
    # replace the first (its evidence was measured against the parent, not against the first).
    repo = Path(__file__).resolve().parents[2]
    stores.models_dir.mkdir(parents=True, exist_ok=True)
    go = tmp_path / "go"
    children = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, str(stores.models_dir), str(stores.bundled_dir),
                          tag, str(go)], cwd=repo, stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    while not all((stores.models_dir / f"ready-{tag}").exists() for tag in ("a", "b")):
        time.sleep(0.01)
    go.touch()  # the barrier: both publish now
    outcomes = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sorted(o["name"] for o in outcomes) == ["safnet-v1", "safnet-v2"]
    (winner,) = [o for o in outcomes if o["promoted"]]
    (loser,) = [o for o in outcomes if not o["promoted"]]
    assert stores.active_name() == winner["name"] and loser["active"] == winner["name"]
    assert json.loads((stores.models_dir / "active.json").read_text())["history"] == [None]


def test_models_list_command_reports_bad_versions_and_lists_the_rest(stores, capsys, monkeypatch):
    from SAFNetSpineLib.cli import main

    add_version(stores, "promoted", 1)
    add_version(stores, "candidate", 2)
    (stores.models_dir / "safnet-v2" / "finetune.json").write_text("garbage")
    (stores.models_dir / "active.json").write_text(json.dumps({"active": "safnet-v9", "history": [None]}))
    monkeypatch.setattr("SAFNetSpineLib.weights.default_weights_dir", lambda: stores.bundled_dir)
    assert main(["models", "list", "--models", str(stores.models_dir)]) == 0
    out, err = capsys.readouterr()
    rows = {line[2:].split()[0]: line for line in out.splitlines()[1:] if not line.startswith("    ")}
    assert "promoted" in rows["safnet-v1"] and "invalid" in rows["safnet-v2"] and "missing" in rows["safnet-v9"]
    assert rows["safnet-v9"].startswith("*")
    assert "safnet-v2/finetune.json: unreadable fine-tuning summary" in out
    assert "active.json names this version but its folder is gone" in out
    # The list and active.json disagree: said on stderr, one line each.
    assert "safnet-v1 says promoted but was never activated" in err
    assert "safnet-v9 is missing" in err and "safnet-v2 is invalid" in err
