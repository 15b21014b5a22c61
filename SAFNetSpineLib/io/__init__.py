"""Reading and writing volumes with exact geometry, and the checks that guard them.

The names below load their module (and SimpleITK, about a second) on first use, so
that importing a light submodule (:mod:`.validation`, :mod:`.nifti`) or building the
command line's parser does not pay for ITK.
"""

from SAFNetSpineLib.lazy import lazy_attributes

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

__getattr__ = lazy_attributes(__name__, _WHERE)
