"""Segmentation networks, all built through the one registry.

Importing this package imports every model module, so that each registers itself;
``build_model(name, **config)`` is then the only constructor the rest of the project uses.
"""

# Imported for their side effect: each module registers its factory.
from . import cfnet3d, deeplabv3plus3d, resunet3d, safnet, unet3d  # noqa: F401
from .registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
