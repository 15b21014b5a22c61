"""``phantom``: write synthetic T2-like sagittal lumbar-spine phantoms with all 19 structures labelled."""

from __future__ import annotations

import argparse
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("phantom", help="write synthetic spine MR phantoms (imagesTr/labelsTr/dataset.json)",
                                   description=__doc__)
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="dataset folder to write (refused if it holds another dataset's dataset.json)")
    parser.add_argument("--n", type=int, default=4, help="number of phantoms (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first phantom (0 or more); case i uses seed+i")
    parser.add_argument("--bodies-only", action="store_true",
                        help="label vertebral bodies only (posterior elements stay unlabelled, as in many real sets)")
    parser.add_argument("--anatomy", choices=("classic", "lumbar"), default="classic",
                        help="classic: the cartoon spine (default); lumbar: the plausible spine of the bundled "
                             "sample, whole sacrum in view, lordosis 42-58 deg, a new draw per seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.data.phantom import PhantomOptions, write_phantom_dataset  # SimpleITK: not for --help
    from SAFNetSpineLib.io.validation import check_writable_dir

    if args.n < 1:
        raise SpineInputError(None, f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise SpineInputError(None, f"--seed must be 0 or more (seeds are non-negative), got {args.seed}")
    check_writable_dir(args.output)
    out = write_phantom_dataset(args.output, args.n, args.seed,
                                PhantomOptions(label_posterior_elements=not args.bodies_only,
                                               anatomy=args.anatomy))
    print(f"wrote {args.n} phantoms to {out}")
    return 0
