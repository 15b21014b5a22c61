"""Resumable training checkpoints as one safetensors file (no pickle anywhere).

Model weights, optimiser moments and the RNG state are tensors; everything else (epoch,
best score, history, scheduler and optimiser hyper-parameters, the config) is JSON
stored in the safetensors header's metadata, so tensors and scalars are replaced
together in one atomic rename: a crash leaves either the previous checkpoint or the new
one, never a mix. A readable copy of the JSON is written beside it for people.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from SAFNetSpineLib.atomic import save_tensors_atomic, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
CHECKPOINT_FORMAT = 1
_RESERVED = ("model", "optimizer", "rng")  # first path parts of the checkpoint's own tensors


def _jsonable(value: Any) -> Any:
    """Scheduler/optimiser scalars as strict JSON (tuples to lists, infinities to strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    state: dict,
    scaler=None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically (and a readable ``checkpoint.json``).

    Args:
        folder: Run folder.
        model: Network (DDP wrapper allowed).
        optimizer: Its optimiser; tensor state goes to the file, hyper-parameters to JSON.
        scheduler: Learning-rate scheduler with state_dict().
        state: JSON-able run state (epoch, best score, history, config ...).
        scaler: Optional torch.amp.GradScaler.
        extra_tensors: More tensors to keep with the run (names must not start with
            ``model/``, ``optimizer/`` or ``rng/``), e.g. a weight average.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, value in _unwrap(model).state_dict().items():
        tensors[f"model/{name}"] = value.detach().cpu().clone()
    optim_state = optimizer.state_dict()
    optim_scalars: dict[str, dict] = {}
    for index, slots in optim_state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().clone()
            else:
                optim_scalars.setdefault(str(index), {})[key] = value
    tensors["rng/torch"] = torch.get_rng_state()
    for name, value in (extra_tensors or {}).items():
        if name.split("/", 1)[0] in _RESERVED:
            raise ValueError(f"extra checkpoint tensor {name!r} uses a reserved prefix")
        tensors[name] = value.detach().cpu()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "state": state,
        "optimizer_param_groups": optim_state["param_groups"],
        "optimizer_scalars": optim_scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    text = json.dumps(_jsonable(meta))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(tensors, folder / CHECKPOINT_FILE, metadata={"checkpoint": text})
    write_json_atomic(json.loads(text), folder / CHECKPOINT_JSON)
    return folder / CHECKPOINT_FILE


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint's tensors and metadata.

    Raises:
        SpineInputError: missing or unreadable checkpoint.
    """
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        raise SpineInputError(path, "no checkpoint to resume from")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["checkpoint"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own types for corrupt headers
        raise SpineInputError(path, f"unreadable checkpoint ({error})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise SpineInputError(path, f"checkpoint format {meta.get('format')} is not {CHECKPOINT_FORMAT}")
    return tensors, _from_json(meta)


def restore_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler=None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Load a checkpoint into live objects.

    Args:
        extra_tensors: If given, filled with the tensors saved as ``extra_tensors`` by
            :func:`save_checkpoint` (e.g. a weight average).

    Returns:
        The run state dict given to :func:`save_checkpoint`.

    Raises:
        SpineInputError: unreadable checkpoint or one for another network.
    """
    tensors, meta = read_checkpoint(folder)
    path = Path(folder) / CHECKPOINT_FILE
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    target = _unwrap(model)
    expected = target.state_dict()
    if set(model_state) != set(expected) or any(
        tuple(model_state[k].shape) != tuple(expected[k].shape) for k in expected
    ):
        raise SpineInputError(path, "checkpoint was written for a different network or width")
    target.load_state_dict(model_state)
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            # load_state_dict moves moments to the parameters' device itself.
            slots.setdefault(int(index), {})[name] = value
    for index, scalars in meta["optimizer_scalars"].items():
        slots.setdefault(int(index), {}).update(scalars)
    optimizer.load_state_dict({"state": slots, "param_groups": meta["optimizer_param_groups"]})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler") is not None:
        scaler.load_state_dict(meta["scaler"])
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"])
    if extra_tensors is not None:
        extra_tensors.update({k: v for k, v in tensors.items() if k.split("/", 1)[0] not in _RESERVED})
    return meta["state"]
