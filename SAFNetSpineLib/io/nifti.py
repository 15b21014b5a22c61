"""What ITK's NIfTI reader would get wrong without a word, caught from the header and the raw voxels.

- **Truncated files.** A partial download or a full disk leaves a NIfTI file whose
  voxel block is short. ITK reads it anyway (padding zeros, with a warning we
  silence), and the network would then segment half an image. The header says how
  many bytes must follow it, so a cheap comparison catches this: the file size for
  ``.nii``, the gzip trailer (the uncompressed size modulo 2**32) for ``.nii.gz``,
  falling back to counting the decompressed bytes when the trailer disagrees.
- **Untrustworthy geometry.** ITK reads a voxel size (``pixdim``) of 0 or NaN as
  1 mm, and a header without the NIfTI magic as an Analyze 7.5 image (identity
  direction, origin 0); both are refused. A NIfTI header without any orientation
  (qform and sform codes 0) gets the same identity geometry: that is legal NIfTI, so
  it is read with a one-line warning.
- **NaN and infinite voxels.** The NIfTI library under ITK replaces them with 0, so
  they are looked for in the raw float voxels.
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError, SpineInputWarning

#: NIfTI-1 magic strings: one file (``n+1``) or a header beside an ``.img`` (``ni1``).
NIFTI1_MAGIC = (b"n+1\0", b"ni1\0")
#: NIfTI datatype codes of float voxels, as numpy types (those that can hold NaN).
FLOAT_DATATYPES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI-1/2 header that say how to find and place the voxels.

    Attributes:
        version: 1 or 2.
        endian: "<" or ">".
        dims: The ``dim`` field: number of dimensions, then the size of each.
        datatype: NIfTI datatype code (16 float32, 64 float64, 4 int16 ...).
        bitpix: Bits per voxel.
        pixdim: The ``pixdim`` field (pixdim[1..3]: voxel size in mm).
        vox_offset: Byte offset of the voxels.
        qform_code, sform_code: Which orientations the header holds (0: none).
        magic: The magic bytes (NIfTI-1: 4, NIfTI-2: 8).
    """

    version: int
    endian: str
    dims: tuple[int, ...]
    datatype: int
    bitpix: int
    pixdim: tuple[float, ...]
    vox_offset: int
    qform_code: int
    sform_code: int
    magic: bytes

    @property
    def voxel_count(self) -> int:
        """Voxels the header announces (every used axis counted at least once)."""
        count = 1
        for n in self.dims[1:1 + max(0, min(int(self.dims[0]), 7))]:
            count *= max(int(n), 1)
        return count

    @property
    def expected_bytes(self) -> int:
        """Header + voxel bytes the header announces."""
        return max(self.vox_offset, 348) + self.voxel_count * max(self.bitpix, 8) // 8


def parse_nifti_header(header: bytes) -> NiftiHeader | None:
    """Parse the first 540 bytes of a file; None if they are not a NIfTI-1/2 (or Analyze) header."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            return NiftiHeader(
                1, endian, struct.unpack(endian + "8h", header[40:56]), struct.unpack(endian + "h", header[70:72])[0],
                struct.unpack(endian + "h", header[72:74])[0], struct.unpack(endian + "8f", header[76:108]),
                _whole(struct.unpack(endian + "f", header[108:112])[0]), *struct.unpack(endian + "2h", header[252:256]),
                bytes(header[344:348]),
            )
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            return NiftiHeader(
                2, endian, struct.unpack(endian + "8q", header[16:80]), struct.unpack(endian + "h", header[12:14])[0],
                struct.unpack(endian + "h", header[14:16])[0], struct.unpack(endian + "8d", header[104:168]),
                struct.unpack(endian + "q", header[168:176])[0], *struct.unpack(endian + "2i", header[344:352]),
                bytes(header[4:12]),
            )
    return None


def _whole(value: float) -> int:
    """A float header field as a whole number; 0 when it is not finite (a damaged header)."""
    return int(value) if math.isfinite(value) else 0


def _expected_bytes(header: bytes) -> int | None:
    """Header + voxel bytes a NIfTI-1/2 header announces; None if it is not such a header."""
    parsed = parse_nifti_header(header)
    return None if parsed is None else parsed.expected_bytes


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


def _header_of(path: Path) -> NiftiHeader | None:
    compressed = path.name.lower().endswith(".gz") or _starts_with_gzip_magic(path)
    try:
        return parse_nifti_header(_read_header(path, compressed))
    except (OSError, zlib.error):
        raise SpineInputError(path, "unreadable or corrupt NIfTI file") from None


def check_nifti_geometry(path: str | Path) -> None:
    """Refuse a NIfTI header whose geometry ITK would make up; warn when it holds no orientation.

    Raises:
        SpineInputError: naming the file, for a missing NIfTI magic (ITK would read an
            Analyze 7.5 image: identity direction, origin 0), a voxel offset inside the
            header, or a voxel size (pixdim) that is 0, negative or not a number (ITK
            would use 1 mm, or flip an axis).

    Warns:
        SpineInputWarning: qform and sform codes both 0 (legal, but no orientation).
    """
    path = Path(path)
    header = _header_of(path)
    if header is None:
        return  # not a header we know: leave the verdict to ITK
    if header.version == 1 and header.magic not in NIFTI1_MAGIC:
        found = header.magic.decode("latin-1").rstrip("\0")
        raise SpineInputError(path, f"no NIfTI magic in the header (found {found!r}): it would be read as an "
                                    "Analyze 7.5 image with no orientation (identity direction, origin 0)")
    if header.version == 1 and header.magic == NIFTI1_MAGIC[0] and header.vox_offset < 352:
        raise SpineInputError(path, f"voxel offset (vox_offset) {header.vox_offset} in the header lies inside the "
                                    "header itself (at least 352): the header is damaged")
    axes = max(0, min(int(header.dims[0]), 3))
    for axis, size in enumerate(header.pixdim[1:1 + axes], start=1):
        if not math.isfinite(size) or size <= 0:
            raise SpineInputError(path, f"voxel size pixdim[{axis}] = {size:g} mm in the header; it must be a "
                                        "positive number (ITK would silently use 1 mm)")
    if header.qform_code == 0 and header.sform_code == 0:
        warnings.warn(SpineInputWarning(path, "no orientation in the NIfTI header (qform and sform codes are 0): "
                                              "read with identity direction and origin 0"), stacklevel=2)


def count_nifti_non_finite(path: str | Path) -> int:
    """NaN and infinite voxels in the raw float voxel block of a NIfTI file (0 for integer voxels).

    ITK's NIfTI reader turns them into 0, so they can only be counted from the file.
    Reads the voxels in chunks of at most 16 MiB.
    """
    path = Path(path)
    header = _header_of(path)
    if header is None or header.datatype not in FLOAT_DATATYPES:
        return 0
    dtype = np.dtype(header.endian + FLOAT_DATATYPES[header.datatype])
    remaining = header.voxel_count * dtype.itemsize
    bad = 0
    for chunk in _voxel_chunks(path, header.vox_offset, remaining, dtype.itemsize):
        values = np.frombuffer(chunk, dtype=dtype)
        bad += int(values.size - np.count_nonzero(np.isfinite(values)))
    return bad


def _voxel_chunks(path: Path, offset: int, length: int, itemsize: int, chunk_bytes: int = 1 << 24):
    """Yield the ``length`` bytes from ``offset`` of the (possibly gzip-compressed) file as aligned bytes."""
    compressed = path.name.lower().endswith(".gz") or _starts_with_gzip_magic(path)
    with open(path, "rb") as raw:
        if not compressed:
            raw.seek(offset)
            while length > 0 and (data := raw.read(min(chunk_bytes, length))):
                length -= len(data)
                yield data[: len(data) - len(data) % itemsize]
            return
        decompressor = zlib.decompressobj(wbits=31)
        skip, pending, packed = offset, b"", b""
        while length > 0:
            if not packed:  # bounded output per call: a run of zeros expands a thousandfold
                packed = decompressor.unconsumed_tail or raw.read(1 << 20)
                if not packed:
                    return
            data = decompressor.decompress(packed, chunk_bytes)
            packed = decompressor.unconsumed_tail
            if decompressor.eof and not packed and not data:
                return
            if skip:
                data, skip = data[skip:], max(0, skip - len(data))
            data = (pending + data)[:length]
            usable = len(data) - len(data) % itemsize
            pending = data[usable:]
            length -= usable
            if usable:
                yield data[:usable]
