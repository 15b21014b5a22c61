"""finetune(): promote / keep as candidate / rollback, cancel and crash safety, bad inputs.

Small synthetic cases keep this fast: a sagittal 12 x 48 x 80 volume with a bright
block labelled L4 (id 3) and a brighter block labelled L4/L5 (id 12), which a width-8
SAFNet learns in a few epochs on a (8, 32, 16) network grid.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from block_cases import block_case
from safetensors.torch import load_file

from SAFNetSpineLib.data.splits import split_roles
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune import FinetuneCancelled, FinetuneConfig, finetune
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore, ModelStore
from SAFNetSpineLib.weights import ModelManifest, save_weights

TINY = {"width": 8, "in_channels": 1, "num_classes": 20}
GRID = PreprocessConfig(target_shape=(8, 32, 16))
#: anchor_weight 0: the tiny random "parent" knows nothing worth keeping, and a few steps must change it.
FAST = {"device": "cpu", "batch_size": 1, "augment": False, "anchor_weight": 0.0}


def write_base(folder: Path, seed: int = 0, label_table: list | None = None) -> Path:
    torch.manual_seed(seed)
    manifest = ModelManifest(
        "safnet", TINY, GRID.to_dict(), trained_on="nothing (random init)", version="base"
    )
    save_weights(build_model("safnet", **TINY), folder, manifest)
    if label_table is not None:
        data = json.loads((folder / "model.json").read_text())
        data["label_table"] = label_table
        (folder / "model.json").write_text(json.dumps(data))
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_promote_then_keep_candidate_then_rollback(tmp_path):
    base = write_base(tmp_path / "bundled" / "base")
    models = ModelStore(tmp_path / "models", bundled_dir=base)
    good = CaseStore(tmp_path / "good")
    for seed in range(4):
        good.add(*block_case(seed), [3, 12], "base", case_id=f"good-{seed}", patient_id=f"p{seed}")

    first = finetune(good, None, models.models_dir, epochs=5, lr=2e-2, bundled_dir=base, **FAST)
    assert first.version == "safnet-v1" and first.parent == "base"
    assert first.dice_after > first.dice_before + 0.1, (first.dice_before, first.dice_after)
    assert first.promoted and first.status == "promoted" and first.decision == "promoted"
    assert models.active() == models.models_dir / "safnet-v1"
    assert first.promotion == "cross-validation" and first.patients == 4 and first.evidence["patients"] == 4
    ids = [f"good-{s}" for s in range(4)]
    assert first.val_cases == ids and first.train_cases == ids and first.epochs_run == 5
    assert not first.patient_grouping_guessed
    summary = json.loads((first.folder / "finetune.json").read_text())
    assert summary["status"] == "promoted" and summary["dice_after"] == pytest.approx(first.dice_after)
    manifest = json.loads((first.folder / "model.json").read_text())
    assert manifest["version"] == "safnet-v1" and manifest["parent_version"] == "base"

    # A batch of wrong corrections (ids swapped in every training case) with a large
    # learning rate: validation Dice on the correct case must drop, so v2 stays a candidate.
    ids = ["bad-0", "bad-1", "bad-2", "bad-3"]
    bad_roles = split_roles(ids, 20)
    bad = CaseStore(tmp_path / "bad")
    for seed, case_id in enumerate(ids):
        bad.add(
            *block_case(10 + seed, swap=bad_roles[case_id] == "train"), [3, 12], "safnet-v1", case_id=case_id,
            patient_id=case_id,
        )
    second = finetune(bad, None, models.models_dir, epochs=3, lr=0.1, bundled_dir=base, promotion="holdout",
                      **FAST)
    assert second.version == "safnet-v2" and second.parent == "safnet-v1"
    assert second.dice_after < second.dice_before, (second.dice_before, second.dice_after)
    assert not second.promoted and second.status == "candidate"
    assert "dropped" in second.reason and "kept as candidate" in second.reason
    assert models.active_name() == "safnet-v1"
    listed = {v.name: v for v in models.versions()}
    assert listed["safnet-v2"].status == "candidate" and not listed["safnet-v2"].active
    assert listed["safnet-v1"].status == "promoted" and listed["safnet-v1"].active

    # The user may still choose the candidate, and roll back.
    models.activate("safnet-v2")
    assert models.rollback() == "safnet-v1"
    assert models.rollback() == "base"
    assert models.active() == base


def test_cancel_after_first_batch_changes_nothing(tmp_path):
    from SAFNetSpineLib.data.phantom import make_phantom

    base = write_base(tmp_path / "base")
    store = CaseStore(tmp_path / "store")
    ids = ["phantom-0", "phantom-1", "phantom-2"]
    assert list(split_roles(ids, 20).values()).count("train") == 2  # so cancel lands between two batches
    for seed, case_id in enumerate(ids):
        store.add(*make_phantom(seed), range(1, 20), "base", case_id=case_id, patient_id=case_id)
    models = ModelStore(tmp_path / "models", bundled_dir=base)
    models.models_dir.mkdir()
    (models.models_dir / "active.json").write_text(json.dumps({"active": None, "history": []}))
    before_store, before_models = snapshot(store.folder), snapshot(models.models_dir)

    cancel = threading.Event()
    seen = []

    def progress(stage, fraction, message="", **extra):
        seen.append(stage)
        if stage == "train":
            cancel.set()

    with pytest.raises(FinetuneCancelled):
        finetune(
            store,
            base,
            models.models_dir,
            epochs=3,
            lr=1e-3,
            progress=progress,
            cancel=cancel,
            bundled_dir=base,
            **FAST,
        )
    assert seen.count("train") == 1  # stopped before the second batch
    assert snapshot(store.folder) == before_store
    assert snapshot(models.models_dir) == before_models
    assert sorted(p.name for p in models.models_dir.iterdir()) == ["active.json"]


def test_crash_during_training_leaves_no_version(tmp_path):
    base = write_base(tmp_path / "base")
    store = CaseStore(tmp_path / "store")
    for seed in range(3):
        store.add(*block_case(seed), [3], "base", patient_id=f"p{seed}")

    def crash(stage, fraction, message="", **extra):
        if stage == "train":
            raise RuntimeError("process killed (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        finetune(store, base, tmp_path / "models", epochs=2, progress=crash, bundled_dir=base, **FAST)
    assert list((tmp_path / "models").iterdir()) == []
    assert ModelStore(tmp_path / "models", bundled_dir=base).active() == base


def test_too_few_cases_and_foreign_weights_are_refused(tmp_path):
    base = write_base(tmp_path / "base")
    store = CaseStore(tmp_path / "store")
    with pytest.raises(SpineInputError, match="at least 2 corrected cases.*has 0"):
        finetune(store, base, tmp_path / "models", bundled_dir=base, **FAST)
    store.add(*block_case(0), [3], "base")
    with pytest.raises(SpineInputError, match="has 1"):
        finetune(store, base, tmp_path / "models", bundled_dir=base, **FAST)
    store.add(*block_case(1), [3], "base")
    table = [[i, f"X{i}"] for i in range(20)]
    foreign = write_base(tmp_path / "foreign", label_table=table)
    with pytest.raises(SpineInputError, match="foreign.*different label table"):
        finetune(store, foreign, tmp_path / "models", bundled_dir=base, **FAST)
    with pytest.raises(SpineInputError, match="weights folder not found"):
        finetune(store, tmp_path / "missing", tmp_path / "models", bundled_dir=base, **FAST)
    for bad in ({"epochs": -1}, {"lr": 0.0}, {"val_fraction": 1.0}, {"batch_size": 0}, {"steps": -5},
                {"promotion": "vote"}, {"folds": 1}, {"min_confidence": 1.5}):
        with pytest.raises(SpineInputError, match="fine-tuning"):
            finetune(store, base, tmp_path / "models", bundled_dir=base, **{**FAST, **bad})
    with pytest.raises(SpineInputError, match="model name ../x"):
        finetune(store, base, tmp_path / "models", bundled_dir=base, name="../x", **FAST)
    with pytest.raises(SpineInputError, match="device tpu7: unknown device"):
        finetune(store, base, tmp_path / "models", bundled_dir=base, **{**FAST, "device": "tpu7"})
    if not torch.cuda.is_available():
        with pytest.raises(SpineInputError, match="CUDA is not available"):
            finetune(store, base, tmp_path / "models", bundled_dir=base, **{**FAST, "device": "cuda"})
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []


def test_changed_stored_case_is_refused(tmp_path):
    base = write_base(tmp_path / "base")
    store = CaseStore(tmp_path / "store")
    for seed in range(2):
        store.add(*block_case(seed), [3], "base", case_id=f"c{seed}", patient_id=f"p{seed}")
    image_path = store.get("c1").image_path
    image_path.write_bytes(image_path.read_bytes()[:-10])
    with pytest.raises(SpineInputError, match="c1.*sha256"):
        finetune(store, base, tmp_path / "models", bundled_dir=base, **FAST)


def _l5_case(seed: int):
    """A block case whose lower block is L5 (2), so the set-valued term below L5 has a region."""
    image, label = block_case(seed)
    array = np.where(np.asarray(label.array) == 3, 2, np.asarray(label.array)).astype(np.uint8)
    return image, label.with_array(array)


@pytest.mark.parametrize("changed", [{"dice_loss_weight": 0.0}, {"below_lumbar_weight": 0.0}])
def test_the_recipe_loss_terms_reach_the_training(tmp_path, changed):
    """Same seed, same cases: the recipe's loss gives the same weights twice, a term turned off other weights."""
    base = write_base(tmp_path / "base")
    store = CaseStore(tmp_path / "store")
    for seed in range(3):
        store.add(*_l5_case(seed), [2, 12], "base", case_id=f"c{seed}", patient_id=f"p{seed}")
    recipe = {**FAST, "epochs": 1, "steps": 0, "promotion": "holdout", "min_confidence": 0.0}

    def weights_after(name: str, **extra) -> dict[str, torch.Tensor]:
        result = finetune(store, base, tmp_path / name, bundled_dir=base, **{**recipe, **extra})
        summary = json.loads((result.folder / "finetune.json").read_text())
        for key in ("dice_loss_weight", "below_lumbar_weight"):
            assert summary["config"]["train"][key] == extra.get(key, 1.0)
        return load_file(result.folder / "model.safetensors")

    first, again, other = weights_after("a"), weights_after("b"), weights_after("c", **changed)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_negative_loss_weights_are_refused():
    for bad in ({"dice_loss_weight": -1.0}, {"below_lumbar_weight": float("nan")}):
        with pytest.raises(SpineInputError, match="fine-tuning: .*weight must be a number >= 0"):
            FinetuneConfig().replace(**bad)


def test_one_exam_or_two_patients_stay_a_candidate_and_the_summary_says_why(tmp_path):
    base = write_base(tmp_path / "base")
    models = ModelStore(tmp_path / "models", bundled_dir=base)
    # Four series on one grid without patient ids: guessed to be one exam, nothing can be scored fairly.
    exam = CaseStore(tmp_path / "exam")
    for seed in range(4):
        exam.add(*block_case(seed), [3, 12], "base", case_id=f"s{seed}")
    one = finetune(exam, None, models.models_dir, epochs=1, bundled_dir=base, min_confidence=0.0, **FAST)
    assert one.status == "candidate" and one.decision == "too-few-patients" and one.promotion == "none"
    assert one.patients == 1 and one.patient_grouping_guessed and "grouping guessed for 4 case(s)" in one.reason
    assert one.dice_after is None and one.evidence == {} and models.active_name() == "base"
    # Two patients with two series each: folds by patient, and still no evidence for a new patient.
    two = CaseStore(tmp_path / "two")
    for seed in range(4):
        two.add(*block_case(seed), [3, 12], "base", case_id=f"s{seed}", patient_id=f"P{seed // 2}")
    result = finetune(two, None, models.models_dir, epochs=1, bundled_dir=base, min_confidence=0.0, **FAST)
    assert result.promotion == "cross-validation" and result.folds == 2 and not result.patient_grouping_guessed
    folds: dict[str, set] = {}
    for row in result.per_case:
        folds.setdefault(row["patient"], set()).add(row["fold"])
    assert sorted(folds) == ["patient:P0", "patient:P1"] and all(len(f) == 1 for f in folds.values())
    assert folds["patient:P0"] != folds["patient:P1"]  # each patient's series in one fold, never split
    assert result.evidence["patients"] == 2 and result.evidence["cases"] == 4
    assert result.decision == "too-few-patients" and result.status == "candidate" and not result.promoted
    assert "2 patient(s), fewer than 3" in result.reason and models.active_name() == "base"
    models.activate(result.version)  # the user may still choose it by hand
    assert models.active_name() == result.version
