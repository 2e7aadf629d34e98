"""The safetensors weight format: round trip for every variant, metadata, refusal of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import googlenet
from googlenet.errors import GoogLeNetError
from googlenet.weights.store import read_metadata, tensors_sha256


@pytest.mark.parametrize("name", googlenet.list_models())
def test_round_trip_rebuilds_the_model_from_the_file_alone(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = googlenet.create_model(name, num_classes=5, class_names=list("vwxyz"), dropout=0.5).eval()
    path = googlenet.save(model, tmp_path / "m.safetensors", training_config_hash="cafe")
    loaded = googlenet.load(path)
    assert not loaded.training
    assert loaded.config == model.config and loaded.meta == model.meta
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    meta = read_metadata(path)
    assert meta["variant"] == name and meta["training_config_hash"] == "cafe"
    assert json.loads(meta["meta"])["class_names"] == list("vwxyz")
    assert meta["sha256"] == tensors_sha256(model.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_without_aux_heads(tmp_path: Path) -> None:
    model = googlenet.create_model("googlenet", num_classes=3, aux_logits=False)
    loaded = googlenet.load(googlenet.save(model, tmp_path / "m.safetensors"))
    assert loaded.aux1 is None and loaded.num_classes == 3


def test_modified_tensors_are_refused(tmp_path: Path) -> None:
    model = googlenet.create_model("googlenet_bn", num_classes=3)
    path = googlenet.save(model, tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state["fc.bias"] = state["fc.bias"] + 1e-3
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(GoogLeNetError, match=r"m\.safetensors.*does not match"):
        googlenet.load(path)
    assert googlenet.load(path, verify=False).fc.bias.shape == (3,)


def test_foreign_and_broken_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(GoogLeNetError, match="not a googlenet weights file"):
        googlenet.load(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not safetensors at all")
    with pytest.raises(GoogLeNetError, match=r"garbage\.safetensors"):
        googlenet.load(garbage)
    with pytest.raises(GoogLeNetError, match=r"missing\.safetensors not found"):
        googlenet.load(tmp_path / "missing.safetensors")
