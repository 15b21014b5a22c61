"""Peak memory of ``segment`` against the number of input voxels (the figure behind the size check).

Upsamples a phantom (float32, bundled weights, CPU) to each grid given, runs
``segment`` on it in a child process and reads the child's peak resident memory; the
slope is the per-voxel figure :data:`SAFNetSpineLib.io.validation.SEGMENT_BYTES_PER_VOXEL`
is checked against (docs/INPUT_CHECKS.md).

Run: ``.venv/bin/python Testing/benchmarks/bench_input_memory.py 16x300x200 30x1000x1000 80x1000x1000``
(the last needs about 5 GB and a minute or two).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom

REPO = Path(__file__).resolve().parents[2]
CHILD = ("import resource, sys; from SAFNetSpineLib.cli import main; code = main(sys.argv[1:]); "
         "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def peak_bytes(size: tuple[int, int, int], folder: Path) -> int:
    """Peak resident bytes of ``segment`` on a phantom resampled to ``size`` voxels."""
    image, _ = make_phantom(3, PhantomOptions(random_orientation=False, oblique_deg=0.0))
    source = image.to_sitk()
    spacing = [source.GetSpacing()[i] * source.GetSize()[i] / size[i] for i in range(3)]
    big = sitk.Resample(source, list(size), sitk.Transform(), sitk.sitkLinear, source.GetOrigin(), spacing,
                        source.GetDirection(), 0.0, sitk.sitkFloat32)
    path = folder / f"phantom_{'x'.join(map(str, size))}.nii"
    sitk.WriteImage(big, str(path))
    del big
    command = [sys.executable, "-c", CHILD, "segment", str(path), "-o", str(folder / "out"), "--device", "cpu",
               "--progress", "none"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    path.unlink()
    peaks = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK_KIB")]
    if done.returncode != 0 or not peaks:
        raise SystemExit(f"segment failed on {size}: {done.stderr.strip()[-400:]}")
    return peaks[0] * 1024


def main(grids: list[str]) -> None:
    sizes = [tuple(int(n) for n in grid.split("x")) for grid in grids]
    voxels, peaks = [], []
    with tempfile.TemporaryDirectory(prefix="bench-input-memory-") as temp:
        for size in sizes:
            started = time.perf_counter()
            peaks.append(peak_bytes(size, Path(temp)))
            voxels.append(int(np.prod(size)))
            print(f"{'x'.join(map(str, size))}: {voxels[-1]:,} voxels, peak {peaks[-1] / 1e9:.2f} GB "
                  f"({peaks[-1] / voxels[-1]:.1f} B/voxel all told), {time.perf_counter() - started:.0f} s")
    if len(sizes) >= 2:
        slope, base = np.polyfit(voxels, peaks, 1)
        print(f"slope {slope:.1f} bytes/voxel above a base of {base / 1e9:.2f} GB")


if __name__ == "__main__":
    main(sys.argv[1:] or ["16x300x200", "30x1000x1000"])
