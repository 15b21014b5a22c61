"""Inference: weights + image Volume in, label Volume in the input's geometry out.

The torch-free parts (pieces and clean-up, naming, the output contract in
:mod:`.outputs`) import without torch; ``Segmenter``, ``SegmentationResult`` and
``segment_volume`` load :mod:`.segmenter` (and torch) on first use, so the Slicer GUI
process can ask :mod:`.outputs` for file names without loading torch.
"""

from SAFNetSpineLib.inference.pieces import clean_pieces, keep_largest_component
from SAFNetSpineLib.inference.postprocess import CLEANUPS, clean_up, structure_volumes_ml
from SAFNetSpineLib.lazy import lazy_attributes

_FROM_SEGMENTER = {name: "segmenter" for name in ("Segmenter", "SegmentationResult", "segment_volume")}

__all__ = ["Segmenter", "SegmentationResult", "segment_volume", "keep_largest_component", "structure_volumes_ml",
           "clean_pieces", "clean_up", "CLEANUPS"]

__getattr__ = lazy_attributes(__name__, _FROM_SEGMENTER)  # torch: only when a segmenter is asked for
