"""Inference: weights + image Volume in, label Volume in the input's geometry out."""

from SAFNetSpineLib.inference.levels import order_levels
from SAFNetSpineLib.inference.postprocess import (
    CLEANUPS,
    clean_up,
    keep_largest_component,
    structure_volumes_ml,
)
from SAFNetSpineLib.inference.segmenter import SegmentationResult, Segmenter, resolve_device

__all__ = ["Segmenter", "SegmentationResult", "resolve_device", "keep_largest_component", "structure_volumes_ml",
           "order_levels", "clean_up", "CLEANUPS"]
