"""The text header of a NRRD file, read without ITK.

Used to say what is wrong with a NRRD file ITK refuses (e.g. an absurd size) and to
check that a NRRD just written holds the whole voxel block its header announces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Largest header read; Slicer's .seg.nrrd headers with many segments stay far below it.
MAX_HEADER_BYTES = 1 << 20

_TYPE_BYTES = {
    1: ("char", "signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
        "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
        "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"),
}
TYPE_BYTES = {name: size for size, names in _TYPE_BYTES.items() for name in names}


@dataclass(frozen=True)
class NrrdHeader:
    """The fields of a NRRD header that say how many voxel bytes follow it.

    Attributes:
        fields: Every ``key: value`` field, keys in lower case.
        header_bytes: Length of the header including the blank line that ends it.
        sizes: Voxels along each axis (the ``sizes`` field), empty if absent or unreadable.
    """

    fields: dict[str, str]
    header_bytes: int
    sizes: tuple[int, ...]

    @property
    def encoding(self) -> str:
        """Voxel encoding ("raw", "gzip", ...), lower case."""
        return self.fields.get("encoding", "").lower()

    @property
    def detached(self) -> bool:
        """True when the voxels live in another file (``data file``)."""
        return "data file" in self.fields or "datafile" in self.fields

    @property
    def voxel_bytes(self) -> int | None:
        """Bytes of the voxel block the header announces; None when type or sizes are unknown."""
        size = TYPE_BYTES.get(self.fields.get("type", "").lower())
        if size is None or not self.sizes:
            return None
        count = 1
        for n in self.sizes:
            count *= n
        return count * size


def read_nrrd_header(path: str | Path) -> NrrdHeader | None:
    """Parse the header of a NRRD file; None if it does not start like one or has no end."""
    with open(path, "rb") as stream:
        head = stream.read(MAX_HEADER_BYTES)
    if not head.startswith(b"NRRD"):
        return None
    end = head.find(b"\n\n")
    if end < 0:
        return None
    fields = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue  # comments and key:=value pairs
        key, value = line.split(":", 1)
        if value.startswith("="):
            continue
        fields[key.strip().lower()] = value.strip()
    try:
        sizes = tuple(int(n) for n in fields.get("sizes", "").split())
    except ValueError:
        sizes = ()
    return NrrdHeader(fields, end + 2, sizes)
