"""Generation label maps: what a synthetic image is drawn from, one per training case, cached.

A generation map (D, H, W) holds, per voxel of the network grid:

* the case's expert label where it annotates a structure (ids 1-19);
* a model's prediction for the structures the case does *not* annotate (discs in
  ``myo_``/``chu_``, bodies in ``ivd_``, the sacrum everywhere), where the expert map says
  background: those structures get an intensity of their own in synthetic images. They
  are never a loss target (the loss reads the expert map and the case's annotated mask);
* elsewhere, one of K intensity clusters of the image (one-dimensional k-means, K = 6-12:
  fat, muscle, fluid, bowel, air ...), ids ``CLUSTER_BASE`` .. ``CLUSTER_BASE + K - 1``.

Id 0 stays for what lies outside the image after a spatial augmentation. Maps are
computed once per case and kept as ``.npy`` beside the preprocessed-case cache, named by
the case's cache key, K, the predicting weights' checksum and the annotated ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.preprocessing.config import PreprocessConfig

#: First cluster id (ids below are structure ids).
CLUSTER_BASE = NUM_CLASSES
#: Most clusters a map may hold.
MAX_CLUSTERS = 12
#: Number of generation labels (structure ids + the most clusters): the size of every intensity draw.
GENERATION_LABELS = CLUSTER_BASE + MAX_CLUSTERS
#: ``TrainConfig.synth_prediction`` value that names the bundled weights.
BUNDLED = "bundled"


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 25) -> np.ndarray:
    """Cluster centres of one-dimensional values (Lloyd's algorithm from evenly spaced quantiles).

    Deterministic: no random start.

    Args:
        values: (N,) float values.
        k: Number of clusters (>= 1).
        iterations: Most Lloyd iterations.

    Returns:
        (k,) ascending centres (fewer distinct ones if the values have fewer).
    """
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if values.size == 0:
        return np.zeros(k)
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        edges = np.searchsorted(values, (centres[1:] + centres[:-1]) / 2)
        sums = np.add.reduceat(values, np.r_[0, edges]) if values.size else np.zeros(k)
        counts = np.diff(np.r_[0, edges, values.size])
        # reduceat repeats the next sum for empty clusters; those keep their centre
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.allclose(updated, centres):
            break
        centres = np.sort(updated)
    return centres


def cluster_ids(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each value (centres ascending)."""
    return np.searchsorted((centres[1:] + centres[:-1]) / 2, values).astype(np.int64)


def generation_map(image: np.ndarray, label: np.ndarray, annotated: np.ndarray, prediction: np.ndarray | None,
                   clusters: int) -> np.ndarray:
    """The generation label map of one case.

    Args:
        image: (D, H, W) float32 preprocessed image.
        label: (D, H, W) expert label ids.
        annotated: (NUM_CLASSES,) bool annotated mask (background True).
        prediction: (D, H, W) predicted label ids on the same grid, or None.
        clusters: K, 1 to MAX_CLUSTERS.

    Returns:
        (D, H, W) uint8 generation labels in [1, CLUSTER_BASE + K).

    Raises:
        ValueError: K out of range or shapes that differ.
    """
    if not 1 <= clusters <= MAX_CLUSTERS:
        raise ValueError(f"clusters must be 1..{MAX_CLUSTERS}, got {clusters}")
    if image.shape != label.shape or (prediction is not None and prediction.shape != label.shape):
        raise ValueError("image, label and prediction must share one grid")
    annotated = np.asarray(annotated, dtype=bool)
    result = np.where(annotated[label] & (label > 0), label, 0).astype(np.uint8)
    if prediction is not None:
        extra = (result == 0) & (prediction > 0) & ~annotated[prediction]
        result[extra] = prediction[extra]
    rest = result == 0
    if rest.any():
        centres = kmeans_1d(image[rest], clusters)
        result[rest] = CLUSTER_BASE + cluster_ids(image[rest], centres)
    return result


def predicted_labels(model, image: np.ndarray) -> np.ndarray:
    """(D, H, W) uint8 argmax of ``model`` on a preprocessed image (fp32, CPU)."""
    import torch

    from SAFNetSpineLib.inference.segmenter import predict_probabilities

    return predict_probabilities([model], image, torch.device("cpu"), "fp32").argmax(0).numpy().astype(np.uint8)


def _predictor(source: str):
    """(model or None, its PreprocessConfig or None, tag) of the weights predicting unannotated structures."""
    from SAFNetSpineLib.atomic import file_sha256
    from SAFNetSpineLib.weights import TENSOR_FILE, default_weights_dir, load_model

    if not source:
        return None, None, "none"
    folder = default_weights_dir() if source == BUNDLED else Path(source)
    model, manifest = load_model(folder)
    return model, PreprocessConfig.from_dict(manifest.preprocess), file_sha256(folder / TENSOR_FILE)[:12]


def prediction_on_run_grid(model, theirs: PreprocessConfig, ours: PreprocessConfig, case, item) -> np.ndarray:
    """The predictor's labels on the run's grid, predicted on the predictor's own grid.

    A network sees the anatomy at the size its own preprocessing gives it: run on another grid
    (another shape, a widened field of view) it finds the structures worse. So where the two
    configs differ, the case is preprocessed the predictor's way, predicted, restored onto the
    scan and resampled onto the run's grid, as ``segment`` then the training cache would.

    Args:
        model: The predicting network.
        theirs: Its preprocessing (from its manifest).
        ours: The run's preprocessing.
        case: The :class:`~SAFNetSpineLib.data.cases.Case` (its files are read when the configs differ).
        item: Its PreprocessedCase on the run's grid.

    Returns:
        (D, H, W) uint8 label ids on the run's grid.
    """
    if theirs == ours:
        return predicted_labels(model, item.image)
    from SAFNetSpineLib.data.cases import load_case
    from SAFNetSpineLib.preprocessing.grid import NetworkGrid
    from SAFNetSpineLib.preprocessing.pipeline import preprocess_image, preprocess_label
    from SAFNetSpineLib.preprocessing.restore import restore_labels

    image_volume, _ = load_case(case)
    image, grid = preprocess_image(image_volume, theirs)
    restored = restore_labels(predicted_labels(model, image), grid, image_volume)
    return preprocess_label(restored, NetworkGrid.covering(image_volume, ours)).astype(np.uint8)


def generation_maps(cases: Sequence, data: Sequence, preprocess: dict, clusters: int, source: str,
                    cache_dir: Path | None, report=None) -> list[np.ndarray]:
    """Generation maps of training cases, from the cache or computed (and cached) now.

    Args:
        cases: The cases (:class:`~SAFNetSpineLib.data.cases.Case`, for their cache keys).
        data: Their PreprocessedCase, same order.
        preprocess: PreprocessConfig.to_dict() of the run.
        clusters: K.
        source: Weights folder predicting unannotated structures, :data:`BUNDLED`, or "" for none.
        cache_dir: Folder of cache entries; None computes without caching.
        report: Progress callable (stage, fraction, message).

    Returns:
        One (D, H, W) uint8 map per case.
    """
    from SAFNetSpineLib.training.cache import cache_key, load_npy, save_npy

    report = report or (lambda *a, **k: None)
    model, theirs, tag = _predictor(source)
    ours = PreprocessConfig.from_dict(preprocess)
    if theirs is not None and theirs != ours:
        tag += "-own"  # predicted on the predictor's own grid, then resampled onto the run's
    maps = []
    for index, (case, item) in enumerate(zip(cases, data, strict=True)):
        path = None
        if cache_dir is not None:
            bits = sum(1 << i for i, on in enumerate(item.annotated) if on)  # what the case annotates
            path = Path(cache_dir) / f"{cache_key(case, preprocess)}.gen-k{clusters}-{tag}-a{bits:x}.npy"
            cached = load_npy(path)
            if cached is not None and cached.shape == item.label.shape:
                maps.append(cached)
                continue
        prediction = prediction_on_run_grid(model, theirs, ours, case, item) if model is not None else None
        result = generation_map(item.image, item.label, item.annotated, prediction, clusters)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npy(result, path)
        maps.append(result)
        report("synthesis", (index + 1) / max(len(cases), 1), f"generation map {case.case_id}")
    return maps
