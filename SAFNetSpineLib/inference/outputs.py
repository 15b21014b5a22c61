"""What ``segment`` writes for one input: file names, the label maps, the summary JSON.

For an input ``NAME.ext`` (or a DICOM folder ``NAME``) in ``OUTDIR``:

- ``NAME_seg.nii.gz`` and/or ``NAME.seg.nrrd``: the label map on the input's exact grid;
- ``NAME_seg.json``: the summary (see :meth:`SegmentOutputs.summary` and docs/INTERFACES.md);
- ``NAME_overlay.png`` (on request): a mid-sagittal overlay.

The library owns these names; the CLI and the Slicer module ask this module for them.
Importing it does not import torch or SimpleITK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import STRUCTURES, SUPERIOR_TO_INFERIOR_IDS
from SAFNetSpineLib.volume import Volume

#: Label map formats ``segment --format`` accepts.
FORMATS = ("nii.gz", "seg.nrrd", "both")
#: Suffix of the NIfTI label map (``NAME_seg.nii.gz``).
NIFTI_SUFFIX = "_seg.nii.gz"
#: Suffix of the Slicer segmentation file (``NAME.seg.nrrd``).
SEG_NRRD_SUFFIX = ".seg.nrrd"
#: Suffix of the summary JSON (``NAME_seg.json``).
SUMMARY_SUFFIX = "_seg.json"
#: Suffix of the overlay picture (``NAME_overlay.png``).
OVERLAY_SUFFIX = "_overlay.png"
#: Input suffixes removed to make the output stem (longest first where they overlap).
INPUT_SUFFIXES = (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd", ".dcm")


def output_stem(path: Path) -> str:
    """``scan.nii.gz`` -> ``scan``; a DICOM folder -> its name."""
    name = Path(path).name
    for suffix in INPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class OutputPaths:
    """Every file ``segment`` may write for one input (which ones exist depends on the options)."""

    nifti: Path
    seg_nrrd: Path
    summary: Path
    overlay: Path

    @classmethod
    def for_input(cls, out_dir: Path, image_path: Path) -> OutputPaths:
        """The paths for ``image_path`` in ``out_dir``."""
        stem = output_stem(Path(image_path))
        out_dir = Path(out_dir)
        return cls(out_dir / f"{stem}{NIFTI_SUFFIX}", out_dir / f"{stem}{SEG_NRRD_SUFFIX}",
                   out_dir / f"{stem}{SUMMARY_SUFFIX}", out_dir / f"{stem}{OVERLAY_SUFFIX}")


#: Files ``segment --measure`` adds for an input (see :mod:`SAFNetSpineLib.measurements`).
MEASUREMENT_SUFFIXES = ("_measurements.json", "_measurements.csv", "_measurements.png")
#: What ``segment --help`` says about inputs with the same name.
SAME_NAME_POLICY = ("inputs whose names give the same NAME (a/scan.nii.gz, b/scan.nii.gz) are refused, "
                    "as is an output that would replace an input: use separate output folders")


def planned_outputs(paths: OutputPaths, label_format: str = "nii.gz", overlay: bool = False,
                    measure: bool = False) -> list[Path]:
    """Every file ``segment`` will write for one input with these options."""
    planned = []
    if label_format in ("nii.gz", "both"):
        planned.append(paths.nifti)
    if label_format in ("seg.nrrd", "both"):
        planned.append(paths.seg_nrrd)
    planned.append(paths.summary)
    if overlay:
        planned.append(paths.overlay)
    if measure:
        stem = paths.summary.name[: -len(SUMMARY_SUFFIX)]
        planned += [paths.summary.parent / f"{stem}{suffix}" for suffix in MEASUREMENT_SUFFIXES]
    return planned


def check_outputs_spare_inputs(inputs: list[Path], out_dir: Path, label_format: str = "nii.gz",
                               overlay: bool = False, measure: bool = False,
                               plans: list[OutputPaths] | None = None) -> list[OutputPaths]:
    """The output paths of every input, refusing any plan in which one output replaces an input or another output.

    Called before any compute, so that ``segment X.nii.gz X_seg.nii.gz -o <their folder>``
    or ``segment case.seg.nrrd --format seg.nrrd -o <its folder>`` stops with one line
    instead of overwriting an input, and two inputs named alike (``a/scan.nii.gz``,
    ``b/scan.nii.gz``) are not written over each other. Paths are compared after
    resolving links, case-insensitively, and by file identity (hard links).

    Args:
        plans: The output paths of each input where they are not ``segment``'s
            (``relabel`` names them after the label map without ``_seg``).

    Returns:
        :class:`OutputPaths` per input, in order.

    Raises:
        SpineInputError: naming the output and the input (or the two inputs).
    """
    plans = plans or [OutputPaths.for_input(out_dir, path) for path in inputs]
    owners: dict[str, Path] = {}
    for path, paths in zip(inputs, plans, strict=True):
        for output in planned_outputs(paths, label_format, overlay, measure):
            key = _path_key(output)
            if key in owners and owners[key] != path:
                raise SpineInputError(output, f"both {owners[key]} and {path} would be written here; "
                                              "segment inputs with the same name into separate output folders")
            if key in owners:
                raise SpineInputError(path, "is given twice")
            owners[key] = path
            for source in inputs:
                if _same_file(output, source):
                    raise SpineInputError(output, f"would overwrite the input {source}; choose another output "
                                                  "folder (-o) or another --format")
    return plans


def _path_key(path: Path) -> str:
    """Resolved and case-folded: names that differ only in case collide on macOS and Windows."""
    return os.path.normcase(str(Path(path).resolve())).lower()


def _same_file(output: Path, source: Path) -> bool:
    if os.path.normcase(str(Path(output).resolve())) == os.path.normcase(str(Path(source).resolve())):
        return True
    try:
        return output.exists() and os.path.samefile(output, source)
    except OSError:
        return False


def write_label_outputs(labels: Volume, image: Volume, paths: OutputPaths, label_format: str = "nii.gz",
                        overlay: bool = False, naming: dict | None = None) -> list[Path]:
    """Write the label map(s) and, on request, the overlay; returns the files written, in order.

    Args:
        labels: Label map on the input's grid.
        image: The input image (for the overlay).
        paths: Where to write (see :class:`OutputPaths`).
        label_format: One of :data:`FORMATS`.
        overlay: Also write the mid-sagittal overlay PNG.
        naming: The summary's ``naming`` (status, where the count starts), shown on the overlay.
    """
    from SAFNetSpineLib.io.seg_nrrd import write_seg_nrrd
    from SAFNetSpineLib.io.volume_io import write_volume  # SimpleITK: kept off the --help path

    written = []
    if label_format in ("nii.gz", "both"):
        written.append(write_volume(labels, paths.nifti))
    if label_format in ("seg.nrrd", "both"):
        written.append(write_seg_nrrd(labels, paths.seg_nrrd))
    if overlay:
        from SAFNetSpineLib.inference.overlay import write_overlay_png  # matplotlib: heavy, only on request

        written.append(write_overlay_png(image, labels, paths.overlay, naming))
    return written


def geometry_record(image: Volume) -> dict[str, list]:
    """The ``input_geometry`` entry of the summary: shape, spacing (mm), origin (LPS mm), direction."""
    return {"shape": list(image.shape), "spacing_mm": image.spacing.tolist(),
            "origin_lps_mm": image.origin.tolist(), "direction_lps": image.direction.reshape(-1).tolist()}


@dataclass
class SegmentOutputs:
    """Everything ``NAME_seg.json`` records about one segmented input.

    Attributes:
        input: The input file or DICOM folder.
        outputs: Files written (label maps, overlay), in order.
        model_version: Model version name(s), joined with '+'.
        weights: Weights folder(s) used.
        device: Torch device the network ran on, e.g. "cpu", "cuda".
        precision: "fp32", "bf16" or "fp16".
        tta: Whether the mirrored input was averaged in.
        turns: Whether the turned passes were blended in (inference.turns).
        volumes_ml: Volume (mL) of each structure found, by short name.
        image: The input image (its geometry goes into the summary).
        timings_s: Seconds per stage, in the order they ran.
        structure_fields: Extra fields per structure, by short name, added to that
            structure's entry (e.g. ``{"L3": {"name_confidence": 0.9}}``).
        extra: Extra top-level fields, added after the standard ones (e.g. ``naming``).
    """

    input: Path
    outputs: list[Path]
    model_version: str
    weights: list[Path]
    device: str
    precision: str
    tta: bool
    turns: bool
    volumes_ml: dict[str, float]
    image: Volume
    timings_s: dict[str, float]
    structure_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_result(cls, result, *, input: Path, outputs: list[Path], segmenter, weights: list[Path], image: Volume,
                  timings_s: dict[str, float], level_hint=None) -> SegmentOutputs:
        """The summary of one input segmented by ``segmenter``: every field ``NAME_seg.json`` has.

        Args:
            result: The :class:`~SAFNetSpineLib.inference.segmenter.SegmentationResult` (volumes, naming).
            input: The input file or DICOM folder.
            outputs: Files written for it, in order.
            segmenter: The :class:`~SAFNetSpineLib.inference.segmenter.Segmenter` that ran (version, device,
                precision, tta, turns).
            weights: Its weights folder(s).
            image: The input image.
            timings_s: Seconds per stage.
            level_hint: The level hint the names were counted from, or None.
        """
        summary = cls(input=input, outputs=outputs, model_version=segmenter.version, weights=weights,
                      device=str(segmenter.device), precision=segmenter.precision, tta=segmenter.tta,
                      turns=segmenter.turns, volumes_ml=result.volumes_ml, image=image, timings_s=timings_s)
        summary.extra["naming"] = result.naming.naming
        summary.extra["level_hint"] = None if level_hint is None else str(level_hint)
        summary.extra["field_of_view"] = result.field_of_view
        summary.structure_fields.update(result.naming.structure_fields())
        return summary

    def structures(self) -> list[dict[str, Any]]:
        """One entry per structure found, in label-table order."""
        return [
            {"id": s.label_id, "name": s.short_name, "full_name": s.full_name,
             "volume_ml": self.volumes_ml[s.short_name], **self.structure_fields.get(s.short_name, {})}
            for s in STRUCTURES[1:] if s.short_name in self.volumes_ml
        ]

    def summary(self) -> dict[str, Any]:
        """The JSON object written to ``NAME_seg.json`` (fields in docs/INTERFACES.md)."""
        return {
            "input": str(self.input),
            "outputs": [Path(p).name for p in self.outputs],
            "model_version": self.model_version,
            "weights": [str(w) for w in self.weights],
            "device": self.device,
            "precision": self.precision,
            "tta": self.tta,
            "turns": self.turns,
            "structures": self.structures(),
            "input_geometry": geometry_record(self.image),
            "timings_s": dict(self.timings_s),
            **self.extra,
        }

    def write_summary(self, path: Path) -> Path:
        """Write :meth:`summary` atomically to ``path``; returns ``path``."""
        write_json_atomic(self.summary(), path)
        return Path(path)


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
