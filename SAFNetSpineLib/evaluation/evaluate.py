"""`evaluate_model`: segment cases with a model and score them in the input's own geometry."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from SAFNetSpineLib.data.cases import Case, load_case
from SAFNetSpineLib.evaluation.metrics import score_case
from SAFNetSpineLib.inference.postprocess import DEFAULT_CLEANUP
from SAFNetSpineLib.inference.segmenter import segment_volume
from SAFNetSpineLib.inference.turns import DEFAULT_TURNS
from SAFNetSpineLib.labels import STRUCTURES
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.runtime import resolve_device


def predict_case(model: torch.nn.Module, image, preprocess: dict, device: torch.device | str,
                 cleanup: str = DEFAULT_CLEANUP, turns: bool = DEFAULT_TURNS):
    """Label map of ``model`` for one image, on the image's exact grid, as ``segment`` makes it.

    Args:
        model: Network on ``device`` (set to eval mode).
        image: Input Volume.
        preprocess: PreprocessConfig.to_dict() the model was trained with.
        device: Device of the model.
        cleanup: Post-processing (inference.postprocess.CLEANUPS), as ``segment --cleanup``.
        turns: Also the turned passes, as ``segment --turns`` (inference.turns).

    Returns:
        Label Volume on the image grid.
    """
    return _segment(model, image, preprocess, device, cleanup, turns).labels


def _segment(model, image, preprocess: dict, device, cleanup: str, turns: bool):
    # The model is used as it is (eval mode, not folded or moved): a training caller keeps training it.
    return segment_volume([model.eval()], image, PreprocessConfig.from_dict(preprocess), resolve_device(str(device)),
                          "fp32", cleanup=cleanup, turns=turns)


def evaluate_model(model: torch.nn.Module, manifest, cases: Sequence[Case], device: torch.device | str = "cpu", *,
                   surface: bool = True, cleanup: str = DEFAULT_CLEANUP, turns: bool = DEFAULT_TURNS,
                   progress=None) -> list[dict]:
    """Score a model on cases: every annotated structure of every case, in input space.

    Args:
        model: Network (put in eval mode here; moved to ``device``).
        manifest: Its ModelManifest (for the preprocessing), or a dict with "preprocess".
        cases: Cases with reference labels.
        device: Torch device.
        surface: Also compute MSD and HD95 (mm); otherwise those are NaN.
        cleanup: Post-processing, as ``segment --cleanup`` (default: segment's).
        turns: Also the turned passes, as ``segment --turns`` (default: segment's).
        progress: Optional callable(stage, fraction, message).

    Returns:
        One row per (case, annotated structure): {"case", "label_id", "structure",
        "dice", "msd_mm", "hd95_mm", ..., "naming_status"}; NaN where undefined (see metrics
        module); "naming_status" is the case's level-naming status ("confident" or
        "uncertain", see inference.naming).
    """
    preprocess = manifest["preprocess"] if isinstance(manifest, dict) else manifest.preprocess
    device = torch.device(device)
    model = model.to(device).eval()
    rows = []
    for index, case in enumerate(cases):
        image, reference = load_case(case)
        result = _segment(model, image, preprocess, device, cleanup, turns)
        scores = score_case(result.labels.array.astype(np.int64), reference.array, image.spacing,
                            case.annotated_labels, surface=surface)
        status = result.naming.naming["status"] if result.naming is not None else None
        for label_id, values in scores.items():
            rows.append({"case": case.case_id, "label_id": label_id, "structure": STRUCTURES[label_id].short_name,
                         **values, "naming_status": status})
        if progress is not None:
            progress("evaluate", (index + 1) / len(cases), f"{case.case_id} ({index + 1}/{len(cases)})")
    return rows


def mean_metric(rows: Iterable[dict], metric: str = "dice", label_ids: Iterable[int] | None = None) -> float:
    """Mean of a metric over rows (NaN excluded), optionally over some structures only; NaN if none."""
    wanted = None if label_ids is None else set(label_ids)
    values = [r[metric] for r in rows if (wanted is None or r["label_id"] in wanted) and math.isfinite(r[metric])]
    return float(np.mean(values)) if values else float("nan")
