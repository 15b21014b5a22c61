"""Runtime policy: device resolution, precision per purpose, autocast, memory format, CPU bf16 detection."""

from __future__ import annotations

import contextlib
import json
import platform

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.runtime import (
    CPU_BF16_SWITCH,
    autocast_context,
    check_precision,
    cpu_bf16_in_use,
    cpu_flags,
    cpu_has_native_bf16,
    default_precision,
    describe_devices,
    memory_format,
    resolve_device,
    resolve_precision,
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
        assert cpu_has_native_bf16(cpuinfo) is expected
    else:
        assert cpu_has_native_bf16(cpuinfo) is False


def test_unreadable_cpuinfo_means_no_bf16(tmp_path):
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_precision_validation():
    # bf16 did not agree with fp32 on real cases (Dice < 0.99), so the CPU default is fp32 everywhere.
    assert default_precision("cpu") == "fp32"
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        check_precision("cpu", "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        check_precision("cpu", "int8")
    assert memory_format("cpu") == torch.channels_last_3d


def test_autocast_contexts_on_cpu():
    assert isinstance(autocast_context("cpu", "fp32"), contextlib.nullcontext)
    conv = torch.nn.Conv3d(2, 3, 3)
    x = torch.randn(1, 2, 4, 4, 4)
    with torch.no_grad(), autocast_context("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with torch.no_grad(), autocast_context("cpu", "fp32"):
        assert conv(x).dtype == torch.float32




def test_device_resolution_and_its_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("auto", local_rank=0).type in ("cpu", "cuda", "mps")
    for bad in ("tpu7", "cuda:x", "meta"):
        with pytest.raises(SpineInputError, match=f"device {bad}: unknown device"):
            resolve_device(bad)
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        assert resolve_device("cuda") == torch.device("cuda")
        assert resolve_device("cuda", local_rank=count + 1) == torch.device("cuda", (count + 1) % count)
        with pytest.raises(SpineInputError, match="CUDA device"):
            resolve_device(f"cuda:{count}")
    else:
        with pytest.raises(SpineInputError, match="no CUDA GPU"):
            resolve_device("cuda:0")
        assert resolve_device("auto", local_rank=3) == torch.device("cpu")


def test_auto_precision_per_purpose_and_refusals():
    assert resolve_precision("auto", "cpu", "inference") == "fp32"
    assert resolve_precision("auto", "cpu", "training") == ("bf16" if cpu_bf16_in_use() else "fp32")
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cpu", "training") == "fp16"  # CPU autocast trains fp16 with loss scaling
    with pytest.raises(SpineInputError, match="--precision fp16: precision fp16 needs a GPU"):
        resolve_precision("fp16", "cpu", "inference")
    with pytest.raises(SpineInputError, match="unknown precision"):
        resolve_precision("int8", "cpu", "training")
    if torch.cuda.is_available():
        assert default_precision("cuda", "inference") == "fp16"
        assert default_precision("cuda", "training") == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert default_precision("mps", "training") == "fp32"


def test_memory_format_choices():
    assert memory_format("cpu", "auto") == torch.channels_last_3d
    assert memory_format("cpu", "contiguous") == torch.contiguous_format
    assert memory_format("cuda", "auto") == torch.contiguous_format
    assert memory_format("cuda", "channels_last") == torch.channels_last_3d


def test_describe_devices_is_json_and_agrees_with_resolution():
    described = json.loads(json.dumps(describe_devices()))
    assert described["auto"] == resolve_device("auto").type
    assert described["torch"] == torch.__version__
    assert described["cpu_bf16"] is cpu_has_native_bf16()
    assert (described["gpu_name"] is None) == (described["auto"] != "cuda")


def test_the_bf16_switch_makes_auto_training_precision_that_of_a_cpu_without_bf16(monkeypatch):
    monkeypatch.setenv(CPU_BF16_SWITCH, "0")
    assert cpu_bf16_in_use() is False
    assert resolve_precision("auto", "cpu", "training") == "fp32"
    assert resolve_precision("bf16", "cpu", "training") == "bf16"  # an explicit choice still stands
    monkeypatch.setenv(CPU_BF16_SWITCH, "1")
    assert cpu_bf16_in_use() is cpu_has_native_bf16()
