"""Fine-tuning time: N corrected cases x E epochs at the bundled width, on a given number of CPU threads.

Issue 3 asks that 10 corrected cases x 20 epochs fine-tune in under 15 minutes on 2 CPU
cores. The benchmark builds a case store of synthetic phantoms (every structure
reviewed), starts from the bundled weights (or, where none are bundled yet, a randomly
initialised SAFNet at ``--width``: the time does not depend on the weights' values), and
runs :func:`SAFNetSpineLib.finetune.finetune` exactly as the CLI does, timing:

* setup (split, reading and preprocessing the cases, the "before" validation),
* each training epoch (forward + backward over the training cases, then validation),
* the "after" validation, writing the version and promoting it.

With ``--epochs`` below ``--target-epochs`` the total for the target is *extrapolated*
as setup + target_epochs x mean epoch time + finish, and printed as such.

Usage::

    .venv/bin/python Testing/benchmarks/bench_finetune.py [--cases 10] [--epochs 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from SAFNetSpineLib.data.phantom import make_phantom
from SAFNetSpineLib.finetune import finetune
from SAFNetSpineLib.labels import FOREGROUND_IDS
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.weights import (
    MANIFEST_FILE,
    ModelManifest,
    default_weights_dir,
    read_manifest,
    save_weights,
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def start_weights(folder: Path, weights: Path | None, width: int) -> tuple[Path, str]:
    """(weights folder, description): --weights, else the bundled default, else random init at ``width``."""
    if weights is not None:
        return weights, f"--weights {weights}"
    bundled = default_weights_dir()
    if (bundled / MANIFEST_FILE).is_file():
        return bundled, f"bundled {bundled.name}"
    config = {"width": width, "in_channels": 1, "num_classes": len(FOREGROUND_IDS) + 1}
    torch.manual_seed(0)
    manifest = ModelManifest("safnet", config, PreprocessConfig().to_dict(), version="bench-random-init")
    save_weights(build_model("safnet", **config), folder, manifest)
    return folder, f"random init (no bundled weights yet), width {width}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10, help="corrected cases in the store")
    parser.add_argument("--epochs", type=int, default=20, help="epochs actually run (0: the automatic schedule)")
    parser.add_argument("--promotion", default="holdout", choices=("auto", "cross-validation", "holdout"),
                        help="how the version is judged (holdout: one training, the timing this bench was made "
                             "for; auto / cross-validation: folds + 1 trainings)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--target-epochs", type=int, default=20, help="epochs the figure is reported for")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the 'cores')")
    parser.add_argument("--width", type=int, default=128, help="width when no weights are bundled")
    parser.add_argument("--weights", type=Path, help="starting weights (default: bundled)")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as work:
        work = Path(work)
        weights, weights_text = start_weights(work / "start", args.weights, args.width)
        manifest = read_manifest(weights)

        t0 = time.perf_counter()
        store = CaseStore(work / "store")
        for seed in range(args.cases):
            # Fixed ids fix the split: these ten give 9 training cases and 1 validation case,
            # the most training work a 10-case store can ask for.
            store.add(
                *make_phantom(1000 + seed), FOREGROUND_IDS, manifest.version, case_id=f"corrected-{seed:02d}"
            )
        store_s = time.perf_counter() - t0

        marks: dict[str, float] = {}
        epoch_ends: list[float] = []

        def progress(stage, fraction, message="", **extra):
            now = time.perf_counter()
            if stage != "train" and not epoch_ends:
                marks["setup_end"] = now  # last report before training starts
            if stage == "train" and "epoch" in extra:
                epoch_ends.append(now)

        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = finetune(
            store,
            weights,
            work / "models",
            epochs=args.epochs,
            device="cpu",
            batch_size=args.batch_size,
            promotion=args.promotion,
            lr=args.lr,
            progress=progress,
        )
        total = time.perf_counter() - started
        load_after = os.getloadavg()[0]

    setup_end = marks["setup_end"]
    epochs = [b - a for a, b in zip([setup_end, *epoch_ends[:-1]], epoch_ends, strict=True)]
    setup = setup_end - started
    finish = started + total - epoch_ends[-1]
    mean_epoch = statistics.mean(epochs)
    target = setup + args.target_epochs * mean_epoch + finish
    print(
        f"CPU: {cpu_name()}, torch {torch.__version__}, {args.threads} threads "
        f"(load average {load_before:.1f} before, {load_after:.1f} after)"
    )
    print(
        f"start weights: {weights_text} ({manifest.architecture}, "
        f"width {manifest.model_config.get('width')}, grid {manifest.preprocess.get('target_shape')})"
    )
    print(
        f"store: {args.cases} phantom cases written in {store_s:.1f} s; split "
        f"{len(result.train_cases)} train / {len(result.val_cases)} validation; batch {args.batch_size}"
    )
    print(f"setup (read + preprocess + 'before' validation): {setup:8.1f} s")
    print(
        f"epoch (train + validation), mean of {len(epochs)}:     {mean_epoch:8.1f} s  "
        f"(min {min(epochs):.1f}, max {max(epochs):.1f})"
    )
    print(f"finish ('after' validation + write + promote):  {finish:8.1f} s")
    print(f"measured total, {args.epochs} epochs:               {total:8.1f} s = {total / 60:.1f} min")
    print(f"trainings {result.schedule['trainings']} ({result.promotion}, {result.folds} folds), "
          f"published version: {result.schedule['epochs']} epochs / {result.schedule['steps']} steps")
    if args.epochs != args.target_epochs and result.schedule["trainings"] == 1:
        print(
            f"EXTRAPOLATED total, {args.target_epochs} epochs:           {target:8.1f} s = "
            f"{target / 60:.1f} min (setup + {args.target_epochs} x mean epoch + finish)"
        )
    print(f"Dice before {result.dice_before:.4f}, after {result.dice_after:.4f}: {result.status} "
          f"(confidence {result.confidence:.2f})")


if __name__ == "__main__":
    main()
