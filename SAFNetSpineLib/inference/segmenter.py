"""Segmenting a volume: `segment_volume` (networks in memory) and `Segmenter` (load weights once, segment many).

Steps per volume: preprocess to the network grid (18 x 256 x 128, LR/SI/AP), run the
network (optionally also on the left-right mirrored input, and over an ensemble of
weight folders, averaging softmax probabilities; on request also on the input turned in
its sagittal plane, blended row by row, see inference.turns), map the probabilities back onto the
input's exact grid (linear interpolation, then argmax), and clean up: by default specks,
fragments, misplaced sacrum pieces and discs detached below the spine are removed (see
inference.pieces). Then the levels are named by counting along the spine, the one namer,
with the network's probabilities as evidence, and the names judged (see inference.naming).
With the turned passes the outlines are the blend's, each named as the plain pass's
nearest structure of its kind: names and count are the plain pass's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.field_of_view import (
    DEFAULT_FIT_FOV,
    ensemble_range,
    field_of_view_check,
    fitted_preprocess,
    in_plane_fov_mm,
)
from SAFNetSpineLib.inference.naming import ClassEvidence, LevelHint, NamingResult, name_levels
from SAFNetSpineLib.inference.postprocess import CLEANUPS, DEFAULT_CLEANUP, clean_up, structure_volumes_ml
from SAFNetSpineLib.inference.turns import DEFAULT_TURNS, transfer_names, turned_probabilities
from SAFNetSpineLib.inference.windows import paste, segment_in_windows, window_boxes
from SAFNetSpineLib.models.prepare import prepare_for_inference
from SAFNetSpineLib.preprocessing import PreprocessConfig, preprocess_image, restore_labels
from SAFNetSpineLib.runtime import autocast_context, memory_format, resolve_device, resolve_precision
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.weights import load_model


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns.

    Attributes:
        labels: Label map on the input's exact grid (ids from the label table).
        volumes_ml: Volume (mL) of every structure found, by short name.
        timings_s: Seconds per stage (preprocess, network, postprocess, restore).
        naming: How the levels were named and how far the names can be trusted
            (inference.naming); None with ``naming=False``.
        field_of_view: The scan's in-plane field of view against the training scans'
            (inference.field_of_view: ``in_plane_mm``, ``trained_mm``, ``warning``); None
            from :func:`segment_volume` alone.
    """

    labels: Volume
    volumes_ml: dict[str, float]
    timings_s: dict[str, float] = field(default_factory=dict)
    naming: NamingResult | None = None
    field_of_view: dict | None = None


def predict_probabilities(models: Sequence[torch.nn.Module], network_input: np.ndarray, device: torch.device,
                          precision: str, tta: bool = False, turns: bool = False) -> torch.Tensor:
    """Mean softmax over models (and the mirrored input with TTA), with turned passes on request.

    Args:
        models: Networks on ``device``, in eval mode (an ensemble when several).
        network_input: Preprocessed image, shape (D, H, W), float32.
        device: Device of the models.
        precision: "fp32", "bf16" or "fp16" (see :func:`SAFNetSpineLib.runtime.resolve_precision`).
        tta: Also run on the left-right mirrored input (flipped along D) and average.
        turns: Also run on the input turned in its sagittal plane and blend row by row
            (:func:`~SAFNetSpineLib.inference.turns.turned_probabilities`; 5 passes instead of 1).

    Returns:
        Probabilities, shape (C, D, H, W), float32 on the CPU.
    """
    plain, blended = plain_and_turned(models, network_input, device, precision, tta, turns)
    return plain if blended is None else blended


@torch.inference_mode()
def plain_and_turned(models: Sequence[torch.nn.Module], network_input: np.ndarray, device: torch.device,
                     precision: str, tta: bool, turns: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(plain pass, blend of the turned passes or None without ``turns``): both (C, D, H, W) float32 on the CPU.

    Arguments as :func:`predict_probabilities`.
    """
    plain = _mean_probabilities(models, network_input, device, precision, tta)
    if not turns:
        return plain, None
    return plain, turned_probabilities(lambda turned: _mean_probabilities(models, turned, device, precision, tta),
                                       network_input, plain)


def _mean_probabilities(models: Sequence[torch.nn.Module], network_input: np.ndarray, device: torch.device,
                        precision: str, tta: bool) -> torch.Tensor:
    """Mean softmax over models (and the mirrored input with TTA): (C, D, H, W) float32 on the CPU."""
    x = torch.from_numpy(np.ascontiguousarray(network_input))[None, None]  # (1, 1, D, H, W)
    x = x.to(device, memory_format=memory_format(device))
    inputs = [(x, False)] + ([(torch.flip(x, dims=[2]), True)] if tta else [])
    total = None
    for model in models:
        for tensor, mirrored in inputs:
            with autocast_context(device, precision):
                logits = model(tensor)
            probs = torch.softmax(logits.float(), dim=1)
            if mirrored:
                probs = torch.flip(probs, dims=[2])
            total = probs if total is None else total + probs
    return (total / (len(models) * len(inputs)))[0].cpu()


def segment_volume(models: Sequence[torch.nn.Module], image: Volume, preprocess: PreprocessConfig,
                   device: torch.device, precision: str, *, tta: bool = False, turns: bool = DEFAULT_TURNS,
                   cleanup: str = DEFAULT_CLEANUP,
                   version: str = "in memory", progress=None, naming: bool = True,
                   level_hint: LevelHint | None = None) -> SegmentationResult:
    """Segment one image volume with networks already in memory.

    Args:
        models: Networks on ``device``, in eval mode (an ensemble when several); used as
            they are (not folded or moved).
        image: The MR image (any orientation, spacing, size).
        preprocess: The preprocessing the networks were trained with.
        device: Device of the models.
        precision: "fp32", "bf16" or "fp16", already checked for ``device``.
        tta: Also run on the left-right mirrored input and average.
        turns: Also run on the input turned in its sagittal plane, blended row by row (inference.turns):
            the outlines come from the blend, the names and the count from the plain pass
            (:func:`~SAFNetSpineLib.inference.turns.transfer_names`).
        cleanup: Post-processing, one of postprocess.CLEANUPS.
        version: Model name shown in the progress messages.
        progress: Optional callable(stage, fraction, message).
        naming: After the clean-up, name the levels by counting along the spine with the
            network's probabilities as evidence (inference.naming; part of "postprocess"
            in the timings). With ``cleanup="none"`` the labels are only judged, not
            renamed, unless a hint is given.
        level_hint: One structure named by the user (a point in RAS mm); every other is
            counted from it.

    Returns:
        SegmentationResult with the label map on the input's exact grid.
    """
    if cleanup not in CLEANUPS:
        raise SpineInputError(None, f"--cleanup {cleanup}: must be one of {', '.join(CLEANUPS)}")
    report = progress or (lambda *a, **k: None)
    timings = {}
    start = time.perf_counter()
    report("preprocess", 0.05, "reorienting and resampling")
    network_input, grid = preprocess_image(image, preprocess)
    timings["preprocess"] = time.perf_counter() - start

    start = time.perf_counter()
    report("inference", 0.15, f"running {version} on {device.type}" + (" (plain and turned passes)" if turns else ""))
    probabilities, blended = plain_and_turned(models, network_input, device, precision, tta, turns)
    timings["network"] = time.perf_counter() - start

    start = time.perf_counter()
    report("restore", 0.85, "mapping back to the input geometry")
    restored = restore_labels(probabilities.numpy(), grid, image)
    outline = None if blended is None else restore_labels(blended.numpy(), grid, image)
    timings["restore"] = time.perf_counter() - start

    start = time.perf_counter()
    if cleanup != "none":
        report("postprocess", 0.92, f"clean-up: {cleanup}")
        restored = clean_up(restored, cleanup)
        outline = None if outline is None else clean_up(outline, cleanup)
    named = None
    if naming or level_hint is not None:
        report("postprocess", 0.94, "naming the levels by counting")
        evidence = ClassEvidence(probabilities.numpy(), grid.affine_lps)
        named = name_levels(restored, evidence, level_hint, rename=cleanup != "none" or level_hint is not None)
        restored = named.labels
    if outline is not None:  # the plain pass's names and count, the turned passes' outlines
        restored = restored.with_array(transfer_names(restored.array, outline.array, restored.spacing),
                                       is_label=True)
        named = None if named is None else dataclasses.replace(named, labels=restored)
    timings["postprocess"] = time.perf_counter() - start
    return SegmentationResult(restored, structure_volumes_ml(restored), {k: round(v, 4) for k, v in timings.items()},
                              named)


class Segmenter:
    """Load weights once, then segment many volumes with one model or an ensemble (see :func:`segment_volume`).

    Args:
        weights_dirs: One or more weights folders (an ensemble when several). They must
            share the preprocessing configuration.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto" (fp16 on CUDA, fp32 elsewhere; see runtime.resolve_precision),
            "fp32", "bf16" or "fp16" (autocast).
        tta: Also run on the left-right mirrored input and average.
        turns: Also run on the input turned in its sagittal plane, blended row by row (inference.turns).
        cleanup: Post-processing, one of postprocess.CLEANUPS: "levels" (specks,
            fragments, misplaced sacrum pieces and detached discs removed; see inference.pieces), "largest"
            (largest component per label) or "none".
        fit_fov: Widen a field of view much smaller than the training scans' to the smallest of
            theirs before the grid is laid (inference.field_of_view.fitted_preprocess); segment one
            far larger in windows of the largest of theirs and keep the one with the sacrum
            (inference.windows).
    """

    def __init__(self, weights_dirs: list[str | Path], device: str = "auto", precision: str = "auto",
                 tta: bool = False, cleanup: str = DEFAULT_CLEANUP, turns: bool = DEFAULT_TURNS,
                 fit_fov: bool = DEFAULT_FIT_FOV):
        if not weights_dirs:
            raise SpineInputError(None, "no weights folder given")
        if cleanup not in CLEANUPS:
            raise SpineInputError(None, f"--cleanup {cleanup}: must be one of {', '.join(CLEANUPS)}")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, "inference")
        self.tta = tta
        self.turns = turns
        self.cleanup = cleanup
        self.fit_fov = fit_fov
        loaded = [load_model(folder, self.device) for folder in weights_dirs]
        self.models = [prepare_for_inference(model, self.device, self.precision) for model, _ in loaded]
        self.versions = [manifest.version for _, manifest in loaded]
        configs = [PreprocessConfig.from_dict(manifest.preprocess) for _, manifest in loaded]
        for folder, config in zip(weights_dirs, configs, strict=True):
            if config != configs[0]:
                raise SpineInputError(folder, "ensemble members use different preprocessing")
        self.preprocess_config = configs[0]
        self.trained_fov_mm = ensemble_range([manifest.trained_fov_mm for _, manifest in loaded])

    @property
    def version(self) -> str:
        """Version name(s) of the model(s), joined with '+'."""
        return "+".join(self.versions)

    def predict_probabilities(self, network_input: np.ndarray) -> torch.Tensor:
        """:func:`predict_probabilities` with this segmenter's models and settings."""
        return predict_probabilities(self.models, network_input, self.device, self.precision, self.tta,
                                     self.turns)

    def segment(self, image: Volume, progress=None, level_hint: LevelHint | None = None) -> SegmentationResult:
        """:func:`segment_volume` with this segmenter's models and settings (levels named by counting), and
        the scan's field of view against the training scans'. With ``fit_fov`` a field of view much smaller
        than theirs is widened first, and one much larger is segmented in windows (inference.windows)."""
        config = self.preprocess_config
        boxes = None
        if self.fit_fov:
            config = fitted_preprocess(image, config, self.trained_fov_mm)
            boxes = window_boxes(image, self.trained_fov_mm)
        if not boxes:
            result = segment_volume(self.models, image, config, self.device, self.precision,
                                    tta=self.tta, turns=self.turns, cleanup=self.cleanup, version=self.version,
                                    progress=progress, level_hint=level_hint)
            result.field_of_view = field_of_view_check(image, self.trained_fov_mm, config.min_fov_mm)
            return result
        return self._segment_windows(image, config, boxes, progress, level_hint)

    def _segment_windows(self, image: Volume, config: PreprocessConfig, boxes, progress,
                         level_hint: LevelHint | None) -> SegmentationResult:
        """:func:`~SAFNetSpineLib.inference.windows.segment_in_windows` with this segmenter's settings."""
        def segment_one(window: Volume, report) -> SegmentationResult:
            return segment_volume(self.models, window, config, self.device, self.precision, tta=self.tta,
                                  turns=self.turns, cleanup=self.cleanup, version=self.version, progress=report,
                                  level_hint=level_hint)

        result, box, network_s = segment_in_windows(image, boxes, segment_one, progress, level_hint)
        labels = paste(result.labels, box, image)
        naming = None if result.naming is None else dataclasses.replace(result.naming, labels=labels)
        timings = {**result.timings_s, "network": round(network_s, 4)}
        window_mm = in_plane_fov_mm(result.labels.shape, image.spacing, image.direction)  # the window's own extent
        field = field_of_view_check(image, self.trained_fov_mm, config.min_fov_mm, window_mm=window_mm)
        return SegmentationResult(labels, result.volumes_ml, timings, naming, field)
