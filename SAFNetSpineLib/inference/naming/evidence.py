"""What each piece of the chain looks like to the network: a probability per level name.

The segmenter's softmax probabilities live on the network grid (C, D, H, W); a piece
lives on the input grid. :class:`ClassEvidence` keeps the probabilities with the
network grid's voxel-to-LPS matrix and averages them at a piece's own voxels, so any
input grid works. Without probabilities (an existing label map), a piece's own labels
are the evidence, softened so that one wrong label is outvoted by the count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.labels import NUM_CLASSES

#: Share of a label-only piece's evidence spread evenly over the names of its kind.
LABEL_EVIDENCE_SPREAD = 0.05
#: At most this many voxels of a piece are looked up in the probabilities (evenly strided).
MAX_SAMPLES = 4000


@dataclass(frozen=True, eq=False)
class ClassEvidence:
    """Softmax probabilities placed in the patient.

    Attributes:
        probabilities: (C, D, H, W) float, C = NUM_CLASSES, summing to 1 over C.
        affine_lps: 4x4 matrix mapping a (d, h, w, 1) index of ``probabilities`` to LPS mm.
    """

    probabilities: np.ndarray
    affine_lps: np.ndarray

    def __post_init__(self) -> None:
        if np.ndim(self.probabilities) != 4 or np.shape(self.probabilities)[0] != NUM_CLASSES:
            raise ValueError(f"probabilities must be ({NUM_CLASSES}, D, H, W), got {np.shape(self.probabilities)}")

    def mean_probabilities(self, points_lps: np.ndarray) -> np.ndarray | None:
        """Mean probability vector (C,) at LPS points (N, 3), nearest network voxel; None if all lie outside."""
        points = np.asarray(points_lps, dtype=np.float64)
        if len(points) > MAX_SAMPLES:
            points = points[:: int(np.ceil(len(points) / MAX_SAMPLES))]
        inverse = np.linalg.inv(np.asarray(self.affine_lps, dtype=np.float64))
        index = np.rint(points @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.int64)  # (N, 3) network voxels
        shape = np.asarray(np.shape(self.probabilities)[1:])
        inside = np.all((index >= 0) & (index < shape[None, :]), axis=1)
        if not inside.any():
            return None
        d, h, w = index[inside].T
        return np.asarray(self.probabilities[:, d, h, w], dtype=np.float64).mean(axis=1)


def evidence_from_labels(label_counts: dict[int, int], kind_ids: tuple[int, ...]) -> np.ndarray:
    """Evidence (NUM_CLASSES,) of a piece from its voxels' labels alone.

    Args:
        label_counts: Label id -> voxels of the piece with that label.
        kind_ids: Ids of the piece's kind (vertebrae or discs); the result sums to 1 over them.
    """
    out = np.zeros(NUM_CLASSES, dtype=np.float64)
    ids = list(kind_ids)
    out[ids] = LABEL_EVIDENCE_SPREAD / len(ids)
    total = sum(n for k, n in label_counts.items() if k in kind_ids)
    for k, n in label_counts.items():
        if k in kind_ids and total:
            out[k] += (1.0 - LABEL_EVIDENCE_SPREAD) * n / total
    return out / out[ids].sum()
