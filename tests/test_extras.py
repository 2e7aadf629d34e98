"""Features whose pip extra is missing say so in one line and name the extra (``pip install
'googlenet[onnx]'``, ``[openvino]``), in the library and through the CLI; the packages are hidden
from a real ``python -m googlenet`` process, or from this one for the library calls."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import googlenet
from googlenet.errors import GoogLeNetError
from googlenet.inference.predictor import Predictor

from .helpers import one_error_line, run_cli


def hiding(folder: Path, *modules: str) -> dict[str, str]:
    """The environment of a process in which ``modules`` fail to import, as when not installed: a
    module of each name, found first on PYTHONPATH, raises what a missing package raises."""
    folder.mkdir(exist_ok=True)
    for name in modules:
        (folder / f"{name}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    path = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False)
    model.meta.input_size = (3, 64, 64)
    return googlenet.save(model, tmp_path_factory.mktemp("extras") / "model.safetensors")


@pytest.mark.parametrize("module", ["onnx", "onnxscript"])
def test_export_onnx_without_the_onnx_extra(weights: Path, tmp_path: Path, module: str) -> None:
    out = tmp_path / "m.onnx"
    proc = run_cli("export", weights, "-o", out, env=hiding(tmp_path / "hidden", module))
    assert one_error_line(proc, "export") == (
        f"ONNX export needs the {module} package, which is not installed: pip install 'googlenet[onnx]'"
    )
    assert not out.exists()
    if module != "onnx":
        return
    # A format that needs no extra still exports in the same environment.
    out = tmp_path / "copy.safetensors"
    proc = run_cli("export", weights, "-o", out, env=hiding(tmp_path / "hidden", module))
    assert proc.returncode == 0 and out.is_file(), proc.stderr


def test_predict_cli_on_onnxruntime_without_it(weights: Path, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (80, 60), (200, 30, 40)).save(image)
    proc = run_cli(
        "predict", image, "--checkpoint", weights, "--backend", "onnxruntime",
        env=hiding(tmp_path / "hidden", "onnxruntime"),
    )  # fmt: skip
    assert one_error_line(proc, "predict") == (
        "backend=onnxruntime precision=fp32: backend onnxruntime needs the onnxruntime package, which is "
        "not installed: pip install 'googlenet[onnx]'"
    )


@pytest.fixture()
def model() -> googlenet.GoogLeNet:
    return googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False).eval()


@pytest.mark.parametrize(
    ("hidden", "backend", "precision", "message"),
    [
        (
            "onnxruntime",
            "onnxruntime",
            "auto",
            "no backend can run backend=onnxruntime precision=auto on cpu: backend onnxruntime needs the "
            "onnxruntime package, which is not installed: pip install 'googlenet[onnx]'",
        ),
        (
            "onnx",
            "onnxruntime",
            "fp32",
            "backend=onnxruntime precision=fp32: backend onnxruntime needs the onnx package, which is not "
            "installed: pip install 'googlenet[onnx]'",
        ),
        (
            "openvino",
            "openvino",
            "auto",
            "no backend can run backend=openvino precision=auto on cpu: backend openvino needs the openvino "
            "package, which is not installed: pip install 'googlenet[openvino]'",
        ),
        (
            "nncf",
            "openvino",
            "int8",
            "backend=openvino precision=int8: int8 on openvino needs the nncf package, which is not "
            "installed: pip install 'googlenet[openvino]'",
        ),
    ],
)
def test_predictor_names_the_missing_extra(
    model: googlenet.GoogLeNet,
    monkeypatch: pytest.MonkeyPatch,
    hidden: str,
    backend: str,
    precision: str,
    message: str,
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` now fails as if not installed
    calibration = [torch.zeros(2, 3, 64, 64)] if precision == "int8" else None
    with pytest.raises(GoogLeNetError) as info:
        Predictor(model, backend, precision, image_size=64, calibration=calibration)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_auto_leaves_out_what_is_not_installed(model: googlenet.GoogLeNet, monkeypatch) -> None:
    for name in ("onnxruntime", "openvino"):
        monkeypatch.setitem(sys.modules, name, None)
    predictor = Predictor(model, "auto", "fp32", image_size=64, auto_batch=2, use_cache=False)
    assert predictor.backend == "torch"


def test_library_export_without_onnx(model: googlenet.GoogLeNet, monkeypatch, tmp_path: Path) -> None:
    from googlenet.inference.export import export_onnx

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(GoogLeNetError, match=r"^ONNX export needs the onnx package.*googlenet\[onnx\]'$"):
        export_onnx(model, tmp_path / "m.onnx", image_size=64)
    assert not (tmp_path / "m.onnx").exists()
