"""Inference preparation: folded, oneDNN-routed models agree with the plain model."""

from __future__ import annotations

import pytest
import torch

from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.models.prepare import prepare_for_inference
from SAFNetSpineLib.runtime import autocast_context, memory_format


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_prepared_model_agrees_with_the_plain_model(precision):
    torch.manual_seed(0)
    model = build_model("safnet", width=16).eval()
    x = torch.randn(1, 1, 6, 32, 32)
    with torch.no_grad():
        expected = model(x)
        prepared = prepare_for_inference(model, "cpu", precision)
        assert prepared is model and not prepared.training
        with autocast_context("cpu", precision):
            logits = prepared(x.contiguous(memory_format=memory_format("cpu"))).float()
    tolerance = 1e-4 if precision == "fp32" else 0.1 * expected.abs().max().item()
    torch.testing.assert_close(logits, expected, atol=tolerance, rtol=0)
    # bf16 may blur logits, not the decision on most voxels
    agreement = (logits.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agreement > (0.999 if precision == "fp32" else 0.9)
