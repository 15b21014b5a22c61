"""``measure``: spine measurements from a label map.

For ``LABELMAP`` (e.g. ``NAME_seg.nii.gz`` or ``NAME.seg.nrrd``) writes
``OUTDIR/NAME_measurements.json`` (the contract, see docs/INTERFACES.md),
``NAME_measurements.csv`` (one row per level, the same values) and
``NAME_measurements.png`` (mid-sagittal plane with endplates, heights and the
lordosis angle, over ``--image`` when given). Lengths in mm, angles in degrees, in the
patient frame, on the label map's own grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from SAFNetSpineLib.cli.common import check_plain_name


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("measure", help="body and disc heights, lordosis, slips and Genant grades",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labelmap", type=Path, metavar="LABELMAP",
                        help="label map with the spine label ids (.nii.gz, .nrrd, .seg.nrrd, .mha)")
    parser.add_argument("--image", type=Path, metavar="IMAGE", help="image to draw the figure over")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument("--name", metavar="NAME",
                        help="file name stem, no folders (default: the label map's, without _seg)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.measurements import measure_label_file, summary_line

    check_plain_name("--name", args.name)  # ../x would write outside -o
    measurements, written = measure_label_file(args.labelmap, args.output, args.image, args.name)
    print(summary_line(measurements))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
