"""Reading and writing volumes with exact geometry, and the checks that guard them.

The names below load their module (and SimpleITK, about a second) on first use, so
that importing a light submodule (:mod:`.validation`, :mod:`.nifti`) or building the
command line's parser does not pay for ITK.
"""

import importlib

_WHERE = {
    "read_seg_nrrd": "seg_nrrd",
    "write_seg_nrrd": "seg_nrrd",
    "check_image": "validation",
    "check_size": "validation",
    "check_writable_dir": "validation",
    "read_volume": "volume_io",
    "write_volume": "volume_io",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"SAFNetSpineLib.io.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
