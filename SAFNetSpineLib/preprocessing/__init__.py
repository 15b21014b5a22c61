"""SAFNet preprocessing (reorient, AP crop, resize, z-score) and its exact inverse.

The names below load their module on first use: :mod:`.config` is light, the
pipeline needs SimpleITK and scipy, and the command line's parser only needs the config.
"""

from SAFNetSpineLib.lazy import lazy_attributes

_WHERE = {
    "PreprocessConfig": "config",
    "NetworkGrid": "grid",
    "match_network_axes": "orientation",
    "permute_axes": "orientation",
    "reorient_to_network_axes": "orientation",
    "preprocess_image": "pipeline",
    "preprocess_label": "pipeline",
    "restore_labels": "restore",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_attributes(__name__, _WHERE)
