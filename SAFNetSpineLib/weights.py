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
from typing import TYPE_CHECKING

from SAFNetSpineLib.atomic import file_sha256, save_tensors_atomic, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES, table_fingerprint

if TYPE_CHECKING:  # torch is imported where tensors are handled, not to read a manifest
    import torch

TENSOR_FILE = "model.safetensors"
MANIFEST_FILE = "model.json"
MANIFEST_FORMAT = 1
#: H and W of the network grid must be multiples of this: every registered network halves them four times.
NETWORK_INPLANE_MULTIPLE = 16
#: Largest network grid a manifest may ask for: 14 times the paper's 18 x 256 x 128.
MAX_NETWORK_VOXELS = 2**23


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
        model_card: File name, relative to the weights folder, of the model card (intended
            use, training data, evaluation, limits), e.g. "README.md"; "" when there is none.
        trained_fov_mm: [smallest, largest] in-plane field of view (mm, superior-inferior and
            anterior-posterior) of the scans the network was trained on, or None when unknown;
            ``segment`` warns about scans far outside it (inference.field_of_view).
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
    model_card: str = ""
    trained_fov_mm: list | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelManifest:
        """Build from ``model.json`` content after checking every field's type.

        Raises:
            ValueError: a missing required field or a field of the wrong type, named.
        """
        if not isinstance(data, dict):
            raise ValueError(f"the manifest is a JSON {_json_type(data)}, not an object")
        for name in ("architecture", "model_config", "preprocess"):
            if name not in data:
                raise ValueError(f"'{name}' is missing")
        for name, types in _FIELD_TYPES.items():
            if name in data and not isinstance(data[name], types):
                wanted = " or ".join(_json_type(t) for t in types)
                raise ValueError(f"'{name}' is a JSON {_json_type(data[name])}, not {wanted}")
        if not data["architecture"].strip():
            raise ValueError("'architecture' is empty")
        fov = data.get("trained_fov_mm")
        if fov is not None and not (len(fov) == 2 and all(_json_type(v) == "number" and v > 0 for v in fov)
                                    and fov[0] <= fov[1]):
            raise ValueError(f"'trained_fov_mm' must be [smallest, largest] in mm, got {fov}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


#: JSON types each manifest field may have (bool is excluded from numbers where it matters).
_FIELD_TYPES = {
    "architecture": (str,),
    "model_config": (dict,),
    "preprocess": (dict,),
    "trained_on": (str,),
    "version": (str,),
    "label_table": (list,),
    "created": (str,),
    "metrics": (dict,),
    "parent_version": (str, type(None)),
    "sha256": (str,),
    "format": (int,),
    "model_card": (str,),
    "trained_fov_mm": (list, type(None)),
}


def _json_type(value) -> str:
    """The JSON name of a value's type, or of a Python type."""
    kind = value if isinstance(value, type) else type(value)
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
             type(None): "null"}
    return next((text for t, text in names.items() if issubclass(kind, t) and not (t is int and kind is bool)),
                kind.__name__)


def default_weights_dir() -> Path:
    """The bundled default weights: ``Resources/Models/safnet-default`` (see :mod:`SAFNetSpineLib.bundled`).

    The source tree and the installed Slicer extension keep ``Resources/`` next to the
    ``SAFNetSpineLib`` package folder; ``pip install .`` puts it inside the package.
    """
    from SAFNetSpineLib.bundled import resources_dir

    return resources_dir() / "Models" / "safnet-default"


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
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest = ModelManifest.from_dict(data)
    except OSError as error:
        raise SpineInputError(manifest_path, f"unreadable manifest ({error.strerror or error})") from None
    except (ValueError, TypeError) as error:
        raise SpineInputError(manifest_path, f"unreadable manifest ({error})") from None
    if manifest.label_table != table_fingerprint():
        raise SpineInputError(manifest_path, "weights were trained for a different label table than this version's")
    classes = manifest.model_config.get("num_classes", NUM_CLASSES)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes != NUM_CLASSES:
        raise SpineInputError(manifest_path, f"model has {classes} classes, the label table {NUM_CLASSES}")
    _check_preprocess(manifest.preprocess, manifest_path)
    return manifest


def _check_preprocess(preprocess: dict, manifest_path: Path) -> None:
    """Refuse a ``preprocess`` entry that inference could not use, naming the manifest.

    Beyond what :class:`PreprocessConfig` checks, the network grid must suit every
    registered network (H and W multiples of :data:`NETWORK_INPLANE_MULTIPLE`) and fit
    in memory (at most :data:`MAX_NETWORK_VOXELS`).
    """
    from SAFNetSpineLib.preprocessing.config import PreprocessConfig

    try:
        shape = PreprocessConfig.from_dict(preprocess).target_shape
    except SpineInputError as error:
        raise SpineInputError(manifest_path, f"bad 'preprocess' entry ({error.problem})") from None
    text = " x ".join(str(n) for n in shape)
    if shape[1] % NETWORK_INPLANE_MULTIPLE or shape[2] % NETWORK_INPLANE_MULTIPLE:
        raise SpineInputError(manifest_path, f"bad 'preprocess' entry (target_shape {text}: H and W must be "
                                             f"multiples of {NETWORK_INPLANE_MULTIPLE})")
    if shape[0] * shape[1] * shape[2] > MAX_NETWORK_VOXELS:
        raise SpineInputError(manifest_path, f"bad 'preprocess' entry (target_shape {text} is more than "
                                             f"{MAX_NETWORK_VOXELS:,} voxels; the paper's grid is 18 x 256 x 128)")


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelManifest]:
    """Rebuild the network described by a weights folder and load its tensors.

    Checks the sha256 of the tensor file, the label table, and that tensor names and
    shapes match the architecture exactly.

    Returns:
        (model in eval mode on ``device``, manifest).

    Raises:
        SpineInputError: on any mismatch (tampered file, wrong architecture, other label table).
    """
    from safetensors.torch import load_file

    from SAFNetSpineLib.models import build_model

    folder = Path(folder)
    manifest = read_manifest(folder)
    tensor_path = folder / TENSOR_FILE
    if manifest.sha256 != file_sha256(tensor_path):
        raise SpineInputError(tensor_path, "checksum does not match model.json (file changed or corrupt)")
    try:
        model = build_model(manifest.architecture, **manifest.model_config)
    except (KeyError, TypeError, ValueError) as error:
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
