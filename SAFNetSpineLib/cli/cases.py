"""``cases``: add a corrected case to a case store from files, or list the stored cases.

``cases add --store STORE IMAGE LABEL --reviewed IDS [--case-id ID] [--note TEXT]`` is for
annotators who correct outside Slicer (ITK-SNAP, ...); ``cases list --store STORE``
prints what fine-tuning will learn from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.finetune.case_files import EXTERNAL_SOURCE, add_case_files
from SAFNetSpineLib.finetune.case_store import CaseStore
from SAFNetSpineLib.labels import structure


def add_parser(subparsers) -> None:
    cases = subparsers.add_parser(
        "cases",
        help="add a corrected case to a case store, or list the stored cases",
        description="The corrected-case store that fine-tuning learns from.",
    )
    actions = cases.add_subparsers(dest="cases_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="store an image and its corrected label map")
    add.add_argument("image", type=Path, metavar="IMAGE", help="image file or DICOM folder")
    add.add_argument("label", type=Path, metavar="LABEL", help="corrected label map on the image's grid")
    add.add_argument("--store", required=True, type=Path, metavar="STORE", help="case store folder")
    add.add_argument("--reviewed", required=True, metavar="IDS",
                     help="structures the annotator reviewed: label ids (2,3,4), names (L5,L4,L3) "
                          "or 'all' (every structure present in the label map)")
    add.add_argument("--case-id", metavar="ID", help="id of the new case (default: generated)")
    add.add_argument("--note", default="", metavar="TEXT", help="free text kept with the case")
    add.add_argument("--source-model", default=EXTERNAL_SOURCE, metavar="VERSION",
                     help=f"model version that drew the first draft (default {EXTERNAL_SOURCE})")
    add.set_defaults(func=run_add)
    listing = actions.add_parser("list", help="list the stored cases, oldest first")
    listing.add_argument("--store", required=True, type=Path, metavar="STORE")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)


def run_add(args: argparse.Namespace) -> int:
    case_id = add_case_files(args.store, args.image, args.label, args.reviewed, case_id=args.case_id,
                             note=args.note, source_model_version=args.source_model)
    stored = CaseStore(args.store).get(case_id)
    names = ",".join(structure(i).short_name for i in stored.reviewed_labels)
    print(f"stored case {case_id} in {args.store} (reviewed {names})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    store = CaseStore(args.store)
    if not store.folder.is_dir():
        raise SpineInputError(store.folder, "case store not found")
    cases, damaged = store.scan()
    if args.json:
        print(json.dumps({
            "store": str(store.folder),
            "cases": [{
                "case_id": c.case_id, "created": c.created, "reviewed_labels": list(c.reviewed_labels),
                "reviewed_names": [structure(i).short_name for i in c.reviewed_labels],
                "source_model_version": c.source_model_version, "shape": list(c.shape),
                "spacing_mm": list(c.spacing), "note": c.note, "path": str(c.folder),
            } for c in cases],
            "damaged": [str(error) for error in damaged],
        }, indent=1))
        return 0
    if not cases:
        print(f"no cases in {store.folder}")
    else:
        print(f"{len(cases)} case(s) in {store.folder}")
        print(f"  {'case id':<32} {'created':<20} {'shape':<14} {'source':<16} reviewed")
        for c in cases:
            shape = "x".join(str(n) for n in c.shape)
            names = ",".join(structure(i).short_name for i in c.reviewed_labels)
            note = f"  ({c.note})" if c.note else ""
            print(f"  {c.case_id:<32} {c.created[:19]:<20} {shape:<14} {c.source_model_version:<16} {names}{note}")
    for error in damaged:
        print(f"warning: {error}")
    return 0
