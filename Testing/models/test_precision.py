"""CPU bf16 detection, autocast contexts and inference preparation."""

from __future__ import annotations

import contextlib
import platform

import pytest
import torch

from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.models.precision import (
    autocast_context,
    check_precision,
    cpu_flags,
    cpu_supports_bf16,
    default_precision,
    input_memory_format,
    prepare_for_inference,
)

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 avx avx2 {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 {extra}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", False), ("avx512f avx512bw", False), ("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True)],
)
def test_bf16_is_detected_from_cpu_flags(tmp_path, extra, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    assert "avx2" in cpu_flags(cpuinfo)
    assert cpu_flags(cpuinfo) == frozenset(("fpu vme sse sse2 avx avx2 " + extra).split())
    if platform.system() == "Linux":
        assert cpu_supports_bf16(cpuinfo) is expected
    else:
        assert cpu_supports_bf16(cpuinfo) is False


def test_unreadable_cpuinfo_means_no_bf16(tmp_path):
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_supports_bf16(tmp_path / "missing") is False


def test_precision_validation():
    # bf16 did not agree with fp32 on real cases (Dice < 0.99), so the CPU default is fp32 everywhere.
    assert default_precision("cpu") == "fp32"
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        check_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        check_precision("cpu", "int8")
    assert input_memory_format("cpu", "fp32") == torch.channels_last_3d


def test_autocast_contexts_on_cpu():
    assert isinstance(autocast_context("cpu", "fp32"), contextlib.nullcontext)
    conv = torch.nn.Conv3d(2, 3, 3)
    x = torch.randn(1, 2, 4, 4, 4)
    with torch.no_grad(), autocast_context("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with torch.no_grad(), autocast_context("cpu", "fp32"):
        assert conv(x).dtype == torch.float32


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
            logits = prepared(x.contiguous(memory_format=input_memory_format("cpu", precision))).float()
    tolerance = 1e-4 if precision == "fp32" else 0.1 * expected.abs().max().item()
    torch.testing.assert_close(logits, expected, atol=tolerance, rtol=0)
    # bf16 may blur logits, not the decision on most voxels
    agreement = (logits.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agreement > (0.999 if precision == "fp32" else 0.9)
