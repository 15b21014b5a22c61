"""Training throughput on this CPU: network-only step time, and a full epoch of ``train`` against it.

Two parts, both in one process so their ratio is measured under the same load:

1. ``--widths``: one training step (forward + ``training_loss`` + backward + Adam)
   on a batch of (B, 1, 18, 256, 128) inputs (the paper's grid) with random 20-class
   targets and a partial annotation mask, after one warm-up step, in fp32 and in bf16
   autocast (on CPUs with native bf16), memory layout as ``train`` uses it.
2. ``--epoch-width``: the epoch ratio. ``--cases`` phantoms are preprocessed once; then
   *network-only* time = the same steps on pre-made, un-augmented batches of those cases
   (the epoch's number of batches), and *epoch* time = one epoch of
   :func:`SAFNetSpineLib.training.train` with the default augmentation, no validation
   cases, checkpoint and weights written (the wall time between two epoch reports,
   after a first warm-up epoch). Network-only is timed before and after the epochs and
   averaged, so load drift on a shared machine hits both sides alike; both are given in
   wall seconds and in this process's CPU seconds (steadier when other processes share
   the cores). Also prints the per-case augmentation time on one thread, and the
   per-case time of a sample synthesised from a generation map (``--synth-fraction``
   mixes such samples into the epoch, as ``train --synth-fraction``; their generation
   maps are made once, before the timed epochs).

Usage::

    .venv/bin/python Testing/benchmarks/bench_training.py [--widths 16 32] [--epoch-width 16] [--batch 2]
        [--cases 8] [--epochs 3] [--precision auto|fp32|bf16] [--workers -1]
        [--dice-loss-weight 1.0] [--below-lumbar-weight 1.0]   (the loss terms, as train's flags)
        [--synth-fraction 0.5]   (share of synthesised samples in the epoch, as train's flag)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.training import TrainConfig, train
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augmentation import augment_pair, build_augmentation
from SAFNetSpineLib.training.losses import training_loss

GRID = (18, 256, 128)


def cpu_has_bf16() -> bool:
    try:
        from SAFNetSpineLib.runtime import cpu_has_native_bf16

        return bool(cpu_has_native_bf16())
    except ImportError:
        try:
            return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
        except OSError:
            return False


def autocast_for(precision: str):
    if precision == "bf16":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext


class Stepper:
    """A model + Adam + loss, one training step per call, laid out and cast as ``train`` does on CPU."""

    def __init__(self, width: int, precision: str, seed: int = 0, weights: tuple[float, float] = (0.0, 0.0)):
        torch.manual_seed(seed)
        self.weights = weights  # (soft Dice, set-valued below-L5) weights of training_loss
        self.layout = torch.channels_last_3d
        self.model = build_model("safnet", width=width).to(memory_format=self.layout).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.autocast = autocast_for(precision)

    def __call__(self, image: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor) -> float:
        with self.autocast():
            logits = self.model(image.to(memory_format=self.layout))
        loss = training_loss(logits, target, annotated, *self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def step_times(width: int, batch: int, repeats: int, precision: str, weights=(0.0, 0.0)) -> list[float]:
    stepper = Stepper(width, precision, weights=weights)
    image = torch.randn(batch, 1, *GRID)
    target = torch.randint(0, NUM_CLASSES, (batch, *GRID))
    annotated = torch.ones(batch, NUM_CLASSES, dtype=torch.bool)
    annotated[0, 11:] = False  # a partially annotated case, as in the real data
    times = []
    for index in range(repeats + 1):
        start = time.perf_counter()
        stepper(image, target, annotated)
        if index:  # the first step builds oneDNN primitives
            times.append(time.perf_counter() - start)
    return times


def augmentation_time(config: AugmentConfig, repeats: int = 8) -> float:
    """Median seconds per case of ``config`` on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    transform = build_augmentation(config)
    rng = np.random.default_rng(0)
    image = rng.normal(size=GRID).astype(np.float32)
    label = rng.integers(0, NUM_CLASSES, GRID).astype(np.uint8)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        augment_pair(transform, image, label, seed)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return statistics.median(times)


def synthesis_time(repeats: int = 8) -> float:
    """Median seconds per synthetic sample (default SynthConfig and AugmentConfig) on one thread."""
    from SAFNetSpineLib.training.synth_config import SynthConfig
    from SAFNetSpineLib.training.synth_image import Synthesizer
    from SAFNetSpineLib.training.synth_maps import GENERATION_LABELS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    synth = Synthesizer(AugmentConfig(), SynthConfig())
    generator = torch.Generator().manual_seed(0)
    generation = torch.randint(0, GENERATION_LABELS, GRID, generator=generator)
    label = torch.randint(0, NUM_CLASSES, GRID, generator=generator)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        synth(generation, label, seed)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return statistics.median(times)


def network_only_epoch(width: int, batch: int, precision: str, prepared, weights=(0.0, 0.0)) -> tuple[float, float]:
    """(wall, CPU) seconds for the epoch's steps on pre-made (un-augmented) batches, after one warm-up step."""
    stepper = Stepper(width, precision, seed=1, weights=weights)
    batches = []
    for start in range(0, len(prepared), batch):
        chunk = prepared[start:start + batch]
        batches.append((
            torch.from_numpy(np.stack([c.image for c in chunk]))[:, None],
            torch.from_numpy(np.stack([c.label for c in chunk]).astype(np.int64)),
            torch.from_numpy(np.stack([c.annotated for c in chunk])),
        ))
    stepper(*batches[0])
    started, cpu = time.perf_counter(), time.process_time()
    for item in batches:
        stepper(*item)
    return time.perf_counter() - started, time.process_time() - cpu


def epoch_ratio(args, precision: str) -> None:
    from SAFNetSpineLib.data.cases import load_case_folder
    from SAFNetSpineLib.data.phantom import write_phantom_dataset
    from SAFNetSpineLib.preprocessing import PreprocessConfig
    from SAFNetSpineLib.training.cache import preprocess_cases

    with tempfile.TemporaryDirectory(prefix="bench-training-") as work:
        work = Path(work)
        cases = load_case_folder(write_phantom_dataset(work / "data", args.cases, seed=300))
        preprocess = PreprocessConfig().to_dict()
        prepared = preprocess_cases(cases, preprocess, work / "cache")
        weights = (args.dice_loss_weight, args.below_lumbar_weight)
        network = [network_only_epoch(args.epoch_width, args.batch, precision, prepared, weights)]

        ends: list[tuple[float, float]] = []

        def progress(stage, fraction, message="", **extra):
            if stage == "train" and "epoch" in extra:
                ends.append((time.perf_counter(), time.process_time()))

        config = TrainConfig(width=args.epoch_width, batch_size=args.batch, epochs=args.epochs, device="cpu",
                             precision=precision, num_workers=args.workers, preprocess=preprocess,
                             dice_loss_weight=args.dice_loss_weight, below_lumbar_weight=args.below_lumbar_weight,
                             synth_fraction=args.synth_fraction)
        train(config, cases, [], work / "run", progress=progress, cache_dir=work / "cache")
        network.append(network_only_epoch(args.epoch_width, args.batch, precision, prepared, weights))
    steps = -(-args.cases // args.batch)
    print(f"epoch ratio at width {args.epoch_width}, batch {args.batch}, {args.cases} phantom cases "
          f"({steps} steps), {precision}, loader workers {args.workers}, synthesised share {args.synth_fraction}:")
    for name, index in (("wall", 0), ("CPU", 1)):
        epochs = [b[index] - a[index] for a, b in zip(ends[:-1], ends[1:], strict=True)]
        net, epoch = statistics.mean(n[index] for n in network), statistics.mean(epochs)
        print(f"  {name:4s} network-only (pre-made batches): {net:7.2f} s  "
              f"(before {network[0][index]:.2f}, after {network[1][index]:.2f})")
        print(f"  {name:4s} full epoch (augmented + synthesised): {epoch:7.2f} s  (epochs 2..{args.epochs}: "
              f"{', '.join(f'{e:.2f}' for e in epochs)})")
        print(f"  {name:4s} ratio epoch / network-only:       {epoch / net:7.2f}  (target <= 1.5)")
    print("  (CPU = this process's CPU seconds, all threads: steadier than wall time on a shared machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="*", default=[16, 32])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--epoch-width", type=int, default=16, help="width of the epoch ratio (0: skip it)")
    parser.add_argument("--cases", type=int, default=8, help="phantom cases of the epoch ratio")
    parser.add_argument("--epochs", type=int, default=3, help="epochs run (the first is warm-up)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="precision of the epoch ratio (auto: bf16 on CPUs with native bf16)")
    parser.add_argument("--workers", type=int, default=-1, help="train's num_workers (-1: its default)")
    parser.add_argument("--dice-loss-weight", type=float, default=0.0,
                        help="soft Dice weight of the loss, in the steps and the epoch alike (bundled recipe: 1.0)")
    parser.add_argument("--below-lumbar-weight", type=float, default=0.0,
                        help="set-valued below-L5 weight of the loss, in the steps and the epoch alike")
    parser.add_argument("--synth-fraction", type=float, default=0.0,
                        help="share of the epoch's samples synthesised from generation maps (train's flag)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = cpu_has_bf16()
    print(f"CPU: {platform.processor() or platform.machine()}, native bf16 {bf16}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} before")
    for name, config in (("default", AugmentConfig()),
                         ("every transform", AugmentConfig(**{n: 1.0 for n in AugmentConfig.__dataclass_fields__
                                                              if n.endswith("_prob")}))):
        print(f"augmentation ({name}): {augmentation_time(config):.3f} s per case on 1 thread (median)")
    print(f"synthesis from a generation map: {synthesis_time():.3f} s per case on 1 thread (median)")
    if args.widths:
        print(f"step on ({args.batch}, 1, {GRID[0]}, {GRID[1]}, {GRID[2]}), channels_last_3d, training_loss "
              f"(CE + {args.dice_loss_weight} Dice + {args.below_lumbar_weight} below-L5) + backward + Adam; best (median) of {args.repeats} after 1 warm-up")
    for width in args.widths:
        for precision in ("fp32", "bf16") if bf16 else ("fp32",):
            times = step_times(width, args.batch, args.repeats, precision,
                               (args.dice_loss_weight, args.below_lumbar_weight))
            best, median = min(times), statistics.median(times)
            print(f"  width {width:3d} {precision}  step {best:6.2f} s ({median:6.2f})  "
                  f"-> {args.batch / best:5.2f} cases/s ({args.batch / median:5.2f})")
    if args.epoch_width:
        precision = args.precision if args.precision != "auto" else ("bf16" if bf16 else "fp32")
        epoch_ratio(args, precision)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
