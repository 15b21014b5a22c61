"""`Segmenter`: load weights once, segment many volumes.

Steps per volume: preprocess to the network grid (18 x 256 x 128, LR/SI/AP), run the
network (optionally also on the left-right mirrored input, and over an ensemble of
weight folders, averaging softmax probabilities), map the probabilities back onto the
input's exact grid (linear interpolation, then argmax), and clean up: by default the
levels are put in anatomical order and fragments removed (see inference.levels).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.postprocess import CLEANUPS, DEFAULT_CLEANUP, clean_up, structure_volumes_ml
from SAFNetSpineLib.models.precision import (
    autocast_context,
    check_precision,
    default_precision,
    input_memory_format,
    prepare_for_inference,
)
from SAFNetSpineLib.preprocessing import PreprocessConfig, preprocess_image, restore_labels
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import load_model


def resolve_device(name: str = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" | "cuda:N" | "mps" to a torch device (auto: cuda, then mps, then cpu).

    Raises:
        SpineInputError: a GPU was asked for but none is available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpineInputError(None, f"--device {name}: no CUDA GPU is available to this PyTorch build")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SpineInputError(None, "--device mps: Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SpineInputError(None, f"unknown device {name!r} (use auto, cpu, cuda or mps)") from None


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns.

    Attributes:
        labels: Label map on the input's exact grid (ids from the label table).
        volumes_ml: Volume (mL) of every structure found, by short name.
        timings_s: Seconds per stage (preprocess, network, postprocess, restore).
    """

    labels: Volume
    volumes_ml: dict[str, float]
    timings_s: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Segment spine MR volumes with one model or an ensemble.

    Args:
        weights_dirs: One or more weights folders (an ensemble when several). They must
            share the preprocessing configuration.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto" (fp16 on CUDA, fp32 elsewhere; see models.precision.default_precision),
            "fp32", "bf16" or "fp16" (autocast).
        tta: Also run on the left-right mirrored input and average.
        cleanup: Post-processing, one of postprocess.CLEANUPS: "levels" (names in
            anatomical order, fragments removed; see inference.levels), "largest"
            (largest component per label) or "none".
    """

    def __init__(self, weights_dirs: list[str | Path], device: str = "auto", precision: str = "auto",
                 tta: bool = False, cleanup: str = DEFAULT_CLEANUP):
        if not weights_dirs:
            raise SpineInputError(None, "no weights folder given")
        self._configure(device, precision, tta, cleanup)
        loaded = [load_model(folder, self.device) for folder in weights_dirs]
        self.models = [prepare_for_inference(model, self.device, self.precision) for model, _ in loaded]
        self.versions = [manifest.version for _, manifest in loaded]
        configs = [PreprocessConfig.from_dict(manifest.preprocess) for _, manifest in loaded]
        for folder, config in zip(weights_dirs, configs, strict=True):
            if config != configs[0]:
                raise SpineInputError(folder, "ensemble members use different preprocessing")
        self.preprocess_config = configs[0]

    @classmethod
    def for_model(cls, model: torch.nn.Module, preprocess: PreprocessConfig, device: str | torch.device = "cpu",
                  precision: str = "fp32", cleanup: str = DEFAULT_CLEANUP, version: str = "in memory") -> Segmenter:
        """Wrap a network already in memory (e.g. during training or evaluation).

        The model is used as it is (put in eval mode, not folded or moved): the caller
        keeps training it afterwards.
        """
        self = cls.__new__(cls)
        self._configure(str(device), precision, False, cleanup)
        self.models = [model.eval()]
        self.versions = [version]
        self.preprocess_config = preprocess
        return self

    def _configure(self, device: str, precision: str, tta: bool, cleanup: str) -> None:
        if cleanup not in CLEANUPS:
            raise SpineInputError(None, f"--cleanup {cleanup}: must be one of {', '.join(CLEANUPS)}")
        self.device = resolve_device(device)
        try:
            self.precision = check_precision(
                self.device, default_precision(self.device) if precision == "auto" else precision)
        except ValueError as error:
            raise SpineInputError(None, f"--precision {precision}: {error}") from None
        self.tta = tta
        self.cleanup = cleanup

    @property
    def version(self) -> str:
        """Version name(s) of the model(s), joined with '+'."""
        return "+".join(self.versions)

    @torch.inference_mode()
    def predict_probabilities(self, network_input: np.ndarray) -> torch.Tensor:
        """Mean softmax over models (and the mirrored input with TTA).

        Args:
            network_input: Preprocessed image, shape (D, H, W), float32.

        Returns:
            Probabilities, shape (C, D, H, W), float32 on the CPU.
        """
        x = torch.from_numpy(np.ascontiguousarray(network_input))[None, None]
        x = x.to(self.device, memory_format=input_memory_format(self.device, self.precision))
        inputs = [(x, False)] + ([(torch.flip(x, dims=[2]), True)] if self.tta else [])
        total = None
        for model in self.models:
            for tensor, mirrored in inputs:
                with autocast_context(self.device, self.precision):
                    logits = model(tensor)
                probs = torch.softmax(logits.float(), dim=1)
                if mirrored:
                    probs = torch.flip(probs, dims=[2])
                total = probs if total is None else total + probs
        return (total / (len(self.models) * len(inputs)))[0].cpu()

    def segment(self, image: Volume, progress=None) -> SegmentationResult:
        """Segment one image volume.

        Args:
            image: The MR image (any orientation, spacing, size).
            progress: Optional callable(stage, fraction, message).

        Returns:
            SegmentationResult with the label map on the input's exact grid.
        """
        report = progress or (lambda *a, **k: None)
        timings = {}
        start = time.perf_counter()
        report("preprocess", 0.05, "reorienting and resampling")
        network_input, grid = preprocess_image(image, self.preprocess_config)
        timings["preprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        report("inference", 0.15, f"running {self.version} on {self.device.type}")
        probabilities = self.predict_probabilities(network_input)
        timings["network"] = time.perf_counter() - start

        start = time.perf_counter()
        report("restore", 0.85, "mapping back to the input geometry")
        restored = restore_labels(probabilities.numpy(), grid, image)
        timings["restore"] = time.perf_counter() - start

        start = time.perf_counter()
        if self.cleanup != "none":
            report("postprocess", 0.92, f"clean-up: {self.cleanup}")
            restored = clean_up(restored, self.cleanup)
        timings["postprocess"] = time.perf_counter() - start
        return SegmentationResult(restored, structure_volumes_ml(restored), {k: round(v, 4) for k, v in timings.items()})
