"""L2-SP (training/anchor.py, TrainConfig.anchor_weight): the penalty's value, and that it holds fine-tuning near its start."""

from __future__ import annotations

import json

import pytest
import torch

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.training import TrainConfig, train
from SAFNetSpineLib.training.anchor import anchor_penalty, capture_anchor
from SAFNetSpineLib.weights import load_model


def test_penalty_is_zero_at_the_anchor_and_half_alpha_times_the_squared_distance_elsewhere():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    anchor = capture_anchor(net)
    assert float(anchor_penalty(net, anchor, 0.7).detach()) == 0.0
    with torch.no_grad():
        net[0].weight.add_(0.5)   # 6 entries moved by 0.5
        net[1].bias.sub_(2.0)     # 2 entries moved by 2
    expected = 0.5 * 0.7 * (6 * 0.25 + 2 * 4.0)
    assert float(anchor_penalty(net, anchor, 0.7).detach()) == pytest.approx(expected, rel=1e-6)
    assert float(anchor_penalty(net, anchor, 1.4).detach()) == pytest.approx(2 * expected, rel=1e-6)
    with torch.no_grad():
        net[1].bias.sub_(2.0)     # farther: grows with the square of the distance
    assert float(anchor_penalty(net, anchor, 0.7).detach()) == pytest.approx(0.5 * 0.7 * (1.5 + 2 * 16.0), rel=1e-6)


def test_penalty_gradient_points_back_to_the_anchor_and_is_fp32_for_bf16_weights():
    net = torch.nn.Linear(4, 1)
    anchor = capture_anchor(net)
    with torch.no_grad():
        net.weight.add_(0.25)
    anchor_penalty(net, anchor, 2.0).backward()
    assert torch.allclose(net.weight.grad, torch.full_like(net.weight, 0.5))  # alpha * (w - w0)
    assert torch.count_nonzero(net.bias.grad) == 0
    half = torch.nn.Linear(4, 1).to(torch.bfloat16)
    assert anchor_penalty(half, capture_anchor(half), 1.0).dtype == torch.float32


def _distance(folder, start) -> float:
    trained, _ = load_model(folder)
    reference, _ = load_model(start)
    with torch.no_grad():
        return sum(float(((a - b) ** 2).sum()) for a, b in zip(trained.parameters(), reference.parameters(),
                                                                strict=True))


def test_a_large_anchor_weight_keeps_fine_tuning_closer_to_its_start(small_phantoms, tmp_path, make_tiny_weights):
    cases = load_case_folder(small_phantoms)
    start = make_tiny_weights(tmp_path / "start", version="tiny-v1")
    common = dict(epochs=4, batch_size=1, lr=1e-2, augment=False, precision="fp32")
    free = train(TrainConfig(**common), cases[:3], [], tmp_path / "free", init_weights=start)
    held = train(TrainConfig(anchor_weight=100.0, **common), cases[:3], [], tmp_path / "held", init_weights=start)
    moved_free, moved_held = _distance(free.weights_dir, start), _distance(held.weights_dir, start)
    assert moved_free > 0
    assert moved_held < 0.5 * moved_free, (moved_held, moved_free)
    saved = json.loads((tmp_path / "held" / "train_config.json").read_text())
    assert saved["anchor_weight"] == 100.0 and TrainConfig.from_dict(saved) == held.config


def test_anchor_weight_is_validated_and_needs_init_weights(small_phantoms, tmp_path):
    for bad in (-1.0, float("nan")):
        with pytest.raises(SpineInputError, match="anchor_weight must be a number >= 0"):
            TrainConfig(anchor_weight=bad)
    config = TrainConfig(anchor_weight=0.1)
    assert TrainConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in TrainConfig().to_dict().items() if k != "anchor_weight"}
    assert TrainConfig.from_dict(older).anchor_weight == 0.0  # configs saved before the field load unanchored
    cases = load_case_folder(small_phantoms)
    with pytest.raises(SpineInputError, match="give init weights"):
        train(TrainConfig(epochs=1, width=8, augment=False, anchor_weight=0.1),
              cases[:1], [], tmp_path / "x")
