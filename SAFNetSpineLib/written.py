"""Is a file that was just written complete? The read-back before an atomic rename.

Writers do not always report a failed write: ITK's NIfTI writer, on a full disk,
leaves a short file (a cut gzip stream) and returns normally. Each check here reads
the file back cheaply enough to run on every output, by its final name:

* ``.gz`` (``.nii.gz``): the gzip stream decompresses to its end, CRC and length
  checked by zlib; for NIfTI, the header's voxel block is all there;
* ``.nii``: the file is as long as its header announces;
* ``.nrrd``/``.seg.nrrd``: the inline voxel block (raw or gzip) is as long as announced;
* ``.json``: it parses; ``.safetensors``: the header's tensors end where the file ends;
  ``.png``: it ends with the IEND chunk.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def incomplete_reason(path: Path, final_name: str | None = None) -> str | None:
    """What is missing from a just-written file, or None if it reads back complete.

    Args:
        path: The written (temporary) file.
        final_name: The name it will get, which decides the format; defaults to ``path``'s.

    Returns:
        None when complete (or of a format without a check), else a few words.
    """
    from SAFNetSpineLib.io.nifti import gzip_content_size, nifti_sizes

    name = (final_name or Path(path).name).lower()
    size = Path(path).stat().st_size
    checked = (".gz", ".nii", ".nrrd", ".nhdr", ".json", ".safetensors", ".png")
    if size == 0 and name.endswith(checked):
        return "the file is empty"
    if name.endswith((".nii", ".nii.gz")):
        if name.endswith(".gz"):
            _, problem = gzip_content_size(path)
            if problem:
                return problem
        sizes = nifti_sizes(path)
        if sizes is not None and sizes[0] < sizes[1]:
            return f"{sizes[0]} of the {sizes[1]} bytes the NIfTI header announces"
        return None
    if name.endswith(".gz"):
        return gzip_content_size(path)[1]
    if name.endswith((".nrrd", ".nhdr")):
        return _nrrd_reason(path, size)
    if name.endswith(".json"):
        try:
            json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as error:
            return f"not valid JSON ({error})"
        return None
    if name.endswith(".safetensors"):
        return _safetensors_reason(path, size)
    if name.endswith(".png"):
        with open(path, "rb") as stream:
            start = stream.read(8)
            stream.seek(max(size - len(_PNG_END), 0))
            end = stream.read()
        return None if start == _PNG_SIGNATURE and end == _PNG_END else "the PNG file has no end chunk"
    return None


def _nrrd_reason(path: Path, size: int) -> str | None:
    from SAFNetSpineLib.io.nifti import gzip_content_size
    from SAFNetSpineLib.io.nrrd_header import read_nrrd_header

    header = read_nrrd_header(path)
    if header is None:
        return "the NRRD header is incomplete"
    if header.detached or "line skip" in header.fields or "byte skip" in header.fields:
        return None
    expected = header.voxel_bytes
    if header.encoding in ("gzip", "gz"):
        actual, problem = gzip_content_size(path, offset=header.header_bytes)
        if problem:
            return problem
    elif header.encoding == "raw":
        actual = size - header.header_bytes
    else:
        return None
    if expected is not None and actual < expected:
        return f"{actual} of the {expected} voxel bytes the NRRD header announces"
    return None


def _safetensors_reason(path: Path, size: int) -> str | None:
    with open(path, "rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            return "the safetensors header is cut"
        length = struct.unpack("<Q", prefix)[0]
        if length > size - 8:
            return "the safetensors header is cut"
        try:
            header = json.loads(stream.read(length))
            end = max([int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"] or [0])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "the safetensors header is unreadable"
    if 8 + length + end != size:
        return f"{size - 8 - length} of the {end} tensor bytes the safetensors header announces"
    return None
