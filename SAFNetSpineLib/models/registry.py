"""The one model registry: ``@register_model(name)`` and ``build_model(name, **config)``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model factory (a function, or the model class itself) under ``name``.

    A duplicate name is an error.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorator


def build_model(name: str, **config) -> nn.Module:
    """Build a registered model.

    Args:
        name: Registry name, e.g. "safnet".
        **config: Keyword arguments of the model's factory (width, in_channels,
            num_classes, ablation switches ...).

    Raises:
        KeyError: for an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**config)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)
