"""Preparing a trained network for fast inference: eval mode, folded batch norms, oneDNN on CPU.

Used by inference (and anything else that runs a model forward) with the runtime policy::

    precision = resolve_precision("auto", device)
    model = prepare_for_inference(model, device, precision)
    with torch.no_grad(), autocast_context(device, precision):
        logits = model(x.to(device, memory_format=memory_format(device)))

Device, precision and layout choices live in :mod:`SAFNetSpineLib.runtime`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from SAFNetSpineLib.runtime import check_precision, memory_format

from .blocks import fold_batch_norms, use_onednn_convolutions


def prepare_for_inference(model: nn.Module, device: str | torch.device, precision: str) -> nn.Module:
    """Put a model in eval mode on ``device``, ready for :func:`~SAFNetSpineLib.runtime.autocast_context`.

    On CPU the BatchNorms are folded into the convolutions, every convolution is routed
    to oneDNN (:class:`.blocks.OneDNNConv3d`) and the weights are put in the layout of
    :func:`~SAFNetSpineLib.runtime.memory_format` (channels_last_3d), which oneDNN runs
    fastest in both fp32 and bf16. Weights stay fp32 (autocast casts per operation). The
    model is changed in place, so do this after loading weights and never save the result.

    Returns:
        The same model object.

    Raises:
        ValueError: an unknown precision, or fp16 on a CPU.
    """
    check_precision(device, precision)
    model.eval().to(device)
    if torch.device(device).type == "cpu":
        fold_batch_norms(model)
        use_onednn_convolutions(model)
        model.to(memory_format=memory_format(device))
    return model
