"""Command lines of the library CLI the module runs, and reading what they write.

The module never imports torch-heavy library code into Slicer for long work; it runs
``python -m SAFNetSpineLib segment|finetune|models ...`` (see :mod:`.jobs`). This file
knows the flags, the output file names and the JSON shapes of those commands.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

#: Device choices offered in the panel, as CLI values.
DEVICES = ("auto", "cuda", "cpu")


def device_labels(gpu_name: str | None, torch_found: bool = True) -> list[tuple[str, str]]:
    """(CLI value, label) of each device choice, naming the GPU when one was found."""
    if not torch_found:
        return [("auto", "Auto (GPU if PyTorch finds one)"), ("cuda", "GPU"), ("cpu", "CPU")]
    if gpu_name:
        return [("auto", f"Auto (GPU: {gpu_name})"), ("cuda", f"GPU: {gpu_name}"), ("cpu", "CPU")]
    return [("auto", "Auto (CPU, no GPU found)"), ("cuda", "GPU (none found)"), ("cpu", "CPU")]


def count_stored_cases(store: str | Path) -> int:
    """Complete cases in a ``CaseStore`` folder (``cases/<id>/case.json``), without importing torch.

    Temporary folders of an unfinished add (``.tmp-*``) do not count.
    """
    cases = Path(store) / "cases"
    if not cases.is_dir():
        return 0
    return sum(1 for c in cases.iterdir() if not c.name.startswith(".") and (c / "case.json").is_file())


def library_root(module_dir: str | Path) -> Path:
    """The folder that holds the ``SAFNetSpineLib`` package (and ``Resources/``).

    Installed extension: the scripted-modules folder itself (module file, library and
    ``Resources/`` side by side). Source tree: the repository root above ``SAFNetSpine/``.

    Raises:
        FileNotFoundError: if neither layout is found.
    """
    module_dir = Path(module_dir).resolve()
    for candidate in (module_dir, module_dir.parent):
        if (candidate / "SAFNetSpineLib" / "__init__.py").is_file():
            return candidate
    raise FileNotFoundError(f"SAFNetSpineLib not found next to {module_dir} or its parent folder")


def make_library_importable(module_dir: str | Path) -> Path:
    """Put the library root on ``sys.path`` (needed when running from the source tree)."""
    root = library_root(module_dir)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def sample_volume_path(root: str | Path) -> Path:
    """The bundled phantom volume registered with the Sample Data module."""
    return Path(root) / "Resources" / "SampleData" / "SAFNetSpinePhantom.nii.gz"


@dataclass(frozen=True)
class WorkFolders:
    """Where the module keeps user data (a writable folder, not the extension's).

    Attributes:
        root: The work folder chosen in the panel.
    """

    root: Path

    @property
    def cases(self) -> Path:
        """The corrected-case store (``CaseStore``)."""
        return self.root / "corrected-cases"

    @property
    def models(self) -> Path:
        """Fine-tuned model versions and the active pointer (``ModelStore``)."""
        return self.root / "models"

    @property
    def runs(self) -> Path:
        """Per-run output folders of segmentations (inputs written for the child, results)."""
        return self.root / "runs"


def _library(python: str, *args: str) -> list[str]:
    return [str(python), "-m", "SAFNetSpineLib", *[str(a) for a in args]]


def segment_command(python: str, image: Path, out_dir: Path, weights: Path | None, device: str,
                    tta: bool = False) -> list[str]:
    """``segment IMAGE -o OUT --device D [--weights W] [--tta] --format nii.gz --progress json``."""
    args = ["segment", str(image), "-o", str(out_dir), "--device", device, "--format", "nii.gz",
            "--progress", "json"]
    if weights is not None:
        args += ["--weights", str(weights)]
    if tta:
        args.append("--tta")
    return _library(python, *args)


def finetune_command(python: str, folders: WorkFolders, epochs: int, device: str,
                     from_weights: Path | None = None, summary: Path | None = None) -> list[str]:
    """``finetune --store S --models M --epochs N --device D --progress json [--from W] [--summary F]``."""
    args = ["finetune", "--store", str(folders.cases), "--models", str(folders.models),
            "--epochs", str(int(epochs)), "--device", device, "--progress", "json"]
    if from_weights is not None:
        args += ["--from", str(from_weights)]
    if summary is not None:
        args += ["--summary", str(summary)]
    return _library(python, *args)


def models_list_command(python: str, folders: WorkFolders) -> list[str]:
    """``models list --models M --json``."""
    return _library(python, "models", "list", "--models", str(folders.models), "--json")


def models_activate_command(python: str, folders: WorkFolders, name: str) -> list[str]:
    """``models activate NAME --models M``."""
    return _library(python, "models", "activate", name, "--models", str(folders.models))


def models_rollback_command(python: str, folders: WorkFolders) -> list[str]:
    """``models rollback --models M``."""
    return _library(python, "models", "rollback", "--models", str(folders.models))


@dataclass(frozen=True)
class ModelChoice:
    """One model version as offered in the model selector.

    Attributes:
        name: Version name ("safnet-default", "safnet-v2").
        folder: Its weights folder.
        status: "bundled", "promoted", "candidate", ...
        active: True for the version segmentation uses by default.
        dice_before: Validation Dice of its parent (fine-tuned versions only).
        dice_after: Its own validation Dice (fine-tuned versions only).
    """

    name: str
    folder: Path
    status: str
    active: bool
    dice_before: float | None = None
    dice_after: float | None = None

    @property
    def label(self) -> str:
        """Text of the selector entry, e.g. ``"safnet-v2 (promoted, Dice 0.812) - active"``."""
        details = [self.status]
        if self.dice_after is not None:
            details.append(f"Dice {self.dice_after:.3f}")
        text = f"{self.name} ({', '.join(details)})"
        return f"{text} - active" if self.active else text


def parse_models_list(output: str) -> tuple[str | None, list[ModelChoice]]:
    """(active name, versions) from the output of ``models list --json``.

    Raises:
        ValueError: if the output holds no such JSON object.
    """
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON in the output of 'models list'")
    record, _end = json.JSONDecoder().raw_decode(output[start:])  # warnings may follow the JSON
    versions = [
        ModelChoice(
            name=str(v["name"]), folder=Path(v["path"]), status=str(v.get("status", "")),
            active=bool(v.get("active")), dice_before=v.get("dice_before"), dice_after=v.get("dice_after"),
        )
        for v in record.get("versions", [])
    ]
    return record.get("active"), versions


def result_paths(out_dir: Path, image: Path) -> tuple[Path, Path]:
    """(label map, summary JSON) the ``segment`` command writes for ``image``."""
    from SAFNetSpineLib.cli.segment import output_stem

    stem = output_stem(Path(image))
    return out_dir / f"{stem}_seg.nii.gz", out_dir / f"{stem}_seg.json"


def read_json(path: Path) -> dict:
    """A JSON object from a file (a result summary)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def finetune_outcome_text(summary: dict) -> str:
    """One paragraph for the panel: version, promoted or candidate, Dice before/after, why."""
    version = summary.get("version", "new version")
    status = summary.get("status", "candidate")
    before, after = summary.get("dice_before"), summary.get("dice_after")
    dice = ""
    if before is not None and after is not None:
        dice = f" Validation Dice {before:.3f} -> {after:.3f} ({after - before:+.3f})."
    verdict = "promoted to the active model" if status == "promoted" else "kept as a candidate (not active)"
    reason = summary.get("reason", "")
    cases = ""
    if summary.get("train_cases") is not None:
        cases = f" Trained on {len(summary['train_cases'])} case(s), validated on {len(summary.get('val_cases', []))}."
    return f"{version}: {verdict}.{dice}{cases} {reason}".strip()
