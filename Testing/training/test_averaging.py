"""Weight averaging: the running mean, its checkpoint round trip, and recomputed BatchNorm statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SAFNetSpineLib.training.averaging import CHECKPOINT_PREFIX, WeightAverage
from SAFNetSpineLib.training.cache import PreprocessedCase


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv3d(1, 3, 3, padding=1), torch.nn.BatchNorm3d(3), torch.nn.ReLU())


def _case(seed: int, offset: float) -> PreprocessedCase:
    image = np.random.default_rng(seed).normal(offset, 1.0, size=(4, 6, 5)).astype(np.float32)
    return PreprocessedCase(case_id=f"c{seed}", image=image, label=np.zeros((4, 6, 5), np.int64),
                            annotated=np.ones(20, bool))


def test_the_average_is_the_mean_of_the_folded_in_weights():
    torch.manual_seed(0)
    snapshots = [_net() for _ in range(3)]
    average = WeightAverage(snapshots[0])
    for net in snapshots:
        average.update(net)
    assert average.count == 3
    for name, _ in snapshots[0].named_parameters():
        expected = torch.stack([dict(n.named_parameters())[name].detach() for n in snapshots]).mean(0)
        assert torch.allclose(average.mean[name], expected, atol=1e-6), name
    assert not any("running" in name for name in average.mean)  # BatchNorm statistics are recomputed, not averaged


def test_checkpoint_tensors_round_trip():
    torch.manual_seed(1)
    net = _net()
    average = WeightAverage(net)
    average.update(net)
    average.update(_net())
    tensors = average.to_tensors()
    assert all(name.startswith(CHECKPOINT_PREFIX) for name in tensors)
    again = WeightAverage(net)
    assert again.load_tensors(tensors) and again.count == 2
    for name in average.mean:
        assert torch.equal(again.mean[name], average.mean[name])
    assert not WeightAverage(net).load_tensors({"model/0.weight": torch.zeros(1)})


def test_apply_to_loads_the_mean_and_recomputes_batchnorm_statistics():
    torch.manual_seed(2)
    net = _net()
    average = WeightAverage(net)
    average.update(net)
    target = _net()
    target[1].running_mean.fill_(123.0)
    cases = [_case(3, 0.0), _case(4, 5.0)]
    average.apply_to(target, cases, torch.device("cpu"))
    assert not target.training
    assert torch.equal(target[0].weight, net[0].weight)
    with torch.no_grad():
        features = [target[0](torch.from_numpy(c.image[None, None])) for c in cases]
    # Cumulative BatchNorm mean over equal-sized cases = mean of the per-case channel means.
    expected = torch.stack([f.mean(dim=(0, 2, 3, 4)) for f in features]).mean(0)
    assert torch.allclose(target[1].running_mean, expected, atol=1e-5)
    assert target[1].momentum == pytest.approx(0.1)


def test_apply_to_refuses_an_empty_average():
    with pytest.raises(ValueError, match="no epoch"):
        WeightAverage(_net()).apply_to(_net(), [], torch.device("cpu"))
