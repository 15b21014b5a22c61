"""Rename the levels of an existing label map by counting, keeping its grid exactly.

For a label map a user already has (from ``segment``, or corrected by hand), the
structures stay voxel for voxel where they are; only their names change: every body
and disc is named by counting along the spine, from the sacrum or from one structure
the user names with a :class:`~SAFNetSpineLib.inference.naming.LevelHint`. The files
written are those of ``segment`` (see :mod:`SAFNetSpineLib.inference.outputs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference.naming import LevelHint, NamingResult, name_levels
from SAFNetSpineLib.inference.outputs import (
    OutputPaths,
    SegmentOutputs,
    check_outputs_spare_inputs,
    output_stem,
    write_label_outputs,
)
from SAFNetSpineLib.inference.postprocess import structure_volumes_ml
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.volume import Volume


def check_label_values(labels: Volume, subject: str | Path | None) -> None:
    """Refuse label values outside the label table (0..NUM_CLASSES-1).

    Raises:
        SpineInputError: naming the file and the first offending values.
    """
    values = np.unique(np.asarray(labels.array))
    bad = [v.item() for v in values if not (0 <= v < NUM_CLASSES and float(v).is_integer())]
    if bad:
        raise SpineInputError(subject, f"label values {bad[:8]} are not in the spine label table (0..{NUM_CLASSES - 1})")


def relabel_volume(labels: Volume, hint: LevelHint | None = None, subject: str | Path | None = None) -> NamingResult:
    """Name the structures of a label map by counting (the map's own labels are the evidence).

    Args:
        labels: Label map (I, J, K) with label-table ids, any grid.
        hint: One structure named by the user (a point in RAS mm), or None.
        subject: File named in errors.

    Returns:
        :class:`NamingResult`: the renamed label map has exactly ``labels``' size,
        spacing, origin and direction, and the same voxels in the same structures.

    Raises:
        SpineInputError: label values outside the table, or a hint point outside the image.
    """
    check_label_values(labels, subject)
    labels = labels.with_array(np.asarray(labels.array).astype(np.uint8, copy=False), is_label=True)
    return name_levels(labels, hint=hint, subject=None if subject is None else str(subject))


@dataclass(frozen=True)
class RelabelRun:
    """What :func:`relabel_file` wrote.

    Attributes:
        naming: The naming result.
        written: Label map files written.
        summary: The summary JSON path.
    """

    naming: NamingResult
    written: list[Path]
    summary: Path


def relabel_stem(path: Path) -> str:
    """Output stem of a label map: ``scan_seg.nii.gz`` and ``scan.seg.nrrd`` both give ``scan``."""
    stem = output_stem(Path(path))
    return stem[: -len("_seg")] if stem.endswith("_seg") and len(stem) > len("_seg") else stem


def relabel_output_paths(path: Path, out_dir: Path, label_format: str = "nii.gz") -> OutputPaths:
    """Where :func:`relabel_file` writes for ``path``, refusing a plan that would overwrite ``path`` itself.

    ``relabel d/scan_seg.nii.gz -o d`` would replace its own input (``d/scan_seg.nii.gz``),
    as would ``relabel d/scan.seg.nrrd --format seg.nrrd -o d``: like ``segment``, this
    is refused rather than written beside it under another name, so that the outputs
    keep the names ``segment`` gives them and the user's map stays as it was.

    Raises:
        SpineInputError: naming the output and the input.
    """
    paths = OutputPaths.for_input(out_dir, Path(out_dir) / f"{relabel_stem(Path(path))}.nii.gz")
    return check_outputs_spare_inputs([Path(path)], out_dir, label_format, plans=[paths])[0]


def relabel_file(path: Path, out_dir: Path, hint: LevelHint | None = None, label_format: str = "nii.gz") -> RelabelRun:
    """Read a label map, rename its levels, write the files ``segment`` writes into ``out_dir``.

    Args:
        path: Label map (.nii.gz, .nrrd, .mha, or a Slicer .seg.nrrd).
        out_dir: Existing, writable folder.
        hint: One structure named by the user, or None.
        label_format: One of outputs.FORMATS.

    Returns:
        :class:`RelabelRun`.

    Raises:
        SpineInputError: an output would overwrite ``path`` (checked before reading),
            or the label map is unusable.
    """
    from SAFNetSpineLib.io import read_volume

    path = Path(path)
    paths = relabel_output_paths(path, out_dir, label_format)
    started = time.perf_counter()
    labels = read_volume(path, is_label=True)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    result = relabel_volume(labels, hint, path)
    naming_s = time.perf_counter() - started
    started = time.perf_counter()
    written = write_label_outputs(result.labels, labels, paths, label_format)
    outputs = SegmentOutputs(input=path, outputs=written, model_version=None, weights=[], device=None,
                             precision=None, tta=False, turns=False,
                             volumes_ml=structure_volumes_ml(result.labels),
                             image=labels,
                             timings_s={"read": round(read_s, 4), "naming": round(naming_s, 4),
                                        "write": round(time.perf_counter() - started, 4)},
                             structure_fields=result.structure_fields(),
                             extra={"naming": result.naming, "relabelled_from": str(path),
                                    "level_hint": None if hint is None else str(hint)})
    return RelabelRun(result, written, outputs.write_summary(paths.summary))

