"""``cases``: add a corrected case to a case store from files, or list the stored cases.

``cases add --store STORE IMAGE LABEL --reviewed IDS [--patient ID] [--case-id ID] [--note TEXT]``
is for annotators who correct outside Slicer (ITK-SNAP, ...); ``cases list --store STORE``
prints what fine-tuning will learn from, patient by patient. Both remove what a killed add
left behind (``cases/.tmp-*``), or say that it is there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import structure
from SAFNetSpineLib.stores.case_files import EXTERNAL_SOURCE, add_case_files
from SAFNetSpineLib.stores.case_store import CaseStore
from SAFNetSpineLib.stores.patients import group_by_patient


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
    add.add_argument("--patient", metavar="ID",
                     help="patient (subject) id: series of one patient never straddle cross-validation folds "
                          "(default: the DICOM PatientID of a DICOM input, pseudonymised; else unknown)")
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
                             note=args.note, source_model_version=args.source_model, patient_id=args.patient)
    stored = CaseStore(args.store).get(case_id)
    names = ",".join(structure(i).short_name for i in stored.reviewed_labels)
    patient = stored.patient_id or "unknown"
    print(f"stored case {case_id} in {args.store} (reviewed {names}; patient {terminal_text(patient)})")
    return 0


def terminal_text(text: str) -> str:
    """``text`` safe to print: control characters (ANSI escapes, carriage returns) shown as ``\\x1b``-style escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


def run_list(args: argparse.Namespace) -> int:
    store = CaseStore(args.store)
    if not store.folder.is_dir():
        raise SpineInputError(store.folder, "case store not found")
    removed, left = store.clean_leftovers()
    cases, damaged = store.scan()
    groups = group_by_patient(cases)
    if args.json:
        print(json.dumps({
            "store": str(store.folder),
            "cases": [{
                "case_id": c.case_id, "created": c.created, "reviewed_labels": list(c.reviewed_labels),
                "reviewed_names": [structure(i).short_name for i in c.reviewed_labels],
                "source_model_version": c.source_model_version, "shape": list(c.shape),
                "spacing_mm": list(c.spacing), "note": c.note, "path": str(c.folder),
                "patient_id": c.patient_id, "patient": groups.patient_of[c.case_id],
            } for c in cases],
            "patients": len(groups.patients),
            "patient_grouping_guessed": bool(groups.guessed),
            "damaged": [str(error) for error in damaged],
            "leftovers_removed": [str(p) for p in removed],
            "leftovers": [str(p) for p in left],
        }, indent=1))
        return 0
    if not cases:
        print(f"no cases in {store.folder}")
    else:
        print(f"{terminal_text(store.folder)}: {groups.describe()}")
        print(f"  {'patient':<24} {'case id':<32} {'created':<20} {'shape':<14} {'source':<16} reviewed")
        for patient in groups.patients:
            for c in (case for case in cases if groups.patient_of[case.case_id] == patient):
                shape = "x".join(str(n) for n in c.shape)
                names = ",".join(structure(i).short_name for i in c.reviewed_labels)
                note = f"  ({terminal_text(c.note)})" if c.note else ""
                shown = terminal_text(c.patient_id) if c.patient_id else f"unknown ({patient.split(':', 1)[1]})"
                print(f"  {shown:<24} {c.case_id:<32} {c.created[:19]:<20} {shape:<14} "
                      f"{terminal_text(c.source_model_version):<16} {names}{note}")
    for path in removed:
        print(f"removed {path}: left by an add that was killed")
    for path in left:
        print(f"warning: {path}: left by an add that was killed or is still running; "
              "the next `cases add` removes it")
    for error in damaged:
        print(f"warning: {terminal_text(error)}")
    return 0
