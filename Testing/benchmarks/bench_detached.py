"""Benchmark: where the sacrum and disc pieces below the lowest vertebra lie, in heights of that vertebra.

For each case the network runs once (``segment``'s own path with ``--cleanup none``); the map's
pieces are found as ``--cleanup levels`` finds them (:mod:`SAFNetSpineLib.inference.pieces`), and
for every sacrum piece and every non-debris disc piece whose centre lies below the lowest vertebra
the script prints its size (voxels) and the gap from the lowest vertebra's bottom to the piece's
top, in heights of that vertebra (negative: the top lies above that vertebra's bottom). These gaps
chose ``S1_ATTACHED_GAP`` and ``DETACHED_GAP`` of the clean-up; read the overlays (``bench_sacrum.py
--png``) to tell the real sacrum from bowel.

Usage:
    .venv/bin/python Testing/benchmarks/bench_detached.py --weights W --cases chu_05 chu_16 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.data.cases import load_case, load_case_folder  # noqa: E402
from SAFNetSpineLib.inference import Segmenter  # noqa: E402
from SAFNetSpineLib.inference.pieces import (  # noqa: E402
    BODY_IDS,
    DISC_IDS,
    LowestVertebra,
    debris_floor,
    find_pieces,
    speck_floor,
    superior_mm,
    top_mm,
)
from SAFNetSpineLib.labels import SACRUM_ID, structure  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "spine-mri"


def gaps(labels_volume) -> tuple[float, list[str]]:
    """(height of the lowest vertebra in mm, one "NAME:voxels gap +G.GGh" per piece below it)."""
    labels = np.asarray(labels_volume.array)
    speck = speck_floor(labels_volume)
    bodies = find_pieces(labels, BODY_IDS)
    floor = debris_floor(bodies, speck)
    lowest = LowestVertebra.of(labels_volume, [p for p in bodies if p.size >= floor])
    if lowest is None:
        return 0.0, []
    discs = find_pieces(labels, DISC_IDS)
    disc_floor = debris_floor(discs, speck)
    below = [p for p in find_pieces(labels, (SACRUM_ID,)) + [d for d in discs if d.size >= disc_floor]
             if superior_mm(labels_volume, p.voxels).mean() < lowest.centre_mm]
    return lowest.height_mm, [f"{structure(p.label_id).short_name}:{p.size} gap "
                              f"{lowest.gap_below(top_mm(labels_volume, p)):+.2f}h" for p in below]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=REPO / "Resources" / "Models" / "safnet-default")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", nargs="+", required=True)
    args = parser.parse_args()
    segmenter = Segmenter([args.weights], device="cpu", precision="fp32", cleanup="none")
    cases = {c.case_id: c for c in load_case_folder(args.data)}
    for case_id in args.cases:
        image, _ = load_case(cases[case_id])
        height, pieces = gaps(segmenter.segment(image).labels)
        print(f"{case_id}: lowest vertebra {height:.0f} mm; " + ("; ".join(pieces) or "nothing below it"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
