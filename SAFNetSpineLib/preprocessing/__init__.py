"""SAFNet preprocessing (reorient, AP crop, resize, z-score) and its exact inverse.

The names below load their module on first use: :mod:`.config` is light, the
pipeline needs SimpleITK and scipy, and the command line's parser only needs the config.
"""

import importlib

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


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"SAFNetSpineLib.preprocessing.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
