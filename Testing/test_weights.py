import json

import pytest
import torch

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.weights import (
    MANIFEST_FILE,
    TENSOR_FILE,
    ModelManifest,
    load_model,
    read_manifest,
    save_weights,
)


def _manifest(**overrides):
    fields = dict(architecture="safnet", model_config={"width": 8, "num_classes": 20},
                  preprocess={"target_shape": [8, 64, 32]}, trained_on="unit test", version="test-v1")
    fields.update(overrides)
    return ModelManifest(**fields)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("safnet", width=8)
    folder = save_weights(model, tmp_path / "w", _manifest())
    return model, folder


def test_save_load_round_trip_is_exact(saved):
    model, folder = saved
    loaded, manifest = load_model(folder)
    assert manifest.version == "test-v1" and len(manifest.sha256) == 64
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    assert not loaded.training
    assert not list(folder.glob(".tmp-*")), "temporary files left behind"


def test_tampered_tensor_file_is_rejected(saved):
    _, folder = saved
    data = bytearray((folder / TENSOR_FILE).read_bytes())
    data[-5] ^= 0xFF
    (folder / TENSOR_FILE).write_bytes(bytes(data))
    with pytest.raises(SpineInputError, match="checksum"):
        load_model(folder)


def test_other_label_table_is_rejected(saved):
    _, folder = saved
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["label_table"][3][1] = "L9"
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(SpineInputError, match="different label table"):
        read_manifest(folder)


def test_manifest_that_does_not_match_tensors_is_rejected(saved):
    _, folder = saved
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["model_config"]["width"] = 16
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(SpineInputError, match="shapes do not match"):
        load_model(folder)


def test_unknown_architecture_and_broken_json(saved):
    _, folder = saved
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["architecture"] = "no-such-net"
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(SpineInputError, match="cannot build"):
        load_model(folder)
    (folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(SpineInputError, match="unreadable manifest"):
        load_model(folder)


def test_missing_folder_or_files(tmp_path):
    with pytest.raises(SpineInputError, match="not found"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpineInputError, match="not a weights folder"):
        load_model(tmp_path / "empty")
