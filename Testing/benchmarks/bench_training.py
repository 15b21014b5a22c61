"""Training throughput of SAFNet on this CPU: cases per second for forward + loss + backward + Adam step.

For each width, one training step on a batch of (B, 1, 18, 256, 128) inputs (the paper's
grid) with random 20-class targets, partial annotation masks and the marginal
cross-entropy, after one warm-up step; memory layouts contiguous (what ``train`` uses)
and channels_last_3d are both timed in the same process. Also times the per-case
augmentation (rotation + elastic + contrast, all applied) that runs on the same cores,
so the share of an epoch that is not network compute is visible.

Usage::

    .venv/bin/python Testing/benchmarks/bench_training.py [--widths 16 32 64] [--batch 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.training import TrainConfig
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation
from SAFNetSpineLib.training.losses import marginal_cross_entropy

GRID = (18, 256, 128)


def step_times(width: int, batch: int, repeats: int, channels_last: bool) -> list[float]:
    torch.manual_seed(0)
    model = build_model("safnet", width=width)
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    image = torch.randn(batch, 1, *GRID).to(memory_format=layout)
    target = torch.randint(0, NUM_CLASSES, (batch, *GRID))
    annotated = torch.ones(batch, NUM_CLASSES, dtype=torch.bool)
    annotated[0, 11:] = False  # a partially annotated case, as in the real data
    times = []
    for index in range(repeats + 1):
        start = time.perf_counter()
        loss = marginal_cross_entropy(model(image), target, annotated)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index:  # the first step builds oneDNN primitives
            times.append(time.perf_counter() - start)
    return times


def augmentation_time(repeats: int = 5) -> float:
    transform = build_augmentation(TrainConfig(rotate_prob=1.0, elastic_prob=1.0, contrast_prob=1.0))
    rng = np.random.default_rng(0)
    image = rng.normal(size=GRID).astype(np.float32)
    label = rng.integers(0, NUM_CLASSES, GRID).astype(np.uint8)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        augment_pair(transform, image, label, seed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} before")
    print(f"input ({args.batch}, 1, {GRID[0]}, {GRID[1]}, {GRID[2]}), fp32, marginal CE + backward + Adam step; "
          f"best (median) of {args.repeats} after 1 warm-up")
    for width in args.widths:
        for channels_last in (False, True):
            times = step_times(width, args.batch, args.repeats, channels_last)
            best, median = min(times), statistics.median(times)
            name = "channels_last_3d" if channels_last else "contiguous"
            print(f"  width {width:3d} {name:17s} step {best:6.2f} s ({median:6.2f})  "
                  f"-> {args.batch / best:5.2f} cases/s ({args.batch / median:5.2f})")
    print(f"augmentation (rotation + elastic + contrast, all applied): {augmentation_time():.3f} s per case (median)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
