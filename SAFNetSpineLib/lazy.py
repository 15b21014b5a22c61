"""Package attributes that import their module on first use (PEP 562).

Packages whose modules pull in torch or SimpleITK expose those names lazily, so that
the command line's parser, ``--help`` and the Slicer GUI process import none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package``.

    Args:
        package: The package's dotted name (``__name__``).
        where: Attribute name -> name of the submodule that defines it ("volume_io").

    Returns:
        ``__getattr__(name)``: imports ``package.where[name]`` and returns its ``name``;
        AttributeError for any other name.
    """

    def __getattr__(name: str) -> object:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
