"""torchvision GoogLeNet import (googlenet.weights.importers.torchvision), checked against torchvision itself.

A real ``torch.save``d state dict of ``torchvision.models.googlenet`` (BatchNorm statistics
randomised so that eval-mode BN is not the identity) is imported; logits and auxiliary logits
must equal torchvision's on the same batch, with and without ``transform_input``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import googlenet
from googlenet.cli import main as cli_main
from googlenet.errors import GoogLeNetError
from googlenet.models.model import IMAGENET_MEAN, IMAGENET_STD
from googlenet.weights.importers import import_torchvision, load_torchvision

from .helpers import cli_in_process


class NotATensor:
    """A pickled object that torch.load(weights_only=True) must refuse."""


def make_torchvision_googlenet(num_classes: int = 1000, aux_logits: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.googlenet(
        weights=None, num_classes=num_classes, aux_logits=aux_logits, init_weights=True
    )
    # torchvision's init (std 0.01) makes every image give the same logits; a comparison needs
    # activations that depend on the input, and BN statistics that are not the identity.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.num_batches_tracked.fill_(1000)
            elif isinstance(m, nn.Linear):  # torchvision's std 0.01 gives near-zero logits
                m.weight.normal_(0, 1 / m.in_features**0.5)
    return model.eval()


@pytest.fixture(scope="module")
def tv_model() -> nn.Module:
    return make_torchvision_googlenet()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tv_model) -> Path:
    path = tmp_path_factory.mktemp("tv") / "googlenet-random.pth"
    torch.save(tv_model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 112, 112)


def torchvision_outputs(model: nn.Module, x: torch.Tensor, transform_input: bool):
    """torchvision's logits and its auxiliary heads' logits (run on 4a / 4d in eval mode)."""
    taps = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: taps.append(o))
        for m in (model.inception4a, model.inception4d)
    ]
    model.transform_input = transform_input
    try:
        with torch.no_grad():
            logits = model(x)
            return logits, model.aux1(taps[0]), model.aux2(taps[1])
    finally:
        for h in hooks:
            h.remove()


@pytest.fixture(scope="module")
def imported(checkpoint):
    return import_torchvision(checkpoint)


def test_checkpoint_matches_torchvision_with_transform_input_default(imported, tv_model, batch):
    model, report = imported
    assert model.meta.variant == "googlenet_tv" and model.aux_logits and not model.training
    assert model.config.transform_input and model.meta.transform_input  # 1000 classes: on by default
    assert report.aux_heads and report.num_classes == 1000 and "transform_input=True" in report.summary()
    with torch.no_grad():
        ours = model.forward_train(batch)
    ref = torchvision_outputs(tv_model, batch, transform_input=True)
    assert (ref[0][0] - ref[0][1]).abs().max() > 0.1  # logits depend on the input image
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Without the re-normalisation the outputs really differ: the default matters.
    off = torchvision_outputs(tv_model, batch, transform_input=False)[0]
    assert (off - ref[0]).abs().max() > 1e-2


def test_transform_input_override(checkpoint, tv_model, batch):
    model = load_torchvision(checkpoint, transform_input=False)
    assert not model.config.transform_input and not model.meta.transform_input
    with torch.no_grad():
        torch.testing.assert_close(
            model(batch), torchvision_outputs(tv_model, batch, False)[0], rtol=1e-4, atol=1e-5
        )


def test_metadata(imported, checkpoint):
    meta = imported[0].meta
    assert meta.mean == IMAGENET_MEAN and meta.std == IMAGENET_STD and meta.channel_order == "RGB"
    assert meta.class_names == torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"]
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta.source == f"torchvision:{checkpoint.name} sha256:{digest}"
    assert meta.extra["source_sha256"] == digest


def test_custom_classes_without_aux_from_a_state_dict(batch):
    tv = make_torchvision_googlenet(num_classes=10, aux_logits=False)
    model, report = import_torchvision(tv.state_dict())
    assert model.num_classes == 10 and not model.aux_logits and not report.aux_heads
    assert not model.config.transform_input  # torchvision's constructor default
    assert model.meta.class_names is None and model.meta.source == "torchvision state dict"
    with torch.no_grad():
        torch.testing.assert_close(model(batch), tv(batch), rtol=1e-4, atol=1e-5)


def test_wrapped_and_ddp_prefixed_checkpoints(tmp_path, tv_model):
    state = {f"module.{k}": v for k, v in tv_model.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"model": state, "epoch": 3}, path)
    model = load_torchvision(path, aux_logits=False)
    assert not model.aux_logits
    torch.testing.assert_close(model.fc.weight, tv_model.fc.weight, rtol=0, atol=0)


def test_missing_unknown_and_misshaped_keys_name_the_file_and_keys(tmp_path, tv_model):
    state = tv_model.state_dict()
    path = tmp_path / "bad.pth"
    cases = [
        ({k: v for k, v in state.items() if k != "inception4b.branch3.1.conv.weight"}, "missing key",
         "'inception4b.branch3.1.conv.weight'"),
        ({**state, "head.extra": torch.zeros(1)}, "does not have", "'head.extra'"),
        ({**state, "conv3.conv.weight": torch.zeros(192, 64, 5, 5)}, "wrong shape",
         "conv3.conv.weight (192, 64, 5, 5) (expected (192, 64, 3, 3))"),
    ]  # fmt: skip
    for bad_state, kind, detail in cases:
        torch.save(bad_state, path)
        with pytest.raises(GoogLeNetError) as info:
            load_torchvision(path)
        message = str(info.value)
        assert str(path) in message and kind in message and detail in message, message


def test_pickled_objects_are_refused_by_weights_only(tmp_path, tv_model):
    path = tmp_path / "with_object.pth"
    torch.save({**tv_model.state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(GoogLeNetError, match=r"refused.*weights_only=True"):
        load_torchvision(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10], ids=["empty", "text"])
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(GoogLeNetError, match="not a readable PyTorch checkpoint"):
        load_torchvision(path)
    with pytest.raises(GoogLeNetError, match="not found"):
        load_torchvision(tmp_path / "absent.pth")


def test_cli_convert_torchvision_roundtrip(tmp_path, checkpoint, tv_model, batch):
    out = tmp_path / "googlenet_tv.safetensors"
    proc = cli_in_process("convert", "torchvision", checkpoint, "-o", out, "--no-transform-input")
    assert proc.returncode == 0, proc.stderr
    assert "with the auxiliary heads" in proc.stdout and "transform_input=False" in proc.stdout
    loaded = googlenet.load(out)
    assert loaded.meta.variant == "googlenet_tv" and not loaded.meta.transform_input
    assert loaded.meta.source.startswith(f"torchvision:{checkpoint.name} sha256:")
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(batch), torchvision_outputs(tv_model, batch, False)[0], rtol=1e-4, atol=1e-5
        )


def test_cli_refuses_pickled_objects_with_one_line(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "extra": NotATensor()}, path)
    target = tmp_path / "x.safetensors"
    assert cli_main(["convert", "torchvision", str(path), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("googlenet convert: error: ") and err.count("\n") == 1 and str(path) in err
    assert not target.exists()


def test_half_precision_state_dict_gives_a_trainable_float32_model(tv_model):
    half = {k: v.half() if v.is_floating_point() else v for k, v in tv_model.state_dict().items()}
    model = load_torchvision(half)
    params = list(model.parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)  # ready to fine-tune
    assert {p.dtype for p in params} == {torch.float32}
    torch.testing.assert_close(
        model.conv1.bn.running_var, half["conv1.bn.running_var"].float(), rtol=0, atol=0
    )
