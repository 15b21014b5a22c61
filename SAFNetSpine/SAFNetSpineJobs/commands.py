"""Command lines of the library CLI the module runs, and reading what they write.

The module never imports torch-heavy library code into Slicer for long work; it runs
``python -m SAFNetSpineLib segment|finetune|models|measure ...`` (see :mod:`.jobs`). This
file knows the flags and the JSON shapes of those commands; the output file names come
from the library (:mod:`SAFNetSpineLib.inference.outputs`, torch-free).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .work_folders import WorkFolders


def device_labels(gpu_name: str | None, torch_found: bool = True, gpu_device: str = "cuda") -> list[tuple[str, str]]:
    """(CLI value, label) of each device choice, naming the GPU when one was found.

    ``gpu_device`` is the CLI value of the GPU choice: "cuda", or "mps" on a Mac.
    """
    if not torch_found:
        return [("auto", "Auto (GPU if PyTorch finds one)"), ("cuda", "GPU"), ("cpu", "CPU")]
    if gpu_name:
        return [("auto", f"Auto (GPU: {gpu_name})"), (gpu_device, f"GPU: {gpu_name}"), ("cpu", "CPU")]
    return [("auto", "Auto (CPU, no GPU found)"), ("cuda", "GPU (none found)"), ("cpu", "CPU")]


#: Run in a child Python: the library says which device "auto" means and names the GPU.
#: The Slicer process itself never imports torch (seconds to load, and it would pin the
#: CUDA libraries an update of PyTorch needs to replace).
DEVICE_PROBE = ("import json; from SAFNetSpineLib.runtime import describe_devices; "
                "print(json.dumps(describe_devices()))")


def device_probe_command(python: str) -> list[str]:
    """``python -c DEVICE_PROBE``: one JSON line ``{"auto": "cuda", "gpu_name": "...", ...}``."""
    return [str(python), "-c", DEVICE_PROBE]


def gpu_label(record: dict) -> str | None:
    """The GPU to name in the device choices, from a device record (None: CPU only)."""
    if record.get("gpu_name"):
        return str(record["gpu_name"])
    return "Apple GPU (MPS)" if record.get("auto") == "mps" else None


def parse_device_probe(output: str) -> dict:
    """The device record printed by :func:`device_probe_command` (the last JSON line).

    Raises:
        ValueError: if no such line is in the output.
    """
    for line in reversed(output.splitlines()):
        text = line.strip()
        if text.startswith("{") and text.endswith("}"):
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict) and "auto" in record:
                return record
    raise ValueError("the device check printed no device record")


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


def _library(python: str, *args: str) -> list[str]:
    return [str(python), "-m", "SAFNetSpineLib", *[str(a) for a in args]]


def segment_command(python: str, image: Path, out_dir: Path, weights: Path | None, device: str,
                    tta: bool = False, turns: bool = False) -> list[str]:
    """``segment IMAGE -o OUT --device D [--weights W] [--tta] [--turns on] --format nii.gz --progress json``."""
    args = ["segment", str(image), "-o", str(out_dir), "--device", device, "--format", "nii.gz",
            "--progress", "json"]
    if weights is not None:
        args += ["--weights", str(weights)]
    if tta:
        args.append("--tta")
    if turns:
        args += ["--turns", "on"]
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


def measure_command(python: str, labelmap: Path, out_dir: Path, image: Path | None = None,
                    name: str | None = None) -> list[str]:
    """``measure LABELMAP -o OUT [--image IMAGE] [--name NAME]``: writes ``NAME_measurements.json``."""
    args = ["measure", str(labelmap), "-o", str(out_dir)]
    if image is not None:
        args += ["--image", str(image)]
    if name is not None:
        args += ["--name", name]
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


def result_paths(out_dir: Path, image: Path) -> tuple[Path, Path]:
    """(label map, summary JSON) the ``segment`` command writes for ``image``."""
    from SAFNetSpineLib.inference.outputs import OutputPaths  # torch-free; importable once the library is

    paths = OutputPaths.for_input(Path(out_dir), Path(image))
    return paths.nifti, paths.summary


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


def progress_text(update, elapsed_s: float) -> tuple[int, str]:
    """(percent for the progress bar, status line) of one progress update."""
    return int(round(100 * update.fraction)), f"{update.stage}: {update.message} ({elapsed_s:.0f} s)"


def segment_done_text(summary: dict, count: int, seconds: float) -> str:
    """The status line after a segmentation was loaded into the scene, with the field-of-view warning or
    widening if any."""
    text = (f"Done: {count} structures in {seconds:.0f} s on {summary.get('device', '?')} "
            f"with {summary.get('model_version', '?')}.")
    field = summary.get("field_of_view")
    if isinstance(field, dict) and field.get("warning"):  # an older library writes no field_of_view
        text += f" Warning: {field['warning']}."
    if isinstance(field, dict) and field.get("widened_to_mm"):  # nor widened_to_mm before 2026-12-07
        text += f" The small field of view was widened to {field['widened_to_mm']:.0f} mm, the training scans' smallest."
    if isinstance(field, dict) and field.get("window_mm"):
        text += (f" The large field of view was segmented in its {field['window_mm'][0]:.0f} mm window "
                 "holding the sacrum.")
    return text


def naming_text(summary: dict) -> tuple[str, bool]:
    """(status line, needs the user's confirmation) from a result's ``naming`` record.

    ``naming`` is ``{"status": "confident"|"uncertain"|"out_of_range", "anchor": "sacrum"|"hint"|"none",
    "counted_from": ..., "reason": ...}``; an older library writes none, which gives ``("", False)``.
    """
    naming = summary.get("naming")
    if not isinstance(naming, dict):
        return "", False
    reason = str(naming.get("reason") or "")
    if naming.get("status") == "confident":
        return f"Level names: confident ({reason})." if reason else "Level names: confident.", False
    if naming.get("status") == "out_of_range":  # issue 22: no lumbar or lower thoracic spine in view
        return "No level names: out of range" + (f" ({reason})" if reason else "") + ".", False
    start = f" ({naming['counted_from']})" if naming.get("counted_from") else ""
    return (f"Level names are uncertain{start}" + (f": {reason}" if reason else "") + ". Check one level and use "
            "'Rename levels' (Correct and save) to confirm it; the others follow."), True


#: The measurement table's columns in the panel: (key of the library's row, title). The
#: full rows (all ``ROW_COLUMNS``) go into the table node.
MEASUREMENT_COLUMNS = (("level", "Level"), ("anterior_height_mm", "Ant. (mm)"), ("middle_height_mm", "Mid (mm)"),
                       ("posterior_height_mm", "Post. (mm)"), ("genant_grade", "Genant"),
                       ("angle_deg", "Angle (deg)"), ("slip_mm", "Slip (mm)"))


def measurement_cells(row: dict) -> list[str]:
    """The panel's cells of one measurement row (values as the library rounded them)."""
    return ["" if row.get(key, "") in ("", None) else str(row[key]) for key, _title in MEASUREMENT_COLUMNS]
