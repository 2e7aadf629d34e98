"""ONNX and torch.export programs of the inference network agree with PyTorch (googlenet.inference.export)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import googlenet
from googlenet.errors import GoogLeNetError
from googlenet.inference.export import export_onnx, export_program, onnx_metadata
from googlenet.runs import resolve_checkpoint

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
    cmd = [
        sys.executable,
        "-m",
        "googlenet",
        "export",
        str(run_dir),
        "--format",
        "onnx",
        "-o",
        str(out),
        "--image-size",
        str(SIZE),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(session.run(None, {"images": x.numpy()})[0] - expected).max() < ONNX_TOL

    pt2 = tmp_path / "out.pt2"
    cmd = [
        sys.executable,
        "-m",
        "googlenet",
        "export",
        str(run_dir / "model.safetensors"),
        "--format",
        "exported-program",
        "-o",
        str(pt2),
        "--image-size",
        str(SIZE),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        got = torch.export.load(str(pt2)).module()(x)
    torch.testing.assert_close(got, model(x), rtol=1e-5, atol=1e-5)

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "googlenet",
            "export",
            str(tmp_path / "missing.safetensors"),
            "-o",
            str(tmp_path / "x.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "googlenet export: error:" in bad.stderr and "missing.safetensors" in bad.stderr
