"""Kill loop: ``kill -9`` of `cases add` and `finetune` at random moments leaves nothing behind after the next command.

On small phantom data and a width-8 network, the script runs each command as a child
process, kills it (SIGKILL: no clean-up code runs) after a random delay drawn from 0 to
the time an unkilled run takes, then runs the next command a user would (``cases list``
for the case store, ``models list`` for the models folder) and checks:

* no ``.tmp-*`` is left in the store or the models folder (they may hold a copy of the
  patient image, or preprocessed patient images in a fine-tune's work folder);
* the store's ``dataset.json`` lists exactly the complete cases;
* ``models list`` and ``active.json`` agree: the version listed active is the one
  ``active.json`` names, no version says "promoted" without ever having been activated,
  no version is "missing" or "invalid".

Usage::

    .venv/bin/python Testing/benchmarks/bench_kill_loop.py --work /tmp/kill-loop [--kills 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from SAFNetSpineLib.cli import main as cli  # noqa: E402
from SAFNetSpineLib.data.phantom import make_phantom  # noqa: E402
from SAFNetSpineLib.io import write_volume  # noqa: E402
from SAFNetSpineLib.stores import CaseStore, ModelStore  # noqa: E402


def run_cli(*args: str) -> str:
    """Run a command in this process (the "next command"); its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} exited {code}: {err.getvalue().strip()}")
    return out.getvalue() + err.getvalue()


def temp_entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".tmp-*")) if folder.exists() else []


def kill_after(command: list[str], delay: float) -> str:
    """Start ``command``, SIGKILL it after ``delay`` s; "killed" or "finished" (it ended first)."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child.wait(timeout=delay)
        return "finished"
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
        return "killed"


def store_problems(store: Path) -> list[str]:
    problems = [f"left behind: {p}" for p in temp_entries(store)]
    if (store / "dataset.json").is_file():
        listed = sorted(c["case"] for c in json.loads((store / "dataset.json").read_text())["cases"])
        present = sorted(c.case_id for c in CaseStore(store).list())
        if listed != present:
            problems.append(f"dataset.json lists {listed}, the store holds {present}")
    return problems


def models_problems(models: Path, bundled: Path) -> list[str]:
    return [f"left behind: {p}" for p in temp_entries(models)] + ModelStore(models, bundled_dir=bundled).disagreements()


def write_tiny_weights(folder: Path) -> Path:
    import torch

    from SAFNetSpineLib.models import build_model
    from SAFNetSpineLib.preprocessing import PreprocessConfig
    from SAFNetSpineLib.weights import ModelManifest, save_weights

    torch.manual_seed(0)
    config = {"width": 8, "in_channels": 1, "num_classes": 20}
    manifest = ModelManifest("safnet", config, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(),
                             trained_on="kill loop", version="tiny")
    return save_weights(build_model("safnet", **config), folder, manifest)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def kill_loop(command: list[str], kills: int, rng: random.Random, full: float, folder: Path, next_command,
              problems) -> dict[str, int]:
    """Kill ``command`` ``kills`` times, run ``next_command()`` after each, count what ``problems()`` finds."""
    tally = {"killed": 0, "finished": 0, "left before next command": 0, "problems after next command": 0}
    for _ in range(kills):
        tally[kill_after(command, rng.uniform(0.0, full))] += 1
        tally["left before next command"] += int(bool(temp_entries(folder)))
        next_command()
        found = problems()
        tally["problems after next command"] += int(bool(found))
        for problem in found:
            print(f"{command[3]}: {problem}", flush=True)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    parser.add_argument("--kills", type=int, default=30, help="kills of each command")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(args.work, ignore_errors=True)
    data = args.work / "data"
    data.mkdir(parents=True)
    image, label = make_phantom(0)
    image_path, label_path = write_volume(image, data / "image.nii.gz"), write_volume(label, data / "label.nii.gz")
    python = [sys.executable, "-m", "SAFNetSpineLib"]
    counts: dict[str, dict[str, int]] = {}

    # cases add
    store = args.work / "store"
    add = [*python, "cases", "add", str(image_path), str(label_path), "--store", str(store), "--reviewed", "all"]
    full = timed(add)
    counts["cases add"] = kill_loop(add, args.kills, rng, full, store, lambda: store.exists() and run_cli(
        "cases", "list", "--store", str(store)), lambda: store_problems(store))
    counts["cases add"]["cases stored"] = len(CaseStore(store).list())

    # finetune: three phantom patients, so versions are published and (confidence 0 needed) promoted
    patients = CaseStore(args.work / "finetune-store")
    for seed in (1, 2, 3):
        patients.add(*make_phantom(seed), range(1, 20), "tiny", case_id=f"phantom-{seed}", patient_id=f"P{seed}")
    weights = write_tiny_weights(args.work / "tiny")
    models = args.work / "models"
    finetune = [*python, "finetune", "--store", str(patients.folder), "--from", str(weights), "--models",
                str(models), "--epochs", "1", "--batch-size", "1", "--no-augment", "--device", "cpu",
                "--min-confidence", "0"]
    full = timed(finetune)
    counts["finetune"] = kill_loop(finetune, args.kills, rng, full, models, lambda: run_cli(
        "models", "list", "--models", str(models)), lambda: models_problems(models, weights))
    versions = ModelStore(models, bundled_dir=weights).versions()
    counts["finetune"]["versions published"] = sum(1 for v in versions if v.status in ("promoted", "candidate"))
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
