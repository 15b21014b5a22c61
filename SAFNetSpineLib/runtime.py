"""Runtime policy: which device, which numeric precision, which memory layout, what the CPU can do.

Everything that runs a network (segmenting, training, cross-validation, fine-tuning,
evaluation) asks this module, so each choice is made in one place:

- :func:`resolve_device`: ``"auto"`` is the first of cuda, mps, cpu; an explicit device
  this machine does not have is a :class:`SpineInputError`, before any work is done.
- :func:`resolve_precision`: what ``"auto"`` precision means, per purpose (the table
  below is the only definition), and which (device, precision) pairs are refused.
- :func:`autocast_context` / :func:`autocast_factory`: the autocast for a precision.
- :func:`memory_format`: channels_last_3d on CPU (oneDNN's fast layout), contiguous elsewhere.
- :func:`cpu_has_native_bf16`: whether the CPU computes bf16 natively.
- :func:`describe_devices`: all of the above as JSON-able data, for the Slicer module.

``"auto"`` precision, by purpose and device type (measured choices, see RESULTS.md)::

    purpose     cuda                                mps    cpu
    inference   fp16                                fp32   fp32 (bf16 only if CPU_BF16_BY_DEFAULT
                                                           and cpu_has_native_bf16())
    training    bf16 if the GPU supports it,        fp32   bf16 if cpu_has_native_bf16()
                else fp16 (with loss scaling)              (training steps 1.0-1.8x faster at
                                                           widths 16-32, same convergence on
                                                           phantoms: RESULTS.md), else fp32

Batch-norm folding and the oneDNN convolutions belong to the models
(:func:`SAFNetSpineLib.models.prepare.prepare_for_inference`).

torch is imported at the top: every caller of this module runs a network anyway. The
Slicer GUI process never imports it; it learns devices through the CLI's child process.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from SAFNetSpineLib.errors import SpineInputError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
Purpose = Literal["inference", "training"]

#: CPU flags of native bf16 arithmetic (x86). Without them oneDNN emulates bf16,
#: which is slower than fp32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

#: Whether ``--precision auto`` may pick bf16 for inference on a CPU with native bf16.
#: Issue 2's rule: only where bf16 label maps agree with fp32 ones (Dice >= 0.99) on real
#: cases (Testing/benchmarks/bench_precision_agreement.py, the 8 held-out real cases). The
#: weights bundled 2026-12-07 agree (0.997-0.999 on a CPU with native bf16), but bf16 saves
#: about 0.1 s of a 1.5-2.6 s segment and would make label maps, and flags near a threshold,
#: depend on the CPU; so the CPU default stays fp32 and bf16 is opt-in (RESULTS.md).
CPU_BF16_BY_DEFAULT = False


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(preference: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device to run on.

    Args:
        preference: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N" or "mps".
        local_rank: Index of this process on its node (training under torchrun): with it,
            "auto" and "cuda" pick GPU ``local_rank % count``; without it, "auto" and
            "cuda" mean the current CUDA device (no index).

    Raises:
        SpineInputError: unknown device string, or a GPU this machine does not have.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda") if local_rank is None else torch.device(
                "cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    subject = f"device {preference}"
    try:
        device = torch.device(preference)
    except (RuntimeError, ValueError):
        raise SpineInputError(subject, "unknown device (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpineInputError(subject, "no CUDA GPU: CUDA is not available to this PyTorch build; "
                                           "use --device auto or cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SpineInputError(subject, f"only {count} CUDA device(s) here")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank % count)
    elif device.type == "mps" and not _mps_available():
        raise SpineInputError(subject, "Apple MPS is not available here; use --device auto or cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise SpineInputError(subject, "unknown device (use auto, cpu, cuda, cuda:N or mps)")
    return device


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


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this CPU computes bf16 natively (x86 avx512_bf16 or amx_bf16 flag).

    Only Linux x86 is detected; elsewhere the answer is False (fp32 stays the CPU default).
    """
    if platform.system() != "Linux":
        return False
    return bool(cpu_flags(cpuinfo) & BF16_CPU_FLAGS)


#: Environment switch: "0" makes "auto" precision behave as on a CPU without native bf16
#: (fp32 on the CPU). For checking, on a bf16 machine, that everything also holds without
#: bf16 (``SAFNETSPINE_CPU_BF16=0 make test``); not a user setting.
CPU_BF16_SWITCH = "SAFNETSPINE_CPU_BF16"


def cpu_bf16_in_use() -> bool:
    """Whether "auto" precision may use this CPU's native bf16 (see :data:`CPU_BF16_SWITCH`)."""
    return os.environ.get(CPU_BF16_SWITCH, "1") != "0" and cpu_has_native_bf16()


def default_precision(device: str | torch.device, purpose: Purpose = "inference") -> Precision:
    """What "auto" precision means for ``purpose`` on ``device`` (see the module's table)."""
    device_type = torch.device(device).type
    if device_type == "cuda":
        if purpose == "training":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16"
    if device_type == "cpu" and purpose == "inference" and CPU_BF16_BY_DEFAULT and cpu_bf16_in_use():
        return "bf16"
    if device_type == "cpu" and purpose == "training" and cpu_bf16_in_use():
        return "bf16"
    return "fp32"


def check_precision(device: str | torch.device, precision: str) -> Precision:
    """Validate a (device, precision) pair for inference; fp16 is for GPUs (cuda, mps) only.

    Raises:
        ValueError: unknown precision, or fp16 on a CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type not in ("cuda", "mps"):
        raise ValueError(f"precision fp16 needs a GPU (cuda or mps), not {torch.device(device).type}")
    return precision  # type: ignore[return-value]


def resolve_precision(requested: str, device: str | torch.device, purpose: Purpose = "inference") -> Precision:
    """The precision to run at: ``requested``, or for "auto" the table's choice.

    Inference refuses fp16 on a CPU; training accepts any of :data:`PRECISIONS` (CPU
    autocast runs fp16, with loss scaling).

    Raises:
        SpineInputError: unknown precision, or (inference) fp16 on a CPU.
    """
    precision = default_precision(device, purpose) if requested == "auto" else requested
    try:
        if purpose == "inference":
            return check_precision(device, precision)
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    except ValueError as error:
        raise SpineInputError(None, f"--precision {requested}: {error}") from None
    return precision  # type: ignore[return-value]


def needs_loss_scaling(precision: str) -> bool:
    """True for fp16 training (gradients underflow without a GradScaler)."""
    return precision == "fp16"


def autocast_context(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` on ``device`` (bf16 or fp16), or a no-op for fp32.

    Raises:
        ValueError: unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def autocast_factory(device: str | torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A callable returning a fresh :func:`autocast_context` (for loops that enter it many times)."""
    autocast_context(device, precision)  # validate once, up front
    return lambda: autocast_context(device, precision)


def memory_format(device: str | torch.device, requested: str = "auto") -> torch.memory_format:
    """Tensor layout for the network's weights and inputs.

    Args:
        device: The device the network runs on.
        requested: "auto" (channels_last_3d on CPU, where oneDNN runs SAFNet up to 1.5x
            faster in fp32 and bf16; contiguous elsewhere), "channels_last" or "contiguous".
    """
    if requested == "channels_last" or (requested == "auto" and torch.device(device).type == "cpu"):
        return torch.channels_last_3d
    return torch.contiguous_format


def enable_cudnn_autotune(device: torch.device) -> None:
    """Let cuDNN pick the fastest convolution algorithms (fixed input sizes) on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def describe_devices() -> dict:
    """What this machine offers, as JSON-able data (the Slicer module asks a child process for it).

    Returns:
        {"auto": device type "auto" resolves to ("cuda", "mps" or "cpu"), "gpu_name": the
        CUDA GPU's name or None, "torch": torch version, "cuda": CUDA version of the torch
        build or None, "cpu_bf16": :func:`cpu_has_native_bf16`}.
    """
    auto = resolve_device("auto")
    return {
        "auto": auto.type,
        "gpu_name": torch.cuda.get_device_name(auto) if auto.type == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_bf16": cpu_has_native_bf16(),
    }
