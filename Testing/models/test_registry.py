"""The model registry: known names, duplicate names, unknown names, config pass-through."""

from __future__ import annotations

import pytest
import torch.nn as nn

from SAFNetSpineLib.models import build_model, list_models, register_model, registry

PAPER_TABLE = {"safnet", "unet3d", "resunet3d", "deeplabv3plus3d", "cfnet3d"}


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, so that test registrations do not leak into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_model_of_the_papers_table_is_registered():
    assert PAPER_TABLE <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.usefixtures("scratch_registry")
def test_duplicate_name_is_an_error():
    @register_model("scratch-net")
    def scratch_net() -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="scratch-net"):
        register_model("scratch-net")(scratch_net)
    with pytest.raises(ValueError, match="safnet"):
        register_model("safnet")(scratch_net)
    assert isinstance(build_model("scratch-net"), nn.Identity)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as excinfo:
        build_model("safnett")
    message = str(excinfo.value)
    assert "safnett" in message
    for name in PAPER_TABLE:
        assert name in message


def test_config_reaches_the_factory():
    model = build_model("safnet", width=16, in_channels=2, num_classes=7, use_aspp=False)
    assert model.width == 16 and model.aspp is None
    assert model.extractor.stem[0].in_channels == 2
    assert model.classifier[-1].out_channels == 7
    with pytest.raises(TypeError):
        build_model("unet3d", use_aspp=True)
