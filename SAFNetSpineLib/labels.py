"""The spine label table: the single source of structure ids, names, colours and codes.

Ids follow the MRSpineSeg data set (Pang et al., SpineParseNet). Everything else in
the project (segment names in Slicer, colours, terminology, metric subsets, the
number of network output classes) is derived from :data:`STRUCTURES`.

Vertebrae are drawn in a warm family (yellow to red), discs in a cool family
(cyan to blue), so that a disc is never mistaken for a bone at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["background", "vertebra", "disc"]


@dataclass(frozen=True)
class Structure:
    """One labelled structure.

    Attributes:
        label_id: Voxel value in label maps (MRSpineSeg id).
        short_name: Level name as radiologists write it ("L5", "L4/L5").
        full_name: Readable name ("Lumbar vertebra 5").
        kind: "vertebra", "disc" or "background".
        color: RGB colour, each channel in [0, 255].
        snomed_code: SNOMED CT concept id, or None where none exists.
        snomed_meaning: SNOMED CT code meaning (DICOM CID 7603 / 7604 wording).
    """

    label_id: int
    short_name: str
    full_name: str
    kind: Kind
    color: tuple[int, int, int]
    snomed_code: str | None
    snomed_meaning: str | None

    @property
    def color_float(self) -> tuple[float, float, float]:
        """RGB colour with channels in [0, 1] (as Slicer's vtkSegment expects)."""
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]


#: Coding scheme of every terminology code here: SNOMED CT.
SNOMED_SCHEME = "SCT"
#: Terminology category of every structure: "Anatomical Structure".
SNOMED_CATEGORY = (SNOMED_SCHEME, "123037004", "Anatomical Structure")

# (id, short, full, kind, colour, SNOMED code, SNOMED meaning)
_TABLE: tuple[tuple, ...] = (
    (0, "background", "Background", "background", (0, 0, 0), None, None),
    (1, "S", "Sacrum", "vertebra", (255, 235, 150), "54735007", "Sacrum"),
    (2, "L5", "Lumbar vertebra 5", "vertebra", (241, 214, 145), "49668003", "L5 vertebra"),
    (3, "L4", "Lumbar vertebra 4", "vertebra", (255, 196, 60), "11994002", "L4 vertebra"),
    (4, "L3", "Lumbar vertebra 3", "vertebra", (240, 150, 40), "36470004", "L3 vertebra"),
    (5, "L2", "Lumbar vertebra 2", "vertebra", (250, 110, 70), "14293000", "L2 vertebra"),
    (6, "L1", "Lumbar vertebra 1", "vertebra", (215, 80, 60), "66794005", "L1 vertebra"),
    (7, "T12", "Thoracic vertebra 12", "vertebra", (230, 60, 120), "23215003", "T12 vertebra"),
    (8, "T11", "Thoracic vertebra 11", "vertebra", (190, 40, 90), "12989004", "T11 vertebra"),
    (9, "T10", "Thoracic vertebra 10", "vertebra", (160, 70, 50), "7610001", "T10 vertebra"),
    (10, "T9", "Thoracic vertebra 9", "vertebra", (200, 170, 90), "82687006", "T9 vertebra"),
    (11, "L5/S", "Intervertebral disc L5/S", "disc", (80, 220, 230), "715056000", "L5/S1 disc"),
    (12, "L4/L5", "Intervertebral disc L4/L5", "disc", (40, 160, 240), "84020006", "L4/L5 disc"),
    (13, "L3/L4", "Intervertebral disc L3/L4", "disc", (60, 100, 220), "62551000", "L3/L4 disc"),
    (14, "L2/L3", "Intervertebral disc L2/L3", "disc", (100, 200, 160), "67459009", "L2/L3 disc"),
    (15, "L1/L2", "Intervertebral disc L1/L2", "disc", (30, 130, 150), "80064006", "L1/L2 disc"),
    (16, "T12/L1", "Intervertebral disc T12/L1", "disc", (130, 150, 255), "76206002", "T12/L1 disc"),
    (17, "T11/T12", "Intervertebral disc T11/T12", "disc", (70, 60, 180), "1537001", "T11/T12 disc"),
    (18, "T10/T11", "Intervertebral disc T10/T11", "disc", (140, 230, 255), "34959001", "T10/T11 disc"),
    (19, "T9/T10", "Intervertebral disc T9/T10", "disc", (90, 120, 170), "113209001", "T9/T10 disc"),
)

#: All structures including background, indexed by label id.
STRUCTURES: tuple[Structure, ...] = tuple(Structure(*row) for row in _TABLE)
#: Structure ids without background, 1..19.
FOREGROUND_IDS: tuple[int, ...] = tuple(s.label_id for s in STRUCTURES if s.kind != "background")
VERTEBRA_IDS: tuple[int, ...] = tuple(s.label_id for s in STRUCTURES if s.kind == "vertebra")
DISC_IDS: tuple[int, ...] = tuple(s.label_id for s in STRUCTURES if s.kind == "disc")
#: Number of network output classes: 19 structures + background.
NUM_CLASSES: int = len(STRUCTURES)

_BY_NAME = {s.short_name: s for s in STRUCTURES}
_BY_FULL = {s.full_name.lower(): s for s in STRUCTURES}

# Named ids: looked up in the table by name, never written as numbers elsewhere.
SACRUM_ID: int = _BY_NAME["S"].label_id
L5_ID: int = _BY_NAME["L5"].label_id
L1_ID: int = _BY_NAME["L1"].label_id
T9_ID: int = _BY_NAME["T9"].label_id
L5_S_ID: int = _BY_NAME["L5/S"].label_id
T9_T10_ID: int = _BY_NAME["T9/T10"].label_id
#: The 17 structures over which the SAFNet paper reports mean Dice (all but T9 and T9/T10).
PAPER_17_IDS: tuple[int, ...] = tuple(i for i in FOREGROUND_IDS if i not in (T9_ID, T9_T10_ID))

#: Foreground ids in anatomical order along the spine, superior to inferior:
#: T9, T9/T10, T10, ..., L5, L5/S, S (each disc between the two vertebrae it joins).
#: A disc's short name "UPPER/LOWER" names its two vertebrae; the order follows from it.
SUPERIOR_TO_INFERIOR_IDS: tuple[int, ...] = tuple(
    i for pair in zip(VERTEBRA_IDS[:0:-1], DISC_IDS[::-1], strict=True) for i in pair
) + (SACRUM_ID,)
#: The same order from the bottom: position 0 is S, 1 L5/S, 2 L5 ... 18 T9 (bodies even, discs odd).
INFERIOR_TO_SUPERIOR_IDS: tuple[int, ...] = SUPERIOR_TO_INFERIOR_IDS[::-1]
_POSITION = {label_id: position for position, label_id in enumerate(INFERIOR_TO_SUPERIOR_IDS)}


def spine_position(label_id: int) -> int:
    """Position of a vertebra or disc counted from the bottom of the spine (S = 0, L5/S = 1, L5 = 2 ... T9 = 18).

    Raises:
        KeyError: background or an id not in the table.
    """
    return _POSITION[int(label_id)]


def id_at_position(position: int) -> int:
    """Label id at a position counted from the bottom (see :func:`spine_position`); 0 outside S..T9."""
    return INFERIOR_TO_SUPERIOR_IDS[position] if 0 <= position < len(INFERIOR_TO_SUPERIOR_IDS) else 0


def neighbour(label_id: int, steps: int) -> int:
    """The structure ``steps`` places above (positive) or below (negative) along the spine; 0 outside S..T9.

    ``neighbour(L5_ID, -1)`` is the L5/S disc, ``neighbour(L5_ID, 2)`` is L4.
    """
    return id_at_position(spine_position(label_id) + steps)


def disc_vertebrae(disc_id: int) -> tuple[int, int]:
    """(upper vertebra id, lower vertebra id) that a disc joins."""
    if structure(disc_id).kind != "disc":
        raise KeyError(f"label id {disc_id} is not a disc")
    return neighbour(disc_id, 1), neighbour(disc_id, -1)


def structure(label_id: int) -> Structure:
    """Return the structure for a label id.

    Raises:
        KeyError: if the id is not in the table.
    """
    if not 0 <= int(label_id) < NUM_CLASSES:
        raise KeyError(f"label id {label_id} is not in the spine label table (0..{NUM_CLASSES - 1})")
    return STRUCTURES[int(label_id)]


def structure_by_name(name: str) -> Structure | None:
    """Find a structure by short name ("L4/L5"), full name or SNOMED meaning, case-insensitively.

    Accepts the common spellings "L5/S1" for "L5/S" and "L4-L5" for "L4/L5".
    Returns None for a name not in the table.
    """
    key = name.strip()
    if key in _BY_NAME:
        return _BY_NAME[key]
    norm = key.upper().replace("-", "/").replace(" ", "")
    if norm.endswith("DISC"):
        norm = norm[: -len("DISC")]
    norm = norm.replace("L5/S1", "L5/S").replace("VERTEBRA", "")
    for s in STRUCTURES:
        if s.short_name.upper() == norm:
            return s
    low = key.lower()
    if low in _BY_FULL:
        return _BY_FULL[low]
    for s in STRUCTURES:
        if s.snomed_meaning and s.snomed_meaning.lower() == low:
            return s
    return None


def table_fingerprint() -> list[list]:
    """The label table as JSON-able rows (id, short name), stored in weight manifests."""
    return [[s.label_id, s.short_name] for s in STRUCTURES]
