"""Time the geometry steps around the network for a 15 x 512 x 512 sagittal volume.

Issue 2 allows at most 1 s of I/O and resampling on top of the forward pass, with
peak memory under 2 GB. This measures each step (median of several runs) and the
process's peak resident memory.

Run: ``.venv/bin/python Testing/benchmarks/bench_geometry.py``
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from SAFNetSpineLib.io import read_volume, write_seg_nrrd, write_volume
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.preprocessing import PreprocessConfig, preprocess_image, restore_labels
from SAFNetSpineLib.volume import Volume

REPEATS = 5


def sagittal_volume() -> Volume:
    """int16 noise with a bright column, 15 slices of 512 x 512 at 4 x 0.6 x 0.6 mm, slightly oblique."""
    rng = np.random.default_rng(0)
    array = rng.normal(300, 60, (15, 512, 512)).astype(np.int16)
    array[3:12, 60:460, 180:300] += 400
    a = np.deg2rad(7.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    direction = tilt @ np.array([[-1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # i -> right, j -> inferior, k -> anterior
    return Volume(array, (4.0, 0.6, 0.6), (30.0, -150.0, 160.0), direction)


def spine_scores(shape: tuple[int, int, int]) -> np.ndarray:
    """Softmax-like scores (20, D, H, W) where a column of 19 stacked structures wins."""
    rng = np.random.default_rng(1)
    labels = np.zeros(shape, dtype=np.int64)
    rows = np.linspace(30, 230, NUM_CLASSES, dtype=int)
    for label, (top, bottom) in enumerate(zip(rows[:-1], rows[1:], strict=True), start=1):
        labels[4:14, top:bottom, 40:90] = label
    scores = rng.uniform(0.0, 0.3, (NUM_CLASSES,) + shape).astype(np.float32)
    np.put_along_axis(scores, labels[None], 1.0, axis=0)
    return scores


def timed(step, repeats: int = REPEATS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = PreprocessConfig()
    with tempfile.TemporaryDirectory() as folder:
        source = write_volume(sagittal_volume(), Path(folder) / "sagittal.nii.gz")
        rows = []
        seconds, image = timed(lambda: read_volume(source))
        rows.append(("read_volume (.nii.gz, int16, with checks)", seconds))
        seconds, (network, grid) = timed(lambda: preprocess_image(image, config))
        rows.append(("preprocess_image -> (18, 256, 128)", seconds))
        scores = spine_scores(grid.shape)
        labels = np.argmax(scores, axis=0)
        seconds, restored = timed(lambda: restore_labels(labels, grid, image))
        rows.append(("restore_labels from labels (nearest)", seconds))
        seconds, smooth = timed(lambda: restore_labels(scores, grid, image))
        rows.append(("restore_labels from 20-class scores (linear)", seconds))
        seconds, _ = timed(lambda: write_volume(smooth, Path(folder) / "out_seg.nii.gz"))
        rows.append(("write_volume .nii.gz (uint8)", seconds))
        seconds, _ = timed(lambda: write_seg_nrrd(smooth, Path(folder) / "out.seg.nrrd"))
        rows.append(("write_seg_nrrd", seconds))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    agreement = float(np.mean(restored.array == smooth.array))
    print(f"input {image.shape} {image.array.dtype}, network {network.shape}, median of {REPEATS} runs")
    for name, seconds in rows:
        print(f"  {name:48s} {seconds * 1000:8.1f} ms")
    fast = rows[0][1] + rows[1][1] + rows[2][1] + rows[4][1]
    smooth_total = rows[0][1] + rows[1][1] + rows[3][1] + rows[4][1]
    print(f"  read + preprocess + restore(labels) + write .nii.gz  {fast * 1000:8.1f} ms")
    print(f"  read + preprocess + restore(scores) + write .nii.gz  {smooth_total * 1000:8.1f} ms")
    print(f"  nearest vs linear restore agree on {agreement:.4f} of voxels")
    print(f"  peak RSS {peak_mb:.0f} MB (after imports {baseline_mb:.0f} MB)")


if __name__ == "__main__":
    main()
