"""Forward and backward over every registered model (timm test_models style)."""

from __future__ import annotations

import pytest
import torch

from SAFNetSpineLib.models import build_model, list_models

#: Smallest widths that keep every module (ASPP, attention, MSF) non-trivial.
SMALL_WIDTH = {"safnet": 16}
DEFAULT_SMALL_WIDTH = 8


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_no_nan_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, width=SMALL_WIDTH.get(name, DEFAULT_SMALL_WIDTH), in_channels=1, num_classes=20)
    model.train()
    x = torch.randn(2, 1, 6, 32, 32)
    logits = model(x)
    assert tuple(logits.shape) == (2, 20, 6, 32, 32)
    assert torch.isfinite(logits).all()
    target = torch.randint(0, 20, (2, 6, 32, 32))
    torch.nn.functional.cross_entropy(logits, target).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name}: {param_name} has an all-zero gradient"


@pytest.mark.parametrize("name", list_models())
def test_eval_is_deterministic_and_keeps_odd_depths(name):
    model = build_model(name, width=SMALL_WIDTH.get(name, DEFAULT_SMALL_WIDTH), num_classes=3).eval()
    x = torch.randn(1, 1, 5, 32, 16)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert tuple(first.shape) == (1, 3, 5, 32, 16)
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("name", list_models())
def test_width_scales_the_parameter_count(name):
    small = sum(p.numel() for p in build_model(name, width=8).parameters())
    large = sum(p.numel() for p in build_model(name, width=16).parameters())
    assert large > 2 * small
