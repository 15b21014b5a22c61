"""Does bf16 autocast training converge as fp32 does? Same seeded run twice, on phantoms at the paper's grid.

Trains SAFNet (``--width``, batch ``--batch``) from the same initialisation on ``--cases``
phantoms for ``--epochs`` epochs, with the default augmentation, once in fp32 and once in
bf16 autocast, validating (in fp32, so both are scored alike) on ``--val`` further
phantoms every epoch; prints the loss and validation Dice per epoch and the epoch times.

Usage::

    .venv/bin/python Testing/benchmarks/bench_training_precision.py [--width 16] [--epochs 6] [--cases 6] [--val 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from SAFNetSpineLib.data.cases import load_case_folder
from SAFNetSpineLib.data.phantom import write_phantom_dataset
from SAFNetSpineLib.finetune.crossval import case_means, per_case_rows
from SAFNetSpineLib.runtime import cpu_has_native_bf16
from SAFNetSpineLib.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--val", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    print(f"native bf16: {cpu_has_native_bf16()}, load average {os.getloadavg()[0]:.1f} before")
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as work:
        work = Path(work)
        cases = load_case_folder(write_phantom_dataset(work / "data", args.cases + args.val, seed=900))
        train_cases, val_cases = cases[:args.cases], cases[args.cases:]
        for precision in ("fp32", "bf16"):
            config = TrainConfig(width=args.width, batch_size=args.batch, epochs=args.epochs, lr=args.lr,
                                 device="cpu", precision=precision, seed=0)
            started = time.perf_counter()
            result = train(config, train_cases, [], work / precision, cache_dir=work / "cache")
            seconds = time.perf_counter() - started
            dice = np.mean(case_means(per_case_rows(result.weights_dir, val_cases, "cpu", work / "cache")))
            losses = " ".join(f"{h['loss']:.3f}" for h in result.history)
            print(f"{precision}: loss per epoch {losses}; final val Dice (fp32 scoring) {dice:.4f}; "
                  f"{seconds / args.epochs:.1f} s per epoch")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
