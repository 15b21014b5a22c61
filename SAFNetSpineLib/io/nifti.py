"""Catch truncated NIfTI files, which ITK's reader silently fills with zeros.

A partial download or a full disk leaves a NIfTI file whose voxel block is short.
ITK reads it anyway (padding zeros, with a warning we silence), and the network
would then segment half an image. The header says how many bytes must follow it, so
a cheap comparison catches this: the file size for ``.nii``, the gzip trailer (the
uncompressed size modulo 2**32) for ``.nii.gz``, falling back to counting the
decompressed bytes when the trailer disagrees.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError


def _expected_bytes(header: bytes) -> int | None:
    """Header + voxel bytes a NIfTI-1/2 header announces; None if it is not such a header."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    count = 1
    for n in dims[1:1 + max(0, min(int(dims[0]), 7))]:
        count *= max(int(n), 1)
    return max(offset, 348) + count * max(int(bitpix), 8) // 8


def check_nifti_complete(path: str | Path) -> None:
    """Refuse a NIfTI file whose voxel data is shorter than its header announces.

    Raises:
        SpineInputError: naming the file, if it is truncated.
    """
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    try:
        if compressed:
            with gzip.open(path, "rb") as stream:
                header = stream.read(540)
        else:
            with open(path, "rb") as stream:
                header = stream.read(540)
    except (OSError, EOFError, zlib.error):
        raise SpineInputError(path, "unreadable or corrupt NIfTI file") from None
    expected = _expected_bytes(header)
    if expected is None:
        return  # not a header we know: leave the verdict to ITK
    if not compressed:
        actual = path.stat().st_size
    else:
        with open(path, "rb") as raw:
            raw.seek(-4, 2)
            trailer = struct.unpack("<I", raw.read(4))[0]
        if trailer == expected % 2**32:
            return
        actual = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    actual += len(chunk)
        except (OSError, EOFError, zlib.error):
            pass  # a cut gzip stream: `actual` counts what could be read
    if actual < expected:
        raise SpineInputError(path, f"truncated NIfTI file ({actual} of {expected} bytes); re-export or re-copy it")
