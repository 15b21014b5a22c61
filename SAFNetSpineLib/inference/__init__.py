"""Inference: weights + image Volume in, label Volume in the input's geometry out.

The torch-free parts (post-processing, level ordering, the output contract in
:mod:`.outputs`) import without torch; ``Segmenter``, ``SegmentationResult`` and
``segment_volume`` load :mod:`.segmenter` (and torch) on first use, so the Slicer GUI
process can ask :mod:`.outputs` for file names without loading torch.
"""

from SAFNetSpineLib.inference.levels import order_levels
from SAFNetSpineLib.inference.postprocess import (
    CLEANUPS,
    clean_up,
    keep_largest_component,
    structure_volumes_ml,
)

_FROM_SEGMENTER = ("Segmenter", "SegmentationResult", "segment_volume")

__all__ = ["Segmenter", "SegmentationResult", "segment_volume", "keep_largest_component", "structure_volumes_ml",
           "order_levels", "clean_up", "CLEANUPS"]


def __getattr__(name: str):
    if name in _FROM_SEGMENTER:
        from SAFNetSpineLib.inference import segmenter  # torch: only when a segmenter is asked for

        return getattr(segmenter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
