"""SAFNet forward speed on this machine, against matrix-multiply peak and an nnU-Net-style DynUNet.

Measures, in one process so that the ratios share the machine's state:

a. fp32 ``torch.mm`` FLOP/s (4096 x 4096), the machine's practical peak;
b. SAFNet at paper width on a 1 x 1 x 18 x 256 x 128 input, FLOPs counted with
   ``torch.utils.flop_counter.FlopCounterMode``, achieved FLOP/s as a fraction of (a),
   as built (fp32, BatchNorm, contiguous) and prepared for CPU inference
   (``prepare_for_inference``: BatchNorm folded, channels_last_3d);
c. MONAI DynUNet(3, 1, 20, kernel 3, strides [1]+[(1,2,2)]*4, filters 32..320) on the
   same input (its faster layout of contiguous / channels_last_3d);
d. SAFNet under bf16 autocast with channels_last_3d against fp32 (paper width where the
   CPU has native bf16, otherwise width 32: see ``bf16_comparison``);
e. parameter count, fp32 size, GFLOP and prepared fp32 time of SAFNet at several widths, and at
   width 32 with the half-resolution refine head (``refine=16``).

Times are the best of ``--repeats`` runs after one warm-up (the best is the least
disturbed by other processes on a shared machine); medians are printed too.

Usage::

    .venv/bin/python Testing/benchmarks/bench_model_speed.py [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn
from monai.networks.nets import DynUNet
from torch.utils.flop_counter import FlopCounterMode

from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.models.prepare import prepare_for_inference
from SAFNetSpineLib.runtime import autocast_context, cpu_flags, cpu_has_native_bf16

PAPER_INPUT = (1, 1, 18, 256, 128)
WIDTHS = (128, 64, 32, 16)


def dynunet() -> nn.Module:
    return DynUNet(
        3, 1, 20, kernel_size=[[3, 3, 3]] * 5, strides=[[1, 1, 1]] + [[1, 2, 2]] * 4,
        upsample_kernel_size=[[1, 2, 2]] * 4, filters=[32, 64, 128, 256, 320],
    )


def timed(run: Callable[[], object], repeats: int, warm_up: bool = True) -> tuple[float, float]:
    """(best, median) wall time in seconds of ``repeats`` calls, after one warm-up call."""
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def matmul_speed(repeats: int, n: int = 4096) -> tuple[float, float, float]:
    """(FLOPs, best s, median s) of one fp32 n x n x n ``torch.mm``."""
    left, right = torch.randn(n, n), torch.randn(n, n)
    return (2.0 * n**3, *timed(lambda: torch.mm(left, right), repeats))


def count_flops(factory: Callable[[], nn.Module]) -> float:
    """FLOPs of one forward on PAPER_INPUT, counted on the meta device (no compute)."""
    with torch.device("meta"):
        model, x = factory().eval(), torch.empty(PAPER_INPUT)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def forward(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad(), autocast_context("cpu", precision):
            return model(x)

    return run


def record(rows: list[tuple[str, float, float, float]], row: tuple[str, float, float, float]) -> None:
    """Append a (name, GFLOP, best s, median s) row and show it at once (the run is long)."""
    rows.append(row)
    print(f"  {row[0]}: best {row[2]:.3f} s, median {row[3]:.3f} s", flush=True)


def bf16_comparison(repeats: int, slow_width: int) -> tuple[int, list]:
    """Prepared SAFNet in fp32 and under bf16 autocast (channels_last_3d), same weights.

    Without native bf16 (avx512_bf16 / amx_bf16) oneDNN has no bf16 conv3d and PyTorch
    falls back to reference kernels, over 10x slower than fp32; a paper-width bf16 pass
    then takes minutes, so the comparison runs at ``slow_width`` with one bf16 pass.

    Returns:
        (width, [fp32 row, bf16 row, (bf16 / fp32 time, argmax agreement)]).
    """
    native = cpu_has_native_bf16()
    width = 128 if native else slow_width
    flops = count_flops(lambda: build_model("safnet", width=width)) / 1e9
    model = prepare_for_inference(build_model("safnet", width=width), "cpu", "fp32")
    x = torch.randn(PAPER_INPUT).contiguous(memory_format=torch.channels_last_3d)
    fp32_row = (f"SAFNet w{width} fp32 prepared", flops, *timed(forward(model, x), repeats))
    with torch.no_grad():
        reference = model(x)
        started = time.perf_counter()
        with autocast_context("cpu", "bf16"):
            bf16_logits = model(x).float()
        first = time.perf_counter() - started
    bf16_times = timed(forward(model, x, "bf16"), repeats, warm_up=False) if native else (first, first)
    bf16_row = (f"SAFNet w{width} bf16+CL prepared", flops, *bf16_times)
    agreement = (bf16_logits.argmax(1) == reference.argmax(1)).float().mean().item()
    return width, [fp32_row, bf16_row, (bf16_times[0] / fp32_row[2], agreement)]


def machine_description() -> str:
    model_name = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    simd = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return (
        f"{model_name}, {torch.get_num_threads()} torch threads, {simd}, native bf16: {cpu_has_native_bf16()}; "
        f"torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--slow-bf16-width", type=int, default=32,
        help="SAFNet width for the bf16 comparison on CPUs without native bf16 (default 32)",
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy shared machine",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows: list[tuple[str, float, float, float]] = []  # (name, GFLOP, best s, median s)
    print(f"machine: {machine_description()}", flush=True)

    mm_flops, mm_best, mm_median = matmul_speed(args.repeats + 2)
    peak = mm_flops / mm_best
    record(rows, ("torch.mm 4096^3 fp32", mm_flops / 1e9, mm_best, mm_median))

    x = torch.randn(PAPER_INPUT)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    safnet_flops = count_flops(lambda: build_model("safnet"))
    safnet = build_model("safnet").eval()
    record(rows, ("SAFNet w128 fp32 as built", safnet_flops / 1e9, *timed(forward(safnet, x), args.repeats)))
    prepared = prepare_for_inference(copy.deepcopy(safnet), "cpu", "fp32")
    record(rows, ("SAFNet w128 fp32 prepared", safnet_flops / 1e9, *timed(forward(prepared, x_cl), args.repeats)))
    del safnet, prepared
    bf16_width, bf16_rows = bf16_comparison(args.repeats, args.slow_bf16_width)
    for row in bf16_rows[:2]:
        record(rows, row)
    bf16_ratio, bf16_agreement = bf16_rows[2]

    dyn_flops = count_flops(dynunet)
    dyn = dynunet().eval()
    record(rows, ("DynUNet fp32 contiguous", dyn_flops / 1e9, *timed(forward(dyn, x), args.repeats)))
    dyn.to(memory_format=torch.channels_last_3d)
    record(rows, ("DynUNet fp32 channels_last_3d", dyn_flops / 1e9, *timed(forward(dyn, x_cl), args.repeats)))
    del dyn

    print(f"{'run':34s} {'GFLOP':>8s} {'best s':>8s} {'median s':>9s} {'GFLOP/s':>8s} {'of mm':>6s}")
    for name, gflop, best, median in rows:
        print(f"{name:34s} {gflop:8.1f} {best:8.3f} {median:9.3f} {gflop / best:8.1f} {gflop * 1e9 / best / peak:6.0%}")
    by_name = {name: best for name, _, best, _ in rows}
    fp32 = by_name["SAFNet w128 fp32 prepared"]
    dyn_best = min(by_name["DynUNet fp32 contiguous"], by_name["DynUNet fp32 channels_last_3d"])
    built = by_name["SAFNet w128 fp32 as built"]
    print(f"SAFNet prepared fp32 / DynUNet (faster layout): {fp32 / dyn_best:.2f} (target <= 0.5)")
    print(f"SAFNet as built fp32 / DynUNet (faster layout): {built / dyn_best:.2f}")
    print(f"SAFNet prepared fp32 FLOP/s / mm FLOP/s: {safnet_flops / fp32 / peak:.0%} (target >= 70%)")
    print(f"SAFNet w{bf16_width} bf16 / fp32 time: {bf16_ratio:.2f}; "
          f"argmax agreement bf16 vs fp32 (random weights): {bf16_agreement:.4f}")

    print("\nwidth  params  fp32 MB  GFLOP  prepared fp32 best s")
    width_rows = []
    for width, options in [(w, {}) for w in WIDTHS] + [(32, {"refine": 16})]:
        model = build_model("safnet", width=width, **options).eval()
        params = sum(p.numel() for p in model.parameters())
        gflop = count_flops(lambda w=width, o=options: build_model("safnet", width=w, **o)) / 1e9
        prepare_for_inference(model, "cpu", "fp32")
        best, _ = timed(forward(model, x_cl), args.repeats) if width != 128 else (fp32, None)
        name = f"{width}" + "".join(f" {k} {v}" for k, v in options.items())
        width_rows.append((name, params, params * 4 / 2**20, gflop, best))
        print(f"{name:>5s} {params:8d} {params * 4 / 2**20:8.1f} {gflop:6.1f} {best:8.3f}")

    print("\n```markdown")
    print(f"Machine: {machine_description()}\n")
    print("| run | GFLOP | best s | median s | GFLOP/s | of mm FLOP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, gflop, best, median in rows:
        print(f"| {name} | {gflop:.1f} | {best:.3f} | {median:.3f} | {gflop / best:.1f} | "
              f"{gflop * 1e9 / best / peak:.0%} |")
    print(f"\nSAFNet prepared fp32 / DynUNet: **{fp32 / dyn_best:.2f}** (target <= 0.5); "
          f"SAFNet FLOP/s / mm FLOP/s: **{safnet_flops / fp32 / peak:.0%}** (target >= 70%); "
          f"SAFNet w{bf16_width} bf16 / fp32 time: **{bf16_ratio:.2f}**, argmax agreement "
          f"{bf16_agreement:.4f} (random weights).\n")
    print("| SAFNet width | parameters | fp32 MB | GFLOP | prepared fp32 best s |")
    print("|---:|---:|---:|---:|---:|")
    for width, params, megabytes, gflop, best in width_rows:
        print(f"| {width} | {params:,} | {megabytes:.1f} | {gflop:.1f} | {best:.3f} |")
    print("```")


if __name__ == "__main__":
    main()
