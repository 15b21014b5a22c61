"""``segment``: label spine MR volumes level by level.

For an input ``NAME.ext`` writes ``OUTDIR/NAME_seg.nii.gz`` and/or ``OUTDIR/NAME.seg.nrrd``
plus ``OUTDIR/NAME_seg.json`` (structures found, volumes, device, timings), and with
``--overlay`` a mid-sagittal PNG ``OUTDIR/NAME_overlay.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.postprocess import CLEANUP_HELP, CLEANUPS, DEFAULT_CLEANUP
from SAFNetSpineLib.labels import STRUCTURES, SUPERIOR_TO_INFERIOR_IDS

FORMATS = ("nii.gz", "seg.nrrd", "both")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment spine MR volumes level by level",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image file (.nii/.nii.gz/.nrrd/.mha/.mhd) or DICOM series folder")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument("--weights", action="append", type=Path, metavar="DIR",
                        help="weights folder (repeat for an ensemble); default: the active version of "
                             "--models, else the bundled weights")
    parser.add_argument("--models", type=Path, metavar="MODELSDIR",
                        help="folder of fine-tuned versions (see `models list`): use its active version")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto: fp16 autocast on CUDA, fp32 on CPU (bf16 autocast on request)")
    parser.add_argument("--tta", action="store_true", help="also segment the left-right mirrored image and average")
    parser.add_argument("--format", default="nii.gz", choices=FORMATS, help="label map format(s)")
    parser.add_argument("--cleanup", default=DEFAULT_CLEANUP, choices=CLEANUPS, help=CLEANUP_HELP)
    parser.add_argument("--overlay", action="store_true", help="also write a mid-sagittal overlay PNG")
    parser.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                        help="progress display; json: one JSON object per line on stdout")
    parser.set_defaults(func=run)


def output_stem(path: Path) -> str:
    """``scan.nii.gz`` -> ``scan``; a DICOM folder -> its name."""
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def level_table(volumes_ml: dict[str, float]) -> str:
    """Human-readable per-level table (superior to inferior, vertebrae and discs interleaved)."""
    rows = [f"{'level':<8} {'structure':<28} {'volume (mL)':>11}"]
    found = [s for s in STRUCTURES[1:] if s.short_name in volumes_ml]
    order = {label_id: i for i, label_id in enumerate(SUPERIOR_TO_INFERIOR_IDS)}
    for s in sorted(found, key=lambda s: order[s.label_id]):
        rows.append(f"{s.short_name:<8} {s.full_name:<28} {volumes_ml[s.short_name]:>11.2f}")
    if not found:
        rows.append("(no structure found)")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from SAFNetSpineLib.atomic import write_json_atomic
    from SAFNetSpineLib.inference import Segmenter
    from SAFNetSpineLib.io import check_writable_dir, read_volume, write_seg_nrrd, write_volume
    from SAFNetSpineLib.progress import Progress
    from SAFNetSpineLib.weights import default_weights_dir

    progress = Progress(args.progress)
    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.exists():
            raise SpineInputError(path, "file not found")
    out_dir = check_writable_dir(args.output)
    if args.weights:
        weights = args.weights
    elif args.models:
        from SAFNetSpineLib.finetune import ModelStore

        weights = [ModelStore(args.models).active()]
    else:
        weights = [default_weights_dir()]
    started = time.perf_counter()
    segmenter = Segmenter(weights, device=args.device, precision=args.precision, tta=args.tta,
                          cleanup=args.cleanup)
    load_s = time.perf_counter() - started

    for index, path in enumerate(inputs):
        def report(stage, fraction, message="", _i=index, _name=path.name):
            progress(stage, (_i + fraction) / len(inputs), message, case=_name)

        t0 = time.perf_counter()
        report("read", 0.0, f"reading {path.name}")
        image = read_volume(path)
        read_s = time.perf_counter() - t0
        result = segmenter.segment(image, progress=report)

        t0 = time.perf_counter()
        report("write", 0.96, "writing outputs")
        stem = output_stem(path)
        written = []
        if args.format in ("nii.gz", "both"):
            written.append(write_volume(result.labels, out_dir / f"{stem}_seg.nii.gz"))
        if args.format in ("seg.nrrd", "both"):
            written.append(write_seg_nrrd(result.labels, out_dir / f"{stem}.seg.nrrd"))
        if args.overlay:
            from SAFNetSpineLib.inference.overlay import write_overlay_png

            written.append(write_overlay_png(image, result.labels, out_dir / f"{stem}_overlay.png"))
        timings = {"load_model": round(load_s, 4), "read": round(read_s, 4), **result.timings_s,
                   "write": round(time.perf_counter() - t0, 4)}
        summary = {
            "input": str(path),
            "outputs": [p.name for p in written],
            "model_version": segmenter.version,
            "weights": [str(w) for w in weights],
            "device": str(segmenter.device),
            "precision": segmenter.precision,
            "tta": args.tta,
            "structures": [
                {"id": s.label_id, "name": s.short_name, "full_name": s.full_name,
                 "volume_ml": result.volumes_ml[s.short_name]}
                for s in STRUCTURES[1:] if s.short_name in result.volumes_ml
            ],
            "input_geometry": {"shape": list(image.shape), "spacing_mm": image.spacing.tolist(),
                               "origin_lps_mm": image.origin.tolist(),
                               "direction_lps": image.direction.reshape(-1).tolist()},
            "timings_s": timings,
        }
        json_path = out_dir / f"{stem}_seg.json"
        write_json_atomic(summary, json_path)
        report("done", 1.0, f"wrote {', '.join(p.name for p in written)}, {json_path.name}")
        if args.progress != "json":
            print(f"\n{path.name}: {len(result.volumes_ml)} structures, model {segmenter.version}, "
                  f"{segmenter.device.type}/{segmenter.precision}, network {result.timings_s['network']:.2f} s")
            print(level_table(result.volumes_ml))
            print(f"outputs in {out_dir}", file=sys.stderr)
    return 0
