"""One ``measure`` run from the scene's point of view: export the segmentation, then read the numbers.

:func:`prepare_measurement` exports the (corrected) segmentation as label-table ids on the
volume's grid and writes it and the volume to a temporary folder; the child runs
``python -m SAFNetSpineLib measure``; :func:`finish_measurement` reads
``NAME_measurements.json`` and the table rows the library derives from it. The numbers
are the library's; nothing is measured here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from SAFNetSpineJobs import commands

from .measurement_nodes import read_measurements
from .segmentation_nodes import labels_from_segmentation
from .volume_nodes import node_in_scene, write_volume_node

#: File name stem of the exported label map and the measurement files.
MEASURE_NAME = "spine"


@dataclass(frozen=True)
class MeasurementRun:
    """A running ``measure`` child: its folder and the nodes it measures.

    Attributes:
        segmentation_node: The measured segmentation node (the node itself: its ID may name
            another node after Close Scene).
        volume_node: Its volume (the figure's background and the label grid).
        folder: Temporary folder (inputs and the child's ``out/``).
    """

    segmentation_node: object
    volume_node: object
    folder: Path


def prepare_measurement(scene, segmentation_node, volume_node, python: str,
                        temp_dir: str | None = None) -> tuple[list[str], MeasurementRun]:
    """Export the segmentation and the volume; returns (``measure`` command line, run).

    Raises:
        SpineInputError: if no segment maps to a spine level, or writing fails.
    """
    from SAFNetSpineLib.io.volume_io import write_volume  # SimpleITK only

    export = labels_from_segmentation(scene, segmentation_node, volume_node)
    folder = Path(tempfile.mkdtemp(prefix="SAFNetSpine-measure-", dir=temp_dir))
    try:
        labels = write_volume(export.labels, folder / f"{MEASURE_NAME}_seg.nii.gz")
        image = write_volume_node(volume_node, folder / "image.nrrd")
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    args = commands.measure_command(python, labels, folder / "out", image, MEASURE_NAME)
    return args, MeasurementRun(segmentation_node, volume_node, folder)


def measured_segmentation(scene, run: MeasurementRun):
    """The measured segmentation node, still in ``scene``.

    Raises:
        ValueError: if it left the scene (removed, or the scene was closed) while it was measured.
    """
    node = node_in_scene(scene, run.segmentation_node)
    if node is None:
        raise ValueError("the segmentation left the scene (removed, or the scene was closed) while it was "
                         "measured; no measurement nodes were made")
    return node


def finish_measurement(run: MeasurementRun) -> tuple[dict, list[dict], str]:
    """(measurements JSON, table rows keyed by the library's ``ROW_COLUMNS``, one-line summary) of a finished run."""
    from SAFNetSpineLib.measurements.report import measurement_rows, summary_line

    measurements = read_measurements(run.folder / "out" / f"{MEASURE_NAME}_measurements.json")
    return measurements, measurement_rows(measurements), summary_line(measurements)


def discard_measurement(run: MeasurementRun) -> None:
    """Remove the run's temporary folder."""
    shutil.rmtree(run.folder, ignore_errors=True)
