"""Shared blocks: CBR padding, residual shapes, and the oneDNN convolution used for inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from SAFNetSpineLib.models.blocks import (
    ASPP,
    ConvNormAct,
    OneDNNConv3d,
    ResidualBlock,
    use_onednn_convolutions,
)


@pytest.mark.parametrize(
    ("stride", "dilation"), [((1, 1, 1), (1, 1, 1)), ((1, 2, 2), (1, 1, 1)), ((1, 1, 1), (1, 4, 4)), (1, 2)]
)
def test_onednn_convolution_equals_the_reference(stride, dilation):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 5, 3, stride=stride, padding=dilation, dilation=dilation)
    x = torch.randn(1, 6, 5, 12, 10)  # small enough for PyTorch's own heuristic to avoid oneDNN
    expected = F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    model = use_onednn_convolutions(torch.nn.Sequential(conv))
    assert type(model[0]) is OneDNNConv3d
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model(x.contiguous(memory_format=torch.channels_last_3d)), expected, atol=1e-5, rtol=1e-5
        )
    # with gradients on, the standard path runs and backpropagates
    out = model(x.requires_grad_())
    out.sum().backward()
    assert x.grad is not None and model[0].weight.grad is not None


def test_use_onednn_convolutions_replaces_every_conv_and_keeps_weights():
    torch.manual_seed(1)
    net = torch.nn.Sequential(ConvNormAct(2, 8, 3), ResidualBlock(8, 8, stride=(1, 2, 2)), ASPP(8, 8, rates=(1, 2, 3)))
    net.eval()
    x = torch.randn(1, 2, 4, 16, 16)
    with torch.no_grad():
        expected = net(x)
        use_onednn_convolutions(net)
        converted = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
        assert converted and all(type(m) is OneDNNConv3d for m in converted)
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (3, (1, 4, 4)), (1, 1)])
def test_cbr_keeps_the_size_and_strides_round_up(kernel, dilation):
    x = torch.randn(1, 3, 5, 17, 9)
    assert ConvNormAct(3, 4, kernel, dilation=dilation)(x).shape == (1, 4, 5, 17, 9)
    assert ConvNormAct(3, 4, kernel, stride=(1, 2, 2))(x).shape == (1, 4, 5, 9, 5)
    assert ResidualBlock(3, 6, stride=(1, 2, 2))(x).shape == (1, 6, 5, 9, 5)
