"""One ``segment`` run from the scene's point of view: write the input, then load the result.

:func:`prepare_segmentation` writes the volume node to a temporary folder and returns the
command line for the child process; :func:`finish_segmentation` reads what the child
wrote (file names from the library's output contract) into the chosen segmentation node
or a new one. The caller runs the child in between (``SAFNetSpineJobs.jobs.ChildJob``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from SAFNetSpineJobs import commands

from .segmentation_nodes import segmentation_from_labels
from .volume_nodes import input_volume_problem, node_in_scene, read_label_file, write_volume_node

#: Node attribute naming the model version a segmentation came from (kept with saved cases).
MODEL_VERSION_ATTRIBUTE = "SAFNetSpine.ModelVersion"


@dataclass(frozen=True)
class SegmentationRun:
    """What a running ``segment`` child needs when it ends.

    Attributes:
        volume_node: The segmented volume node (the node itself: its ID may name another
            node after Close Scene).
        target_node: The segmentation node to write into, or None for a new node.
        folder: Temporary folder with the input file and the child's output folder ``out/``.
        input_path: The input file written for the child.
    """

    volume_node: object
    target_node: object | None
    folder: Path
    input_path: Path


def prepare_segmentation(volume_node, python: str, weights: Path | None, device: str, tta: bool = False,
                         target_node=None, temp_dir: str | None = None,
                         turns: bool = False) -> tuple[list[str], SegmentationRun]:
    """Write ``volume_node`` for the child; returns (``segment`` command line, run).

    Raises:
        ValueError: if the volume cannot be segmented (nothing is written then).
        SpineInputError: if writing the volume fails (the temporary folder is removed).
    """
    problem = input_volume_problem(volume_node)
    if problem:
        raise ValueError(problem)
    folder = Path(tempfile.mkdtemp(prefix="SAFNetSpine-", dir=temp_dir))
    try:
        input_path = write_volume_node(volume_node, folder / "input.nrrd")
        args = commands.segment_command(python, input_path, folder / "out", weights, device, tta, turns)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return args, SegmentationRun(volume_node, target_node, folder, input_path)


def finish_segmentation(scene, run: SegmentationRun):
    """(segmentation node, summary dict) from a finished run: the target node refilled, or a new node.

    Raises:
        ValueError: if the input volume left the scene meanwhile (removed, or the scene was
            closed); nothing is added then.
        SpineInputError: if the result files are missing or unreadable.
    """
    volume_node = node_in_scene(scene, run.volume_node)
    if volume_node is None:
        raise ValueError("the input volume left the scene (removed, or the scene was closed) while it was "
                         "segmented; the result was not loaded")
    label_path, summary_path = commands.result_paths(run.folder / "out", run.input_path)
    summary = commands.read_json(summary_path)
    target = node_in_scene(scene, run.target_node)  # None (removed meanwhile): a new node
    node = segmentation_from_labels(scene, read_label_file(label_path), volume_node,
                                    scene.GenerateUniqueName(f"{volume_node.GetName()} spine"), target)
    node.SetAttribute(MODEL_VERSION_ATTRIBUTE, str(summary.get("model_version", "unknown")))
    return node, summary


def discard_run(run: SegmentationRun) -> None:
    """Remove the run's temporary folder (input copy and results)."""
    shutil.rmtree(run.folder, ignore_errors=True)
