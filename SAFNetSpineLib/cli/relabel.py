"""``relabel``: rename the levels of an existing label map by counting, keeping its grid exactly.

``relabel LABELMAP --level-hint L3=R,A,S -o OUTDIR`` names the structure at the point
(RAS mm, as Slicer shows a markup point) L3 and every other vertebra and disc by
counting from it; without a hint the count starts at the sacrum. Writes the files
``segment`` writes: ``OUTDIR/NAME_seg.nii.gz`` (and/or ``NAME.seg.nrrd``) and
``OUTDIR/NAME_seg.json`` with ``naming`` and each structure's ``name_confidence``. An output
that would replace LABELMAP itself (``relabel d/NAME_seg.nii.gz -o d``) is refused: choose
another OUTDIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from SAFNetSpineLib.cli.common import level_hint_option
from SAFNetSpineLib.inference.outputs import FORMATS, level_table

HINT_HELP = ("NAME=R,A,S: the structure at this point (RAS mm, Slicer's convention) is NAME (e.g. L3, L4/L5, S); "
             "all others are named by counting from it")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("relabel", help="rename the levels of a label map by counting (grid kept)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labelmap", type=Path, metavar="LABELMAP",
                        help="label map (.nii.gz, .nrrd, .mha) or Slicer segmentation (.seg.nrrd)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument("--level-hint", metavar="NAME=R,A,S", help=HINT_HELP)
    parser.add_argument("--format", default="nii.gz", choices=FORMATS, help="label map format(s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.inference.relabel import relabel_file, relabel_output_paths
    from SAFNetSpineLib.io import check_writable_dir

    hint = level_hint_option(args.level_hint)  # "" is refused, not ignored
    relabel_output_paths(args.labelmap, args.output, args.format)  # never over the input
    out_dir = check_writable_dir(args.output)
    run_ = relabel_file(args.labelmap, out_dir, hint, args.format)
    result = run_.naming
    print(f"{args.labelmap.name}: level names {result.naming['status']} (anchor: {result.naming['anchor']}; "
          f"{result.naming['counted_from']}): {result.naming['reason']}")
    from SAFNetSpineLib.inference.postprocess import structure_volumes_ml

    print(level_table(structure_volumes_ml(result.labels)))
    if result.warning:
        print(f"warning: {args.labelmap.name}: {result.warning}", file=sys.stderr)
    print(f"outputs in {out_dir}: {', '.join(p.name for p in run_.written)}, {run_.summary.name}", file=sys.stderr)
    return 0
