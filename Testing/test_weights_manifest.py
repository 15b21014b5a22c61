"""model.json is read as untrusted data: every malformed field is one line naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.weights import MANIFEST_FILE, ModelManifest, load_model, read_manifest, save_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    manifest = ModelManifest("safnet", {"width": 8}, {"target_shape": [8, 64, 32]}, version="t-v1")
    return save_weights(build_model("safnet", width=8), tmp_path / "w", manifest)


def rewrite(folder, change) -> None:
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


@pytest.mark.parametrize("change, match", [
    (lambda d: [d], "the manifest is a JSON array, not an object"),
    (lambda d: "safnet", "the manifest is a JSON string, not an object"),
    (lambda d: {**d, "model_config": None}, "'model_config' is a JSON null, not object"),
    (lambda d: {**d, "model_config": [8]}, "'model_config' is a JSON array, not object"),
    (lambda d: {**d, "preprocess": None}, "'preprocess' is a JSON null, not object"),
    (lambda d: {k: v for k, v in d.items() if k != "architecture"}, "'architecture' is missing"),
    (lambda d: {**d, "architecture": 7}, "'architecture' is a JSON number, not string"),
    (lambda d: {**d, "metrics": "good"}, "'metrics' is a JSON string, not object"),
    (lambda d: {**d, "parent_version": 3}, "'parent_version' is a JSON number, not string or null"),
    (lambda d: {**d, "label_table": None}, "'label_table' is a JSON null, not array"),
    (lambda d: {**d, "model_config": {"width": 8, "num_classes": "20"}}, "model has 20 classes"),
    (lambda d: {**d, "preprocess": {"target_shape": [8, 64]}}, "bad 'preprocess' entry .target_shape must be three"),
    (lambda d: {**d, "preprocess": {"target_size": [8, 64, 32]}}, r"bad 'preprocess' entry \(unknown keys"),
    (lambda d: {**d, "preprocess": {"ap_crop_fraction": "half"}}, "bad 'preprocess' entry"),
])
def test_malformed_manifest_is_one_line_naming_the_file(folder, change, match):
    rewrite(folder, change)
    for read in (read_manifest, load_model):
        with pytest.raises(SpineInputError, match=match) as caught:
            read(folder)
        message = str(caught.value)
        assert message.startswith(str(folder / MANIFEST_FILE)) and "\n" not in message


def test_unknown_architecture_or_config_is_one_line(folder):
    rewrite(folder, lambda d: {**d, "architecture": "no-such-net"})
    with pytest.raises(SpineInputError, match="cannot build the model it describes"):
        load_model(folder)
    rewrite(folder, lambda d: {**d, "architecture": "safnet", "model_config": {"width": 8, "depth_of_field": 3}})
    with pytest.raises(SpineInputError, match="cannot build the model it describes"):
        load_model(folder)


def test_non_utf8_manifest_is_one_line(folder):
    (folder / MANIFEST_FILE).write_bytes(b"\xff\xfe{}")
    with pytest.raises(SpineInputError, match="unreadable manifest"):
        read_manifest(folder)


def test_reading_a_manifest_does_not_import_torch(folder):
    # `models list` reads manifests only; torch's import alone takes seconds.
    code = ("import sys; from SAFNetSpineLib.weights import read_manifest; "
            f"read_manifest({str(folder)!r}); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "False"
