"""Clean-up modes of predicted label maps (the pieces themselves: :mod:`.pieces`) and per-structure volumes."""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.inference.pieces import clean_pieces, keep_largest_component
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.volume import Volume

#: Clean-ups of a predicted label map, by name: "levels" (specks, fragments and misplaced sacrum
#: pieces removed, the default; the names come from the count), "largest" (largest component per
#: label), "none".
CLEANUPS = ("levels", "largest", "none")
DEFAULT_CLEANUP = CLEANUPS[0]
CLEANUP_HELP = ("levels: specks, fragments, misplaced sacrum pieces and detached discs removed (default); "
                "largest: largest component per label; none: the network's labels as they are")


def clean_up(labels: Volume, mode: str = DEFAULT_CLEANUP) -> Volume:
    """Apply one of :data:`CLEANUPS` to a label Volume (a new Volume; the input is kept).

    Raises:
        ValueError: unknown mode.
    """
    if mode == "levels":
        return clean_pieces(labels)
    if mode == "largest":
        return labels.with_array(keep_largest_component(labels.array))
    if mode == "none":
        return labels
    raise ValueError(f"cleanup must be one of {', '.join(CLEANUPS)}, got '{mode}'")


def structure_volumes_ml(label_volume: Volume) -> dict[str, float]:
    """Volume in millilitres of every structure present, keyed by short name, in label-id order."""
    counts = np.bincount(np.asarray(label_volume.array, dtype=np.int64).reshape(-1), minlength=len(STRUCTURES))
    return {
        s.short_name: round(float(counts[s.label_id]) * label_volume.voxel_volume_ml, 3)
        for s in STRUCTURES[1:]
        if counts[s.label_id] > 0
    }
