"""ONNX and torch.export programs of the inference network agree with PyTorch (googlenet.inference.export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import googlenet
from googlenet.errors import GoogLeNetError
from googlenet.inference.export import export_onnx, export_program, onnx_metadata
from googlenet.runs import resolve_checkpoint

from .helpers import cli_in_process, one_error_line

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SIZE = 96
ONNX_TOL = 1e-4  # fp32 graph vs eager fp32: only summation order differs (BN folded into conv)


def _model(name: str) -> googlenet.GoogLeNet:
    torch.manual_seed(0)
    model = googlenet.create_model(name, num_classes=10, class_names=[f"class{i}" for i in range(10)])
    # Non-trivial BatchNorm statistics, so that folding BN into the convolutions is really checked.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    # Random init gives logits in the hundreds (kaiming, no training), where 1e-4 is below fp32
    # resolution; scale the classifier so logits span about +-10, as a trained network's do.
    model.eval()
    with torch.no_grad():
        peak = model(torch.randn(4, 3, SIZE, SIZE)).abs().max()
        model.fc.weight.mul_(10 / peak)
        model.fc.bias.mul_(10 / peak)
    return model


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_onnx_matches_pytorch_dynamic_batch(name: str, tmp_path: Path) -> None:
    model = _model(name)
    model.train()  # export must use eval mode regardless, and give the caller's mode back
    path = export_onnx(model, tmp_path / "m.onnx", image_size=SIZE)
    assert model.training
    model.eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and session.get_outputs()[0].name == "logits"
    assert not isinstance(inp.shape[0], int)  # symbolic batch
    for batch in (1, 3):
        x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == (batch, 10)
        assert np.abs(got - expected).max() < ONNX_TOL
    # No auxiliary classifier weights in the graph: it is model.forward only.
    proto = onnx.load(str(path))
    n_params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux"))
    assert aux > 0 and n_params < sum(p.numel() for p in model.parameters()) - aux + 1
    meta = onnx_metadata(path)
    assert meta.class_names == [f"class{i}" for i in range(10)]
    assert meta.mean == model.meta.mean and meta.variant == name
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["image_size"] == str(SIZE) and json.loads(props["std"]) == list(model.meta.std)


def test_exported_program_loads_and_matches(tmp_path: Path) -> None:
    model = _model("googlenet_bn")
    path = export_program(model, tmp_path / "m.pt2", image_size=SIZE)
    extra = {"meta.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["meta.json"])["variant"] == "googlenet_bn"
    module = program.module()
    for batch in (1, 3):
        x = torch.randn(batch, 3, SIZE, SIZE)
        with torch.no_grad():
            torch.testing.assert_close(module(x), model(x), rtol=1e-5, atol=1e-5)


def test_export_rejects_bad_values(tmp_path: Path) -> None:
    model = _model("googlenet_bn")
    with pytest.raises(GoogLeNetError, match="too small"):
        export_onnx(model, tmp_path / "m.onnx", image_size=32)
    with pytest.raises(GoogLeNetError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=11, image_size=SIZE)
    with pytest.raises(GoogLeNetError, match=r"neither model\.safetensors"):
        resolve_checkpoint(tmp_path)
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_from_run_directory(tmp_path: Path) -> None:
    model = _model("googlenet_bn")
    run_dir = tmp_path / "run"
    googlenet.save(model, run_dir / "model.safetensors")
    out = tmp_path / "out.onnx"
    done = cli_in_process("export", run_dir, "--format", "onnx", "-o", out, "--image-size", SIZE)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(session.run(None, {"images": x.numpy()})[0] - expected).max() < ONNX_TOL

    # no --format: the suffix says which (.pt2, the exported program, is tested on the library's
    # export in test_exported_program_loads_and_matches; a safetensors copy costs no export here)
    copy = tmp_path / "copy.safetensors"
    done = cli_in_process("export", run_dir / "model.safetensors", "-o", copy)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        torch.testing.assert_close(googlenet.load(copy)(x), model(x), rtol=0, atol=0)

    bad = cli_in_process("export", tmp_path / "missing.safetensors", "-o", tmp_path / "x.onnx")
    assert bad.returncode == 2
    assert "googlenet export: error:" in bad.stderr and "missing.safetensors" in bad.stderr


# --------------------------------------------------------------------------------------------
# Bad input to export / convert: exit 2, one line naming the value, nothing written.


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "m.safetensors"
    googlenet.save(_model("googlenet_bn"), path)
    return path


def training_checkpoint(path: Path, model: googlenet.GoogLeNet) -> Path:
    """A ``best.pt`` in the layout googlenet train writes: config, class names, raw and averaged weights."""
    from googlenet.training.checkpoint import CHECKPOINT_FORMAT

    state = model.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "epoch": 3,
            "config": {"model": model.meta.variant, "image_size": SIZE},
            "class_names": list(model.meta.class_names),
            "model": state,
            "ema": {**{f"module.{k}": v for k, v in state.items()}, "n_averaged": torch.tensor(3)},
        },
        path,
    )
    return path


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-o", "x.onnx", "--opset", "100"], ["100", "18 to 23"]),
        (["-o", "x.onnx", "--opset", "0"], ["opset 0", "18 to 23"]),
        (["-o", "x.pt2", "--format", "onnx"], ["--format onnx", "x.pt2", "exported-program"]),
        (["-o", "x.bin"], ["x.bin", ".onnx, .pt2 or .safetensors"]),
        (["-o", "x.pt2", "--opset", "18"], ["--opset", "exported-program"]),
        (["-o", "x.onnx", "--image-size", "10"], ["--image-size", "10"]),
    ],
)
def test_export_refuses_bad_flags_before_work(
    weights: Path, tmp_path: Path, args: list, needles: list
) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    proc = cli_in_process("export", weights, *args)
    one_error_line(proc, "export", *needles)
    assert list(tmp_path.iterdir()) == []


def test_export_output_that_is_a_directory(weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    target.mkdir()
    one_error_line(cli_in_process("export", weights, "-o", target), "export", str(target), "directory")


def test_export_training_checkpoint_to_safetensors(tmp_path: Path) -> None:
    model = _model("googlenet_bn").eval()
    best = training_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", model)
    out = tmp_path / "best.safetensors"
    proc = cli_in_process("export", best, "-o", out)
    assert proc.returncode == 0, proc.stderr
    loaded = googlenet.load(out)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.meta.input_size[-1] == SIZE  # the trained size travels with the weights


def test_convert_refusals_name_what_to_pass(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tv"
    folder.mkdir()
    out = tmp_path / "x.safetensors"
    one_error_line(
        cli_in_process("convert", "torchvision", folder, "-o", out), "convert", str(folder), "is a directory"
    )
    pth = tmp_path / "tv.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, pth)
    proc = cli_in_process("convert", "torchvision", pth, "-o", tmp_path / "x.onnx")
    one_error_line(proc, "convert", "x.safetensors", "googlenet export")
    proc = cli_in_process("convert", "torchvision", weights, "-o", out)
    one_error_line(proc, "convert", "already this package's format")
    best = training_checkpoint(tmp_path / "best.pt", _model("googlenet_bn"))
    proc = cli_in_process("convert", "torchvision", best, "-o", out)
    one_error_line(proc, "convert", str(best), "training checkpoint", "googlenet export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "tv", "tv.pth"]
