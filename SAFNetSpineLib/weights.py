"""Model weights on disk: ``model.safetensors`` + ``model.json`` (the manifest).

A weights folder is self-describing: the manifest names the architecture and its
config (so :func:`SAFNetSpineLib.models.build_model` can rebuild it), the label
table, the preprocessing, what data the model was trained on, its version, and
the sha256 of the tensor file. Loading checks all of that before any tensor is
used; nothing is ever unpickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors.torch import load_file

from SAFNetSpineLib.atomic import file_sha256, save_tensors_atomic, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES, table_fingerprint

TENSOR_FILE = "model.safetensors"
MANIFEST_FILE = "model.json"
MANIFEST_FORMAT = 1


@dataclass
class ModelManifest:
    """What a weights folder holds and how to use it.

    Attributes:
        architecture: Registry name for build_model ("safnet").
        model_config: Keyword arguments for build_model (width, num_classes ...).
        preprocess: PreprocessConfig.to_dict() used in training.
        trained_on: Free text: data set(s), number of cases, recipe.
        version: Version name ("safnet-default", "safnet-v3").
        label_table: [[id, short name], ...] of the label table trained against.
        created: ISO 8601 UTC time.
        metrics: Validation figures (e.g. {"val_dice": 0.91}).
        parent_version: Version this one was fine-tuned from, or None.
        sha256: Hex digest of model.safetensors (filled in by save_weights).
        format: Manifest format number.
    """

    architecture: str
    model_config: dict
    preprocess: dict
    trained_on: str = ""
    version: str = "unversioned"
    label_table: list = field(default_factory=table_fingerprint)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    metrics: dict = field(default_factory=dict)
    parent_version: str | None = None
    sha256: str = ""
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelManifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def default_weights_dir() -> Path:
    """The bundled default weights: ``Resources/Models/safnet-default`` beside the library.

    The source tree and the installed Slicer extension both keep ``Resources/`` next to
    the ``SAFNetSpineLib`` package folder.
    """
    return Path(__file__).resolve().parents[1] / "Resources" / "Models" / "safnet-default"


def save_weights(model: torch.nn.Module, folder: str | Path, manifest: ModelManifest) -> Path:
    """Write ``model``'s state as a weights folder (tensors first, manifest last, both atomic).

    Args:
        model: The network (DDP-wrapped models are unwrapped).
        folder: Destination folder (created if missing).
        manifest: Description; its sha256 is filled in here.

    Returns:
        The folder path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)
    state = {k: v for k, v in module.state_dict().items()}
    save_tensors_atomic(state, folder / TENSOR_FILE)
    manifest.sha256 = file_sha256(folder / TENSOR_FILE)
    write_json_atomic(manifest.to_dict(), folder / MANIFEST_FILE)
    return folder


def read_manifest(folder: str | Path) -> ModelManifest:
    """Read and check a weights folder's manifest (not the tensors).

    Raises:
        SpineInputError: missing folder/files, unreadable JSON, a different label table.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpineInputError(folder, "weights folder not found")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise SpineInputError(folder, f"not a weights folder (no {MANIFEST_FILE})")
    if not (folder / TENSOR_FILE).is_file():
        raise SpineInputError(folder, f"not a weights folder (no {TENSOR_FILE})")
    try:
        data = json.loads(manifest_path.read_text())
        manifest = ModelManifest.from_dict(data)
    except (ValueError, TypeError) as error:
        raise SpineInputError(manifest_path, f"unreadable manifest ({error})") from None
    if manifest.label_table != table_fingerprint():
        raise SpineInputError(manifest_path, "weights were trained for a different label table than this version's")
    if int(manifest.model_config.get("num_classes", NUM_CLASSES)) != NUM_CLASSES:
        raise SpineInputError(manifest_path, f"model has {manifest.model_config.get('num_classes')} classes, "
                              f"the label table {NUM_CLASSES}")
    return manifest


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelManifest]:
    """Rebuild the network described by a weights folder and load its tensors.

    Checks the sha256 of the tensor file, the label table, and that tensor names and
    shapes match the architecture exactly.

    Returns:
        (model in eval mode on ``device``, manifest).

    Raises:
        SpineInputError: on any mismatch (tampered file, wrong architecture, other label table).
    """
    from SAFNetSpineLib.models import build_model

    folder = Path(folder)
    manifest = read_manifest(folder)
    tensor_path = folder / TENSOR_FILE
    if manifest.sha256 != file_sha256(tensor_path):
        raise SpineInputError(tensor_path, "checksum does not match model.json (file changed or corrupt)")
    try:
        model = build_model(manifest.architecture, **manifest.model_config)
    except (KeyError, TypeError) as error:
        raise SpineInputError(folder / MANIFEST_FILE, f"cannot build the model it describes ({error})") from None
    try:
        state = load_file(str(tensor_path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise SpineInputError(tensor_path, f"unreadable tensor file ({error})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise SpineInputError(tensor_path, f"tensors do not match {manifest.architecture}: "
                              f"{len(missing)} missing, {len(unexpected)} unexpected")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise SpineInputError(tensor_path, f"tensor shapes do not match the manifest's config (first: {wrong[0]})")
    model.load_state_dict(state)
    return model.to(device).eval(), manifest
