"""Catch truncated NIfTI files, which ITK's reader silently fills with zeros.

A partial download or a full disk leaves a NIfTI file whose voxel block is short.
ITK reads it anyway (padding zeros, with a warning we silence), and the network
would then segment half an image. The header says how many bytes must follow it, so
a cheap comparison catches this: the file size for ``.nii``, the gzip trailer (the
uncompressed size modulo 2**32) for ``.nii.gz``, falling back to counting the
decompressed bytes when the trailer disagrees.
"""

from __future__ import annotations

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


def gzip_content_size(path: str | Path, offset: int = 0) -> tuple[int, str | None]:
    """Bytes the gzip data from ``offset`` to the end of the file decompresses to, and what cut it short.

    Streams through every gzip member with zlib, which checks each member's CRC-32 and
    length, so a cut or damaged stream is told apart from a complete one; the count
    includes what could be decompressed before the damage.

    Args:
        path: The file.
        offset: Where the gzip data starts (0 for ``.gz``; after the header for a NRRD).

    Returns:
        (decompressed bytes, None if complete else a few words on what is wrong).
    """
    count = 0
    decompressor = zlib.decompressobj(wbits=31)
    started = False
    with open(path, "rb") as raw:
        raw.seek(offset)
        try:
            while chunk := raw.read(1 << 20):
                while chunk:
                    started = True
                    count += len(decompressor.decompress(chunk))
                    if not decompressor.eof:
                        break
                    chunk = decompressor.unused_data  # the next gzip member, if any
                    if chunk:
                        decompressor = zlib.decompressobj(wbits=31)
        except zlib.error as error:
            return count, f"corrupt gzip data ({error})"
    if not started:
        return 0, "no gzip data"
    if not decompressor.eof:
        return count, "the gzip stream ends early"
    return count, None


def _read_header(path: Path, compressed: bool) -> bytes:
    if compressed:
        # zlib directly: gzip.open raises on a stream cut within the first block.
        decompressor = zlib.decompressobj(wbits=31)
        with open(path, "rb") as raw:
            return decompressor.decompress(raw.read(1 << 16), 540)
    with open(path, "rb") as stream:
        return stream.read(540)


def nifti_sizes(path: str | Path) -> tuple[int, int] | None:
    """(bytes present, bytes the header announces) of a NIfTI file, uncompressed.

    Returns:
        None when the file does not start with a NIfTI-1/2 header.

    Raises:
        OSError, zlib.error: an unreadable file or a gzip stream broken within its header.
    """
    path = Path(path)
    compressed = path.name.lower().endswith(".gz") or _starts_with_gzip_magic(path)
    expected = _expected_bytes(_read_header(path, compressed))
    if expected is None:
        return None
    actual = gzip_content_size(path)[0] if compressed else path.stat().st_size
    return actual, expected


def _starts_with_gzip_magic(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def check_nifti_complete(path: str | Path) -> None:
    """Refuse a NIfTI file whose voxel data is shorter than its header announces.

    Raises:
        SpineInputError: naming the file, if it is truncated.
    """
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    try:
        header = _read_header(path, compressed)
    except (OSError, zlib.error):
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
        actual = gzip_content_size(path)[0]
    if actual < expected:
        raise SpineInputError(path, f"truncated NIfTI file ({actual} of {expected} bytes); re-export or re-copy it")
