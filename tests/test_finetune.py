"""Fine-tuning from trained weights (``--init-from``, ``--freeze``, ``--pretrained-lr-mult``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import googlenet
from googlenet.errors import GoogLeNetError
from googlenet.training.config import STAGES, TrainConfig, resolve_config
from googlenet.training.finetune import freeze_until, load_pretrained
from googlenet.training.optim import param_groups
from googlenet.training.task import registered_model

from .helpers import cli_in_process, make_folder_split


def _saved(tmp_path: Path, name: str, classes: int, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path = tmp_path / f"{name}_{classes}.safetensors"
    googlenet.save(googlenet.create_model(name, num_classes=classes), path)
    return path


def test_backbone_loaded_classifiers_new_when_the_classes_differ(tmp_path: Path) -> None:
    source = _saved(tmp_path, "googlenet_bn", 5)
    donor = googlenet.load(source).state_dict()
    torch.manual_seed(1)
    model = googlenet.create_model("googlenet_bn", num_classes=3)
    report = load_pretrained(model, source)
    mine = model.state_dict()
    new = {k.rsplit(".", 1)[0] for k in report.new}
    assert new == {"fc", "aux1.fc2", "aux2.fc2"}
    for key in report.loaded:
        assert torch.equal(mine[key], donor[key]), key
    assert torch.equal(mine["aux1.fc1.weight"], donor["aux1.fc1.weight"])  # the aux head's body is taken
    assert "fc.weight" not in model.pretrained_names and "conv1.conv.weight" in model.pretrained_names
    assert f"{len(report.loaded)} tensors loaded, 6 new (aux1.fc2, aux2.fc2, fc)" in report.summary()


def test_same_classes_take_everything(tmp_path: Path) -> None:
    source = _saved(tmp_path, "googlenet", 4)
    model = googlenet.create_model("googlenet", num_classes=4)
    report = load_pretrained(model, source)
    assert report.new == ()
    assert torch.equal(model.fc.weight, googlenet.load(source).fc.weight)


def test_another_variant_is_refused_by_name(tmp_path: Path) -> None:
    source = _saved(tmp_path, "googlenet_tv", 3)
    with pytest.raises(GoogLeNetError, match="pass --model googlenet_tv"):
        load_pretrained(googlenet.create_model("googlenet", num_classes=3), source)
    with pytest.raises(GoogLeNetError, match="does not exist"):
        load_pretrained(googlenet.create_model("googlenet", num_classes=3), tmp_path / "nope.safetensors")


def test_freeze_until_a_stage_and_lr_multiplier(tmp_path: Path) -> None:
    source = _saved(tmp_path, "googlenet_bn", 5)
    model = googlenet.create_model("googlenet_bn", num_classes=3)
    load_pretrained(model, source)
    frozen = freeze_until(model, "inception4e")
    assert frozen and all(not p.requires_grad for n, p in model.named_parameters() if n in set(frozen))
    assert all(p.requires_grad for p in model.inception5a.parameters())
    bn = next(m for m in model.inception3a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.0
    groups = param_groups(model, lr=0.1, weight_decay=1e-4, bias_lr_mult=2.0, pretrained_lr_mult=0.1)
    ids = {id(p) for g in groups for p in g["params"]}
    assert not ids & {id(p) for p in model.conv1.parameters()}  # frozen: not optimised
    rates = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rates[id(model.inception5a.branch1.conv.weight)] == pytest.approx(0.01)  # pretrained x 0.1
    assert rates[id(model.fc.weight)] == pytest.approx(0.1)  # new
    assert rates[id(model.fc.bias)] == pytest.approx(0.2)  # new bias: x 2
    with pytest.raises(GoogLeNetError, match="not a stage of Table 1"):
        freeze_until(model, "inception9z")
    assert STAGES[0] == "conv1" and STAGES[-1] == "inception5b"


def test_registered_model_applies_the_config(tmp_path: Path) -> None:
    source = _saved(tmp_path, "googlenet_bn", 5)
    config = TrainConfig(model="googlenet_bn", init_from=str(source), freeze="pool2", pretrained_lr_mult=0.5)
    config.validate()
    model = registered_model(config, ["a", "b"])
    assert model.fc.out_features == 2 and not model.conv2.conv.weight.requires_grad
    with pytest.raises(GoogLeNetError, match="need init_from"):
        TrainConfig(freeze="pool2").validate()


def test_cli_fine_tunes_and_says_what_it_loaded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_folder_split(data, "train", {"a": 8, "b": 8})
    make_folder_split(data, "val", {"a": 2, "b": 2})
    source = _saved(tmp_path, "googlenet_bn", 5)
    out = tmp_path / "run"
    proc = cli_in_process(
        "train", "--data", data, "--out", out, "--model", "googlenet_bn", "--init-from", source,
        "--freeze", "inception3b", "--epochs", "1", "--batch-size", "8", "--image-size", "64",
        "--workers", "0", "--precision", "fp32",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tensors loaded" in proc.stderr and "new (aux1.fc2, aux2.fc2, fc)" in proc.stderr
    bad = cli_in_process(
        "train", "--data", data, "--out", tmp_path / "r2", "--freeze", "inception9z", "--init-from", source
    )
    assert bad.returncode == 2 and "inception9z" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "r2").exists()


def test_the_model_comes_from_the_init_from_weights_unless_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from googlenet.training.checkpoint import CHECKPOINT_FORMAT

    source = _saved(tmp_path, "googlenet_bn", 3)
    with caplog.at_level(logging.INFO, logger="googlenet.train"):
        config = resolve_config(None, {"init_from": str(source)})
    assert config.model == "googlenet_bn"
    assert "googlenet_bn" in caplog.text and str(source) in caplog.text  # it says what it chose
    registered_model(config, ["a", "b"])  # and the weights fit it
    # a training checkpoint names its model in its config
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": {"model": "googlenet_bn"}}, checkpoint)
    assert resolve_config(None, {"init_from": str(checkpoint)}).model == "googlenet_bn"
    # the YAML file or the flag decides when it names a model; another variant keeps its one-line error
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model: googlenet\n")
    assert resolve_config(yaml_file, {"init_from": str(source)}).model == "googlenet"
    given = resolve_config(None, {"init_from": str(source), "model": "googlenet"})
    assert given.model == "googlenet"
    with pytest.raises(GoogLeNetError, match=r"it is a googlenet_bn: pass --model googlenet_bn$"):
        registered_model(given, ["a", "b"])
