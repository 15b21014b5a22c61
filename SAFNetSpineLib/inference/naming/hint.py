"""``--level-hint NAME=R,A,S``: one structure the user names, in Slicer's RAS millimetres."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import STRUCTURES, structure_by_name
from SAFNetSpineLib.volume import LPS_TO_RAS, Volume

HINT_FORMAT = "NAME=R,A,S (a level name such as L3 or L4/L5, then a point in RAS mm as Slicer shows it)"


@dataclass(frozen=True)
class LevelHint:
    """A level name and a point inside that structure.

    Attributes:
        label_id: Label-table id of the name (vertebra or disc).
        point_ras: The point (R, A, S) in mm, Slicer's convention.
    """

    label_id: int
    point_ras: tuple[float, float, float]

    @property
    def name(self) -> str:
        return STRUCTURES[self.label_id].short_name

    @property
    def point_lps(self) -> np.ndarray:
        """The point in LPS mm (the library's frame): R and A change sign."""
        return LPS_TO_RAS @ np.asarray(self.point_ras, dtype=np.float64)

    def __str__(self) -> str:
        return f"{self.name}={','.join(f'{v:g}' for v in self.point_ras)}"


def parse_level_hint(text: str) -> LevelHint:
    """Parse ``NAME=R,A,S``, e.g. ``L3=12.5,-30,40``.

    Raises:
        SpineInputError: unknown name, background, or not three numbers.
    """
    name, sep, point = str(text).partition("=")
    if not sep:
        raise SpineInputError(None, f"--level-hint {text!r}: expected {HINT_FORMAT}")
    found = structure_by_name(name)
    if found is None or found.kind == "background":
        raise SpineInputError(None, f"--level-hint {text!r}: {name.strip()!r} is not a vertebra or disc of the "
                                    "label table (S, L5 ... T9, L5/S ... T9/T10)")
    try:
        values = tuple(float(v) for v in point.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise SpineInputError(None, f"--level-hint {text!r}: expected {HINT_FORMAT}")
    return LevelHint(found.label_id, values)  # type: ignore[arg-type]


def hint_voxel(hint: LevelHint, labels: Volume, subject: str | None = None) -> tuple[int, int, int]:
    """Index (i, j, k) of the labelled voxel that holds the hint's point.

    Raises:
        SpineInputError: the point is outside the grid or on background.
    """
    affine = labels.affine_lps
    index = np.linalg.solve(affine[:3, :3], hint.point_lps - affine[:3, 3])
    voxel = tuple(int(v) for v in np.rint(index))
    where = f"level hint {hint}: the point (RAS {', '.join(f'{v:g}' for v in hint.point_ras)} mm)"
    if not all(0 <= v < n for v, n in zip(voxel, labels.shape, strict=True)):
        raise SpineInputError(subject, f"{where} is outside the image")
    if int(np.asarray(labels.array)[voxel]) == 0:
        raise SpineInputError(subject, f"{where} lies outside every vertebra and disc; place it inside one")
    return voxel  # type: ignore[return-value]
