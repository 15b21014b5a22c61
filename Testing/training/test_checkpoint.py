"""Checkpoints: one safetensors file restores model, optimiser and scheduler exactly; no pickle."""

from __future__ import annotations

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.training.checkpoint import (
    CHECKPOINT_FILE,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)


def _stepped(seed: int):
    torch.manual_seed(seed)
    model = build_model("safnet", width=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=0, factor=0.5)
    x = torch.randn(1, 1, 2, 32, 16)
    model(x).mean().backward()
    optimizer.step()
    scheduler.step(0.5)
    scheduler.step(0.4)  # no gain: lr halves
    return model, optimizer, scheduler


def test_round_trip_restores_everything(tmp_path):
    model, optimizer, scheduler = _stepped(0)
    state = {"epoch": 3, "best_val_dice": 0.5, "history": [{"epoch": 1, "loss": 1.0}]}
    save_checkpoint(tmp_path, model, optimizer, scheduler, state)
    fresh, fresh_optimizer, fresh_scheduler = _stepped(1)
    assert restore_checkpoint(tmp_path, fresh, fresh_optimizer, fresh_scheduler) == state
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    first = next(iter(optimizer.state.values()))
    restored = next(iter(fresh_optimizer.state.values()))
    assert torch.equal(first["exp_avg"], restored["exp_avg"]) and torch.equal(first["step"], restored["step"])


def test_checkpoint_is_plain_safetensors_and_refuses_other_networks(tmp_path):
    model, optimizer, scheduler = _stepped(0)
    save_checkpoint(tmp_path, model, optimizer, scheduler, {"epoch": 1})
    assert (tmp_path / CHECKPOINT_FILE).read_bytes()[8:9] == b"{"  # safetensors: u64 header size, then JSON
    tensors, meta = read_checkpoint(tmp_path)
    assert meta["scheduler"]["mode_worse"] == float("-inf")
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    other = build_model("safnet", width=16)
    with pytest.raises(SpineInputError, match="different network or width"):
        restore_checkpoint(tmp_path, other, torch.optim.Adam(other.parameters()), None)


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(SpineInputError, match="no checkpoint to resume from"):
        read_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(SpineInputError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path)


def test_extra_tensors_travel_with_the_checkpoint_and_cannot_shadow_its_own(tmp_path):
    model, optimizer, scheduler = _stepped(0)
    extra = {"average/conv.weight": torch.arange(6.0).reshape(2, 3)}
    save_checkpoint(tmp_path, model, optimizer, scheduler, {"epoch": 2}, extra_tensors=extra)
    tensors, _ = read_checkpoint(tmp_path)
    assert torch.equal(tensors["average/conv.weight"], extra["average/conv.weight"])
    fresh, fresh_optimizer, fresh_scheduler = _stepped(1)
    restored: dict = {}
    assert restore_checkpoint(tmp_path, fresh, fresh_optimizer, fresh_scheduler, extra_tensors=restored) == {"epoch": 2}
    assert set(restored) == set(extra) and torch.equal(restored["average/conv.weight"], extra["average/conv.weight"])
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    with pytest.raises(ValueError, match="reserved prefix"):
        save_checkpoint(tmp_path, model, optimizer, scheduler, {"epoch": 3},
                        extra_tensors={"model/x": torch.zeros(1)})
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
