"""Benchmark: the training loss alone (forward + backward) at the paper's grid, fused vs term by term.

`training_loss` shares one log-softmax between the marginal cross-entropy, the soft Dice
and the set-valued term below L5 (and the optional tilt term); calling the three public
terms separately computes it three times. With ``--against FILE`` (a copy of an older ``losses.py``) its three terms are
timed too, in the same run. Prints the median of ``--repeats`` timings per variant.

Usage:
    .venv/bin/python Testing/benchmarks/bench_losses.py [--batch-size 2] [--repeats 5] [--against OLD.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.training import losses  # noqa: E402


def _batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """bf16 logits (as autocast gives them) leaning 6 nats to the target, an L5/L4 body target and L1-L5
    annotation (so the tilt term finds both bodies predicted and orients them)."""
    torch.manual_seed(0)
    target = torch.zeros(batch_size, 18, 256, 128, dtype=torch.long)
    target[:, 4:14, 150:180, 30:90] = 2
    target[:, 4:14, 110:140, 30:90] = 3
    logits = torch.randn(batch_size, 20, 18, 256, 128).scatter_add_(
        1, target.unsqueeze(1), torch.full((batch_size, 1, 18, 256, 128), 6.0))
    logits = logits.bfloat16().contiguous(memory_format=torch.channels_last_3d)
    annotated = torch.zeros(batch_size, 20, dtype=torch.bool)
    annotated[:, [0, 2, 3, 4, 5, 6]] = True
    return logits, target, annotated


def _separate(module):
    def loss(logits, target, annotated):
        return (module.marginal_cross_entropy(logits, target, annotated)
                + module.marginal_soft_dice_loss(logits, target, annotated)
                + module.below_lumbar_set_loss(logits, target, annotated))
    return loss


def _time(loss_fn, batch, repeats: int) -> float:
    logits, target, annotated = batch
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        leaf = logits.detach().clone().requires_grad_()
        start = time.perf_counter()
        loss_fn(leaf, target, annotated).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="an older losses.py to time term by term as well")
    args = parser.parse_args()
    batch = _batch(args.batch_size)
    variants = {
        "fused training_loss": lambda lg, t, a: losses.training_loss(lg, t, a, 1.0, 1.0),
        "three terms, this losses.py": _separate(losses),
        "fused training_loss + tilt term": lambda lg, t, a: losses.training_loss(lg, t, a, 1.0, 1.0, 20.0),
    }
    if args.against:
        spec = importlib.util.spec_from_file_location("older_losses", args.against)
        older = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(older)
        variants[f"three terms, {args.against.name}"] = _separate(older)
    print(f"loss forward + backward, batch {args.batch_size} x 20 classes x 18 x 256 x 128, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    base = None
    for name, fn in variants.items():
        seconds = _time(fn, batch, args.repeats)
        base = base or seconds
        print(f"  {name:<40} {seconds:6.3f} s  ({seconds / base:4.2f}x the fused loss)")


if __name__ == "__main__":
    main()
