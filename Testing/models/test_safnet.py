"""SAFNet: paper-size feature shapes, ablation switches, and the identities its speed-ups rely on."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.models.attention import ChannelAttention, PositionAttention
from SAFNetSpineLib.models.blocks import fold_batch_norms, resize_to
from SAFNetSpineLib.models.safnet import DimensionSplicing, SAFNet

PAPER_INPUT = (1, 1, 18, 256, 128)


@pytest.fixture(scope="module")
def paper_safnet() -> SAFNet:
    torch.manual_seed(0)
    return build_model("safnet").eval()


def test_factory_defaults_are_the_papers(paper_safnet):
    assert isinstance(paper_safnet, SAFNet)
    assert paper_safnet.width == 128
    assert paper_safnet.classifier[-1].out_channels == NUM_CLASSES == 20
    assert paper_safnet.extractor.stem[0].in_channels == 1
    assert paper_safnet.aspp is not None and paper_safnet.position_attention is not None
    assert paper_safnet.msf_low is not None


def test_encode_shapes_at_paper_width(paper_safnet):
    with torch.no_grad():
        low, mid, high = paper_safnet.encode(torch.randn(PAPER_INPUT))
    assert tuple(low.shape) == (1, 128, 18, 64, 32)
    assert tuple(mid.shape) == (1, 128, 18, 32, 16)
    assert tuple(high.shape) == (1, 128, 18, 16, 8)


def test_forward_at_paper_width_gives_finite_logits_on_the_input_grid(paper_safnet):
    with torch.no_grad():
        logits = paper_safnet(torch.randn(PAPER_INPUT))
    assert tuple(logits.shape) == (1, 20, 18, 256, 128)
    assert torch.isfinite(logits).all()


SWITCHES = ("use_aspp", "use_attention", "use_msf")
MODULE_PREFIX = {"use_aspp": "aspp.", "use_attention": "position_attention.", "use_msf": "msf_low."}


def _parameter_names(**switches) -> set[str]:
    return {name for name, _ in build_model("safnet", width=16, **switches).named_parameters()}


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=3)))
def test_each_switch_owns_exactly_its_modules_parameters(flags):
    switches = dict(zip(SWITCHES, flags, strict=True))
    names = _parameter_names(**switches)
    for switch, prefix in MODULE_PREFIX.items():
        assert any(n.startswith(prefix) for n in names) == switches[switch], (switch, switches)
    base = _parameter_names(use_aspp=False, use_attention=False, use_msf=False)
    assert base <= names
    assert (base == names) == (not any(flags))


def test_ablation_variants_run_and_differ():
    torch.manual_seed(1)
    x = torch.randn(1, 1, 4, 32, 32)
    variants = {  # the paper's ablation rows
        "base": dict(use_aspp=False, use_attention=False, use_msf=False),
        "+ASPP": dict(use_aspp=True, use_attention=False, use_msf=False),
        "+MSF": dict(use_aspp=False, use_attention=False, use_msf=True),
        "+SA": dict(use_aspp=False, use_attention=True, use_msf=False),
        "full": dict(use_aspp=True, use_attention=True, use_msf=True),
    }
    counts = {}
    for name, switches in variants.items():
        model = build_model("safnet", width=16, num_classes=5, **switches).eval()
        with torch.no_grad():
            assert tuple(model(x).shape) == (1, 5, 4, 32, 32), name
        counts[name] = sum(p.numel() for p in model.parameters())
    assert counts["base"] < min(counts["+ASPP"], counts["+MSF"], counts["+SA"])
    assert counts["full"] == counts["+ASPP"] + counts["+MSF"] + counts["+SA"] - 2 * counts["base"]


def test_bad_width_and_bad_input_size_are_rejected():
    with pytest.raises(ValueError, match="multiple of 8"):
        build_model("safnet", width=12)
    model = build_model("safnet", width=8)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 1, 4, 40, 32))


def test_dimension_splicing_equals_concatenation_then_one_conv():
    torch.manual_seed(2)
    c, out = 8, 6
    splice = DimensionSplicing(c, out).eval()
    splice.norm.running_mean.uniform_(-0.5, 0.5)
    splice.norm.running_var.uniform_(0.5, 2.0)
    low, mid, high = torch.randn(2, c, 3, 16, 8), torch.randn(2, c, 3, 8, 4), torch.randn(2, c, 3, 4, 2)
    gate = torch.sigmoid(high.mean(dim=(2, 3, 4), keepdim=True))
    size = (3, 16, 8)
    up = dict(mode="trilinear", align_corners=False)
    concatenated = torch.cat(
        [F.interpolate(high, size=size, **up), low * gate, F.interpolate(mid * gate, size=size, **up)], dim=1
    )
    weight = torch.cat([splice.project[level].weight for level in ("high", "low", "mid")], dim=1)
    expected = torch.relu(splice.norm(F.conv3d(concatenated, weight)))
    with torch.no_grad():
        torch.testing.assert_close(splice(low, mid, high), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_position_and_channel_attention_match_the_danet_formulas(channels_last):
    torch.manual_seed(3)
    x = torch.randn(2, 16, 3, 4, 5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    pam, cam = PositionAttention(16, gamma_init=0.7), ChannelAttention(gamma_init=0.3)
    flat = x.reshape(2, 16, -1)  # (B, C, N)
    q, k, v = (conv(x).reshape(2, conv.out_channels, -1) for conv in (pam.query, pam.key, pam.value))
    affinity = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)
    expected_pam = 0.7 * torch.einsum("bcj,bij->bci", v, affinity) + flat
    gram = torch.einsum("bin,bjn->bij", flat, flat)
    weights = torch.softmax(gram.amax(-1, keepdim=True) - gram, dim=-1)
    expected_cam = 0.3 * torch.einsum("bij,bjn->bin", weights, flat) + flat
    with torch.no_grad():
        torch.testing.assert_close(pam(x).reshape(2, 16, -1), expected_pam, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cam(x).reshape(2, 16, -1), expected_cam, atol=1e-4, rtol=1e-5)


def test_in_plane_resize_shortcut_equals_trilinear():
    x = torch.randn(2, 5, 3, 4, 6)
    expected = F.interpolate(x, size=(3, 16, 12), mode="trilinear", align_corners=False)
    shortcut = resize_to(x.contiguous(memory_format=torch.channels_last_3d), (3, 16, 12))
    assert shortcut.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(shortcut, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(resize_to(x, (6, 8, 12)), F.interpolate(x, size=(6, 8, 12), mode="trilinear"))


def test_folding_batch_norms_keeps_the_output():
    torch.manual_seed(4)
    model = build_model("safnet", width=16)
    model.train()
    with torch.no_grad():  # a few training-mode passes give non-trivial running statistics
        for _ in range(3):
            model(torch.randn(2, 1, 4, 32, 32) * 3 + 1)
    model.eval()
    x = torch.randn(1, 1, 4, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batch_norms(model)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in model.extractor.modules())
    torch.testing.assert_close(folded, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model.train())


def test_refine_head_starts_as_the_network_without_it_and_can_learn():
    torch.manual_seed(0)
    base = build_model("safnet", width=16).eval()
    refined = build_model("safnet", width=16, refine=8).eval()
    missing, unexpected = refined.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refine.") for k in missing)
    x = torch.randn(1, 1, 4, 64, 32)
    with torch.no_grad():
        assert torch.allclose(refined(x), base(x), atol=1e-5)  # the correction starts at zero
    refined.train()
    refined(x).square().mean().backward()
    assert refined.refine.out.weight.grad.abs().sum() > 0  # ... and is trained
    refined.refine.out.weight.data.normal_(0, 0.1)
    with torch.no_grad():
        assert not torch.allclose(refined.eval()(x), base(x), atol=1e-3)  # and then changes the output
