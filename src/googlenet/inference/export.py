"""Export a GoogLeNet to ONNX and to a ``torch.export`` program (``.pt2``) for deployment.

The exported graph is the inference network of the paper's Table 1 (section 5): ``model.forward``
only, in eval mode, so the auxiliary classifiers (used only in training, section 5) and dropout are
not in it. Input ``images`` is ``N x 3 x H x W`` (normalised as ``model.meta`` says) with a dynamic
batch dimension; output ``logits`` is ``N x num_classes`` (or, ``outputs="features"``, ``features``:
the pooled ``N x 1024`` pool5 output of Table 1, for region classifiers and feature extraction).

ONNX uses the dynamo-based ``torch.onnx.export`` (the default in torch 2.14): it goes through
``torch.export``, and its onnxscript optimiser folds eval-mode BatchNorm into the convolutions, so the
googlenet_bn/tv graphs hold only Conv/Relu/MaxPool/Concat/ReduceMean/Gemm (139 nodes). The
TorchScript-based legacy exporter is deprecated and gives no cleaner graph. Opset 18 is the opset
torchlib emits natively (no version conversion pass); :data:`MIN_OPSET` to :data:`MAX_OPSET` are
accepted (higher opsets go through onnxscript's version converter); onnxruntime and OpenVINO read
all of them.

``model.meta`` (class names, preprocessing) is stored in the ONNX ``metadata_props`` so that the file
alone is enough to run the model; :func:`onnx_metadata` reads it back.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..data.config import MIN_IMAGE_SIZE
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet, ModelMeta
from ..models.spec import config_to_dict
from .extras import require

DEFAULT_OPSET = 18  # torchlib's native opset in torch 2.14: no opset conversion of the graph
MIN_OPSET = 18  # below torchlib's native opset the converter fails on this graph
# torch 2.14's exporter maximum (torch.onnx._constants.ONNX_MAX_OPSET); every opset 18-23 export of
# this graph was checked to load and run in onnxruntime 1.32 and OpenVINO 2026.4.
MAX_OPSET = 23
INPUT_NAME = "images"
OUTPUT_NAMES = {"logits": "logits", "features": "features"}
META_KEY = "googlenet.meta"

log = logging.getLogger(__name__)


def require_onnx_export() -> None:
    """Raise a one-line :class:`GoogLeNetError` naming the extra to install when the packages of the
    ONNX export (onnx, and onnxscript for torch's dynamo exporter) are missing."""
    require("ONNX export", "onnx", "onnxscript")


def _check_image_size(image_size: int) -> None:
    if image_size < MIN_IMAGE_SIZE:
        raise GoogLeNetError(
            f"image size {image_size} is too small; GoogLeNet needs at least {MIN_IMAGE_SIZE}"
        )


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the export, the caller's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def check_opset(opset: object) -> int:
    """``opset`` when this exporter supports it, else a one-line error naming the range."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise GoogLeNetError(f"ONNX opset {opset!r} is not supported: choose {MIN_OPSET} to {MAX_OPSET}")
    return opset


class FeatureExtractor(torch.nn.Module):
    """``model`` up to pool5 (Table 1): ``N x 1024`` pooled features instead of logits."""

    def __init__(self, model: GoogLeNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def _dummy(model: GoogLeNet, batch: int, image_size: int) -> torch.Tensor:
    param = next(model.parameters())
    return torch.randn(batch, 3, image_size, image_size, device=param.device, dtype=param.dtype)


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=4096)


def metadata_props(model: GoogLeNet, image_size: int, outputs: str = "logits") -> dict[str, str]:
    """String key/values stored with an exported model: the full meta as JSON plus the common fields."""
    meta = model.meta
    return {
        "outputs": outputs,
        META_KEY: json.dumps(asdict(meta)),
        "googlenet.config": json.dumps(config_to_dict(model.config)),
        "variant": meta.variant,
        "num_classes": str(model.num_classes),
        "class_names": json.dumps(meta.class_names),
        "mean": json.dumps(list(meta.mean)),
        "std": json.dumps(list(meta.std)),
        "channel_order": meta.channel_order,
        "image_size": str(image_size),
        "input_layout": "NCHW float32, RGB in [0,1] then (x - mean) / std",
    }


def onnx_bytes(
    model: GoogLeNet,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    image_size: int = 224,
    outputs: str = "logits",
) -> bytes:
    """The serialised ONNX model of ``model.forward`` (or its pooled features, ``outputs=
    "features"``; see the module docstring), metadata included."""
    require_onnx_export()
    import onnx

    _check_image_size(image_size)
    check_opset(opset)
    if outputs not in OUTPUT_NAMES:
        raise GoogLeNetError(f"unknown outputs {outputs!r}; choose one of {', '.join(OUTPUT_NAMES)}")
    module = model if outputs == "logits" else FeatureExtractor(model)
    with _eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation/tracing chatter, not actionable here
        x = _dummy(model, 2, image_size)
        dynamic_shapes = {"x": {0: _batch_dim()}} if dynamic_batch else None
        # The exporter reports its progress on stdout; a library stays quiet (its errors still raise).
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                module,
                (x,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAMES[outputs]],
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
    if program is None:  # pragma: no cover - only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in metadata_props(model, image_size, outputs).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "googlenet"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(
    model: GoogLeNet,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    image_size: int = 224,
) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically); returns the path. Needs the ``onnx`` extra
    (``pip install 'googlenet[onnx]'``); without it, a :class:`GoogLeNetError` says so."""
    path = Path(path)
    data = onnx_bytes(model, opset=opset, dynamic_batch=dynamic_batch, image_size=image_size)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def onnx_metadata(path_or_bytes: str | Path | bytes) -> ModelMeta:
    """The :class:`ModelMeta` stored in an ONNX file written by :func:`export_onnx`."""
    require("reading ONNX metadata", "onnx")
    import onnx

    if isinstance(path_or_bytes, bytes):
        proto = onnx.load_from_string(path_or_bytes)
        where = "ONNX model"
    else:
        where = str(path_or_bytes)
        if not Path(path_or_bytes).is_file():
            raise GoogLeNetError(f"ONNX file {where} not found")
        proto = onnx.load(str(path_or_bytes), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise GoogLeNetError(f"{where}: no {META_KEY} metadata; not exported by googlenet.inference.export")
    data = json.loads(props[META_KEY])
    for key in ("input_size", "mean", "std"):
        data[key] = tuple(data[key])
    return ModelMeta(**data)


def exported_program(
    model: GoogLeNet, *, image_size: int = 224, dynamic_batch: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model.forward`` in eval mode, batch dimension dynamic."""
    _check_image_size(image_size)
    with _eval_mode(model):
        x = _dummy(model, 2, image_size)
        dynamic_shapes = {"x": {0: _batch_dim()}} if dynamic_batch else None
        return torch.export.export(model, (x,), dynamic_shapes=dynamic_shapes)


def export_program(model: GoogLeNet, path: str | Path, image_size: int = 224) -> Path:
    """Write ``torch.export`` program of ``model`` to ``path`` (``.pt2``, atomically); load it with
    ``torch.export.load(path).module()``. ``model.meta`` travels in ``extra_files`` as ``meta.json``."""
    path = Path(path)
    program = exported_program(model, image_size=image_size)
    extra = {"meta.json": json.dumps(metadata_props(model, image_size))}
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer, not our temp file's name
    torch.export.save(program, buffer, extra_files=extra)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return path
