"""Reading and writing volumes with exact geometry, and the checks that guard them."""

from SAFNetSpineLib.io.seg_nrrd import read_seg_nrrd, write_seg_nrrd
from SAFNetSpineLib.io.validation import check_image, check_size, check_writable_dir
from SAFNetSpineLib.io.volume_io import read_volume, write_volume

__all__ = [
    "check_image",
    "check_size",
    "check_writable_dir",
    "read_seg_nrrd",
    "read_volume",
    "write_seg_nrrd",
    "write_volume",
]
