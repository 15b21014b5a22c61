"""``segment``: label spine MR volumes level by level.

For an input ``NAME.ext`` writes ``OUTDIR/NAME_seg.nii.gz`` and/or ``OUTDIR/NAME.seg.nrrd``
plus ``OUTDIR/NAME_seg.json`` (structures found, volumes, device, timings, how far the
level names can be trusted), with ``--overlay`` a mid-sagittal PNG
``OUTDIR/NAME_overlay.png``, and with ``--measure`` the measurements of the result
(``NAME_measurements.json``, ``.csv``, ``.png``; see ``measure``).
Levels are named by counting along the spine; when the names
are uncertain one warning line says why, and ``--level-hint L3=R,A,S`` fixes them; a scan with no lumbar or
lower thoracic spine gets no level names (status ``out_of_range``). The names and the summary
belong to :mod:`SAFNetSpineLib.inference.outputs`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from SAFNetSpineLib.cli.common import add_fit_fov_option, add_turns_option, level_hint_option
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.outputs import (
    FORMATS,
    SAME_NAME_POLICY,
    SegmentOutputs,
    check_outputs_spare_inputs,
    level_table,
    output_stem,
    write_label_outputs,
)
from SAFNetSpineLib.inference.postprocess import CLEANUP_HELP, CLEANUPS, DEFAULT_CLEANUP
from SAFNetSpineLib.io.validation import check_image_path, check_writable_dir
from SAFNetSpineLib.progress import Progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment spine MR volumes level by level",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image file (.nii/.nii.gz/.nrrd/.mha/.mhd) or DICOM series folder; "
                             + SAME_NAME_POLICY)
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
    add_turns_option(parser)
    add_fit_fov_option(parser)
    parser.add_argument("--format", default="nii.gz", choices=FORMATS, help="label map format(s)")
    parser.add_argument("--cleanup", default=DEFAULT_CLEANUP, choices=CLEANUPS, help=CLEANUP_HELP)
    parser.add_argument("--overlay", action="store_true", help="also write a mid-sagittal overlay PNG")
    parser.add_argument("--measure", action="store_true",
                        help="also measure the result: NAME_measurements.json/.csv/.png (see the measure command)")
    parser.add_argument("--level-hint", metavar="NAME=R,A,S",
                        help="the structure at this point (RAS mm, as Slicer shows it) is NAME (e.g. L3, L4/L5, S); "
                             "every other level is named by counting from it, whatever the segmentation has "
                             "there (one input only)")
    parser.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                        help="progress display; json: one JSON object per line on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Segmenter and weights import torch: kept out of the parser-building path (start-up time).
    from SAFNetSpineLib.api import resolve_weights
    from SAFNetSpineLib.inference.segmenter import Segmenter
    from SAFNetSpineLib.io.volume_io import read_volume

    progress = Progress(args.progress)
    inputs = [Path(p) for p in args.inputs]
    hint = level_hint_option(args.level_hint)  # "" is refused, not ignored
    if hint is not None and len(inputs) > 1:
        raise SpineInputError(None, f"--level-hint names a point in one image; got {len(inputs)} inputs")
    for path in inputs:
        check_image_path(path)  # missing, FIFO, device, socket or a .seg.nrrd: refused before any compute
    plans = check_outputs_spare_inputs(inputs, args.output, args.format, args.overlay, args.measure)
    out_dir = check_writable_dir(args.output)
    weights = resolve_weights(args.weights, args.models)  # given, else the active version of --models, else bundled
    started = time.perf_counter()
    segmenter = Segmenter(weights, device=args.device, precision=args.precision, tta=args.tta,
                          cleanup=args.cleanup, turns=args.turns == "on", fit_fov=args.fit_fov == "on")
    load_s = time.perf_counter() - started

    for index, path in enumerate(inputs):
        def report(stage, fraction, message="", _i=index, _name=path.name):
            progress(stage, (_i + fraction) / len(inputs), message, case=_name)

        t0 = time.perf_counter()
        report("read", 0.0, f"reading {path.name}")
        image = read_volume(path)
        read_s = time.perf_counter() - t0
        try:
            result = segmenter.segment(image, progress=report, level_hint=hint)
        except SpineInputError as error:  # preprocessing knows the image, not its file
            raise error if error.subject else SpineInputError(path, error.problem) from None

        t0 = time.perf_counter()
        report("write", 0.96, "writing outputs")
        paths = plans[index]
        written = write_label_outputs(result.labels, image, paths, args.format, args.overlay,
                                      result.naming.naming)
        measured = None
        if args.measure:
            from SAFNetSpineLib.measurements import measure_and_write, summary_line

            report("write", 0.97, "measuring")
            measured, files = measure_and_write(result.labels, out_dir, output_stem(path), label_path=written[0],
                                                image=image, image_path=path)
            written += files
        timings = {"load_model": round(load_s, 4), "read": round(read_s, 4), **result.timings_s,
                   "write": round(time.perf_counter() - t0, 4)}
        outputs = SegmentOutputs.of_result(result, input=path, outputs=written, segmenter=segmenter, weights=weights,
                                           image=image, timings_s=timings, level_hint=hint)
        json_path = outputs.write_summary(paths.summary)
        report("done", 1.0, f"wrote {', '.join(p.name for p in written)}, {json_path.name}")
        if args.progress != "json":
            print(f"\n{path.name}: {len(result.volumes_ml)} structures, model {segmenter.version}, "
                  f"{segmenter.device.type}/{segmenter.precision}, network {result.timings_s['network']:.2f} s")
            print(level_table(result.volumes_ml))
            naming = result.naming.naming
            print(f"level names: {naming['status']} (anchor: {naming['anchor']}; {naming['counted_from']}): "
                  f"{naming['reason']}")
            print(f"outputs in {out_dir}", file=sys.stderr)
        if measured is not None and args.progress != "json":
            print(summary_line(measured))
        if result.naming.warning:
            print(f"warning: {path.name}: {result.naming.warning}", file=sys.stderr)
        field = result.field_of_view or {}
        if field.get("warning"):
            print(f"warning: {path.name}: {field['warning']}", file=sys.stderr)
        if field.get("widened_to_mm"):
            si, ap = field["in_plane_mm"]
            print(f"note: {path.name}: the in-plane field of view ({si:.0f} x {ap:.0f} mm) was widened to "
                  f"{field['widened_to_mm']:.0f} mm, the smallest training scans', before segmenting (--fit-fov)",
                  file=sys.stderr)
        if field.get("window_mm"):
            si, ap = field["in_plane_mm"]
            wsi, wap = field["window_mm"]
            print(f"note: {path.name}: the in-plane field of view ({si:.0f} x {ap:.0f} mm) is far larger than the "
                  f"training scans'; only the {wsi:.0f} x {wap:.0f} mm window holding the sacrum was segmented "
                  "(--fit-fov)", file=sys.stderr)
    return 0
