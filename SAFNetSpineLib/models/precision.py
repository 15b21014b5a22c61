"""Numeric precision for inference: fp16 autocast on GPUs, fp32 on CPUs (bf16 on request).

Used by inference (and anything else that runs a model forward) as::

    precision = default_precision(device)
    model = prepare_for_inference(model, device, precision)
    with torch.no_grad(), autocast_context(device, precision):
        logits = model(x.to(device, memory_format=input_memory_format(device, precision)))
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from .blocks import fold_batch_norms, use_onednn_convolutions

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")

#: CPU flags of native bf16 arithmetic (x86). Without them oneDNN emulates bf16,
#: which is slower than fp32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """Feature flags of the first CPU in ``cpuinfo`` (Linux); empty when unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_supports_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this CPU computes bf16 natively (x86 avx512_bf16 or amx_bf16 flag).

    Only Linux x86 is detected; elsewhere the answer is False (fp32 stays the CPU default).
    """
    if platform.system() != "Linux":
        return False
    return bool(cpu_flags(cpuinfo) & BF16_CPU_FLAGS)


#: Whether ``--precision auto`` may pick bf16 on a CPU with native bf16. Issue 2's rule:
#: only where bf16 label maps agree with fp32 ones (Dice >= 0.99) on real cases. Measured
#: with the bundled weights on the 8 held-out real cases
#: (Testing/benchmarks/bench_precision_agreement.py): 6 of 8 cases fell below 0.99
#: (down to 0.93), so the CPU default stays fp32 and bf16 is opt-in.
CPU_BF16_BY_DEFAULT = False


def default_precision(device: str | torch.device) -> Precision:
    """fp16 on CUDA; on a CPU bf16 only if CPU_BF16_BY_DEFAULT and the CPU has native bf16; else fp32."""
    device_type = torch.device(device).type
    if device_type == "cuda":
        return "fp16"
    if device_type == "cpu" and CPU_BF16_BY_DEFAULT and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def check_precision(device: str | torch.device, precision: str) -> Precision:
    """Validate a (device, precision) pair; fp16 is for GPUs (cuda, mps) only.

    Raises:
        ValueError: unknown precision, or fp16 on a CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type not in ("cuda", "mps"):
        raise ValueError(f"precision fp16 needs a GPU (cuda or mps), not {torch.device(device).type}")
    return precision  # type: ignore[return-value]


def input_memory_format(device: str | torch.device, precision: str) -> torch.memory_format:
    """channels_last_3d on CPU (oneDNN's fast layout), contiguous elsewhere."""
    del precision  # the CPU layout helps fp32 and bf16 alike
    return torch.channels_last_3d if torch.device(device).type == "cpu" else torch.contiguous_format


def prepare_for_inference(model: nn.Module, device: str | torch.device, precision: str) -> nn.Module:
    """Put a model in eval mode on ``device``, ready for :func:`autocast_context`.

    On CPU the BatchNorms are folded into the convolutions, every convolution is routed
    to oneDNN (:class:`.blocks.OneDNNConv3d`) and the weights are put in channels_last_3d
    layout, which oneDNN runs fastest in both fp32 and bf16. Weights
    stay fp32 (autocast casts per operation). The model is changed in place, so do
    this after loading weights and never save the result.

    Returns:
        The same model object.
    """
    check_precision(device, precision)
    model.eval().to(device)
    if torch.device(device).type == "cpu":
        fold_batch_norms(model)
        use_onednn_convolutions(model)
        model.to(memory_format=torch.channels_last_3d)
    return model


def autocast_context(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` on ``device`` (bf16 or fp16), or a no-op for fp32."""
    device_type = torch.device(device).type
    check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)
