"""The training loop: it learns, writes usable weights, resumes after a cancel, refuses bad runs."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.training import TrainConfig, train
from SAFNetSpineLib.training.checkpoint import CHECKPOINT_FILE, read_checkpoint
from SAFNetSpineLib.weights import load_model

TINY_GRID = PreprocessConfig(target_shape=(8, 64, 32)).to_dict()
# fp32: these thresholds are about the loop; bf16 (the CPU default where native) is compared with
# fp32 in test_precision_convergence.py (a width-8 net on this tiny grid learns slower in bf16).
FAST = dict(width=8, batch_size=1, lr=1e-2, augment=False, preprocess=TINY_GRID, precision="fp32")


@pytest.fixture(scope="module")
def learned(small_phantoms, tmp_path_factory):
    """A 40-epoch run on 4 phantoms, validated on a fifth (about 20 s on one core)."""
    cases = load_case_folder(small_phantoms)
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(epochs=40, **FAST), cases[:4], cases[4:], out)
    return result, out, cases


def test_training_lowers_the_loss_and_raises_validation_dice(learned):
    result, _, _ = learned
    losses = [h["loss"] for h in result.history]
    dice = [h["val_dice"] for h in result.history]
    assert result.epochs_run == 40 and not result.cancelled
    assert losses[-1] < 0.25 * losses[0]
    assert np.mean(dice[-3:]) > 0.08
    assert np.mean(dice[-3:]) > 4 * dice[0]
    assert result.best_val_dice == pytest.approx(max(dice))
    assert result.best_epoch == 1 + int(np.argmax(dice))


def test_best_weights_are_a_loadable_weights_folder(learned):
    result, out, cases = learned
    model, manifest = load_model(result.weights_dir)
    assert manifest.architecture == "safnet" and manifest.model_config["width"] == 8
    assert manifest.preprocess == TINY_GRID
    assert manifest.metrics["val_dice"] == pytest.approx(result.best_val_dice)
    assert manifest.metrics["val_cases"] == [cases[4].case_id]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 41))
    saved = json.loads((out / "train_config.json").read_text())
    assert TrainConfig.from_dict(saved) == TrainConfig(epochs=40, **FAST)


class CancelAfter:
    """Cancel hook that says stop once it has been asked ``n`` times (batches started)."""

    def __init__(self, n: int):
        self.n, self.asked = n, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.n


def test_cancel_keeps_the_last_checkpoint_and_resume_continues(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    config = TrainConfig(epochs=4, **FAST)
    out = tmp_path / "run"
    # 3 training cases at batch 1: 3 batches per epoch; stop in the middle of epoch 3.
    first = train(config, cases[:3], cases[3:4], out, cancel=CancelAfter(7))
    assert first.cancelled and first.epochs_run == 2
    before = (out / CHECKPOINT_FILE).read_bytes()
    tensors, meta = read_checkpoint(out)
    assert meta["state"]["epoch"] == 2 and len(meta["state"]["history"]) == 2
    assert any(k.startswith("optimizer/") for k in tensors)

    with pytest.raises(SpineInputError, match="already holds a training checkpoint"):
        train(config, cases[:3], cases[3:4], out)
    with pytest.raises(SpineInputError, match=r"config differs from the checkpoint's in \['lr'\]"):
        train(config.replace(lr=5e-3), cases[:3], cases[3:4], out, resume=True)
    assert (out / CHECKPOINT_FILE).read_bytes() == before

    event = threading.Event()
    resumed = train(config, cases[:3], cases[3:4], out, resume=True, cancel=event)
    assert not resumed.cancelled and resumed.epochs_run == 4
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == meta["state"]["history"]
    assert read_checkpoint(out)[1]["state"]["epoch"] == 4


def test_resumed_run_matches_an_uninterrupted_one(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    config = TrainConfig(epochs=2, **{**FAST, "augment": True})
    straight = train(config, cases[:2], cases[2:3], tmp_path / "a")
    train(config.replace(epochs=1), cases[:2], cases[2:3], tmp_path / "b")
    resumed = train(config, cases[:2], cases[2:3], tmp_path / "b", resume=True)
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-4)
    tensors_a, _ = read_checkpoint(tmp_path / "a")
    tensors_b, _ = read_checkpoint(tmp_path / "b")
    assert set(tensors_a) == set(tensors_b)
    for name in tensors_a:
        if name.startswith("model/"):
            assert np.allclose(tensors_a[name].numpy(), tensors_b[name].numpy(), atol=1e-5), name


def test_fine_tuning_takes_architecture_from_the_init_weights(small_phantoms, tmp_path, make_tiny_weights):
    cases = load_case_folder(small_phantoms)
    weights = make_tiny_weights(tmp_path / "start", version="tiny-v1")
    config = TrainConfig(epochs=1, width=16, batch_size=2, augment=False)  # width and grid come from the weights
    result = train(config, cases[:2], cases[2:3], tmp_path / "ft", init_weights=weights, version="tiny-v2")
    model, manifest = load_model(result.weights_dir)
    assert manifest.model_config["width"] == 8 and manifest.preprocess["target_shape"] == [8, 64, 32]
    assert manifest.parent_version == "tiny-v1" and manifest.version == "tiny-v2"
    assert result.config.width == 8


def test_a_run_that_widens_the_field_of_view_or_changes_the_grid_keeps_it_over_its_init_weights(
        small_phantoms, tmp_path, make_tiny_weights):
    cases = load_case_folder(small_phantoms)
    weights = make_tiny_weights(tmp_path / "start", version="tiny-v1")
    config = TrainConfig(epochs=1, batch_size=2, augment=False,
                         preprocess={"min_fov_mm": 400.0, "widen_fill": "network_zero"})
    result = train(config, cases[:2], cases[2:3], tmp_path / "ft", init_weights=weights, version="tiny-v2")
    _, manifest = load_model(result.weights_dir)
    assert manifest.preprocess["min_fov_mm"] == 400.0 and manifest.preprocess["widen_fill"] == "network_zero"
    assert manifest.preprocess["target_shape"] == [8, 64, 32]  # the rest is the weights'
    plain = train(TrainConfig(epochs=1, batch_size=2, augment=False), cases[:2], cases[2:3], tmp_path / "plain",
                  init_weights=weights, version="tiny-v3")
    assert load_model(plain.weights_dir)[1].preprocess["min_fov_mm"] == 0.0
    finer = train(TrainConfig(epochs=1, batch_size=2, augment=False, preprocess={"target_shape": [8, 96, 48]}),
                  cases[:2], cases[2:3], tmp_path / "finer", init_weights=weights, version="tiny-v4")
    assert load_model(finer.weights_dir)[1].preprocess["target_shape"] == [8, 96, 48]  # a grid of more rows
    assert load_model(plain.weights_dir)[1].preprocess["target_shape"] == [8, 64, 32]  # the paper's: the weights'



def test_the_weights_record_the_training_scans_field_of_view_joined_with_their_parents(small_phantoms, tmp_path,
                                                                                      make_tiny_weights):
    from SAFNetSpineLib.inference.field_of_view import fov_of_file

    cases = load_case_folder(small_phantoms)
    fields = [v for case in cases[:2] for v in fov_of_file(case.image_path)]
    result = train(TrainConfig(epochs=1, batch_size=2, augment=False), cases[:2], cases[2:3], tmp_path / "own")
    assert load_model(result.weights_dir)[1].trained_fov_mm == [round(min(fields), 1), round(max(fields), 1)]
    weights = make_tiny_weights(tmp_path / "start", version="tiny-v1")
    manifest = json.loads((weights / "model.json").read_text())
    manifest["trained_fov_mm"] = [150.0, 500.0]
    (weights / "model.json").write_text(json.dumps(manifest))
    child = train(TrainConfig(epochs=1, batch_size=2, augment=False), cases[:2], cases[2:3], tmp_path / "child",
                  init_weights=weights, version="tiny-v2")
    assert load_model(child.weights_dir)[1].trained_fov_mm == [150.0, 500.0]  # the parent's scans reach further


def test_fine_tuning_can_add_a_refine_head_but_not_change_the_network(small_phantoms, tmp_path, make_tiny_weights):
    cases = load_case_folder(small_phantoms)
    weights = make_tiny_weights(tmp_path / "start", version="tiny-v1")
    config = TrainConfig(epochs=1, batch_size=2, augment=False, model_options={"refine": 4})
    result = train(config, cases[:2], cases[2:3], tmp_path / "ft", init_weights=weights, version="tiny-v2")
    model, manifest = load_model(result.weights_dir)
    assert manifest.model_config["refine"] == 4 and model.refine is not None
    start, _ = load_model(weights)
    kept = start.state_dict()["classifier.1.weight"]
    assert kept.shape == model.state_dict()["classifier.1.weight"].shape
    with pytest.raises(SpineInputError, match="do not fit"):
        train(TrainConfig(epochs=1, batch_size=2, augment=False, model_options={"use_aspp": False}), cases[:2],
              cases[2:3], tmp_path / "bad", init_weights=weights)


def test_a_fresh_head_gets_its_own_learning_rate():
    from SAFNetSpineLib.models import build_model
    from SAFNetSpineLib.training.run_state import _parameter_groups

    config = TrainConfig(lr=1e-4, head_lr_factor=10.0)
    plain = _parameter_groups(build_model("safnet", width=8), config)
    assert len(plain) == 1
    model = build_model("safnet", width=8, refine=4)
    groups = _parameter_groups(model, config)
    head = {id(p) for p in model.refine.parameters()}
    assert len(groups) == 2 and {id(p) for p in groups[1]["params"]} == head and groups[1]["lr"] == pytest.approx(1e-3)
    assert not head & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    with pytest.raises(SpineInputError, match="head_lr_factor"):
        TrainConfig(head_lr_factor=0.0)


def test_without_validation_cases_the_latest_epoch_is_kept(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    result = train(TrainConfig(epochs=2, **FAST), cases[:2], [], tmp_path / "noval")
    assert result.best_epoch == 2 and np.isnan(result.best_val_dice)
    assert load_model(result.weights_dir)[1].metrics["epoch"] == 2


def test_bad_runs_are_refused(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    with pytest.raises(SpineInputError, match="no training cases"):
        train(TrainConfig(epochs=1, **FAST), [], cases[:1], tmp_path / "x")
    with pytest.raises(SpineInputError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)


def test_case_repeats_oversample_matching_cases(small_phantoms, tmp_path):
    config = TrainConfig(case_repeats={"phantom": 2, "phantom_0001": 3})
    assert config.repeats_for("phantom_0001") == 3  # the longest matching prefix wins
    assert config.repeats_for("phantom_0002") == 2
    assert config.repeats_for("myo_01") == 1
    for bad in (0, 1.5, True):
        with pytest.raises(SpineInputError, match="case_repeats"):
            TrainConfig(case_repeats={"chu_": bad})
    cases = load_case_folder(small_phantoms)
    first = cases[0].case_id
    messages = []
    result = train(TrainConfig(epochs=1, case_repeats={first: 3}, **FAST), cases[:2], [], tmp_path / "run",
                   progress=lambda stage, fraction, message, **extra: messages.append(message))
    assert result.epochs_run == 1
    # Two cases, the first drawn three times: four batches of one case per epoch.
    batches = [m.split(" loss ")[0] for m in messages if m.startswith("epoch 1/1 batch")]
    assert batches == [f"epoch 1/1 batch {k}/4" for k in range(1, 5)]


def test_resume_accepts_a_checkpoint_written_before_case_repeats_existed(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    out = tmp_path / "run"
    train(TrainConfig(epochs=1, **FAST), cases[:1], [], out)
    saved = read_checkpoint(out)[1]["state"]
    assert saved["config"]["case_repeats"] == {}
    from SAFNetSpineLib.training.run_state import check_resume_config

    older = {k: v for k, v in saved["config"].items() if k != "case_repeats"}
    check_resume_config(older, TrainConfig(epochs=3, **FAST), out)  # the default fills the gap
    with pytest.raises(SpineInputError, match="case_repeats"):
        check_resume_config(older, TrainConfig(epochs=3, case_repeats={"x": 2}, **FAST), out)


def test_weight_averaging_saves_an_averaged_folder_and_survives_a_resume(small_phantoms, tmp_path):
    cases = load_case_folder(small_phantoms)
    config = TrainConfig(epochs=4, average_from=2, **FAST)
    straight = train(config, cases[:2], cases[2:3], tmp_path / "a")
    assert [h.get("averaged_epochs") for h in straight.history] == [None, 1, 2, 3]
    model, manifest = load_model(straight.averaged_weights_dir)
    assert straight.averaged_weights_dir == tmp_path / "a" / "averaged"
    assert manifest.metrics["averaged_epochs"] == 3 and manifest.metrics["averaged_from_epoch"] == 2
    assert manifest.metrics["val_dice"] == pytest.approx(straight.averaged_val_dice)
    assert 0.0 <= straight.averaged_val_dice <= 1.0
    tensors, _ = read_checkpoint(tmp_path / "a")
    assert int(tensors["average/#count"][0]) == 3
    last = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    averaged = dict(model.named_parameters())
    # The average is not the last epoch's weights (lr 1e-2 moves them every epoch) ...
    assert any(not torch.allclose(averaged[k], last[k]) for k in averaged)
    # ... and a run cancelled after epoch 3 and resumed ends with the same average.
    first = train(config, cases[:2], cases[2:3], tmp_path / "b", cancel=CancelAfter(6))
    assert first.cancelled and first.epochs_run == 3
    assert load_model(first.averaged_weights_dir)[1].metrics["averaged_epochs"] == 2
    train(config, cases[:2], cases[2:3], tmp_path / "b", resume=True)
    resumed, _ = load_model(tmp_path / "b" / "averaged")
    for name, value in resumed.named_parameters():
        assert torch.allclose(value, averaged[name], atol=1e-5), name


def test_no_averaged_folder_without_average_from(learned):
    result, out, _ = learned
    assert result.averaged_weights_dir is None and not (out / "averaged").exists()
