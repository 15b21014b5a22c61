"""SAFNet preprocessing (reorient, AP crop, resize, z-score) and its exact inverse."""

from SAFNetSpineLib.preprocessing.config import PreprocessConfig
from SAFNetSpineLib.preprocessing.grid import NetworkGrid
from SAFNetSpineLib.preprocessing.orientation import (
    match_network_axes,
    permute_axes,
    reorient_to_network_axes,
)
from SAFNetSpineLib.preprocessing.pipeline import preprocess_image, preprocess_label
from SAFNetSpineLib.preprocessing.restore import restore_labels

__all__ = [
    "NetworkGrid",
    "PreprocessConfig",
    "match_network_axes",
    "permute_axes",
    "preprocess_image",
    "preprocess_label",
    "reorient_to_network_axes",
    "restore_labels",
]
