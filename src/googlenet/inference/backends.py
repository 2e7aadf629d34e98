"""The inference runtimes behind :class:`googlenet.Predictor`, one small object each, in a registry.

The network run is the inference net of the paper's Table 1 (section 5: the auxiliary classifiers
are discarded at inference time). Every backend answers two questions:

- ``supports(precision, device, outputs)``: ``None`` when it can run that here, else the reason
  why not (one line, what to pass instead);
- ``build(model, precision, image_size, threads, calibration, ...)``: a :class:`Runner`, the
  function ``normalised float batch -> fp32 logits`` (or pooled 1024-d features, ``outputs=
  "features"``), with what it runs described in ``runner.info``.

Backends:

- ``torch``: eager PyTorch in inference mode, channels-last memory format (oneDNN's preferred
  layout on CPU), eval BatchNorm folded into the convolutions, fp32 or bf16 autocast; CPU or CUDA.
- ``onnxruntime``: the ONNX export of :mod:`googlenet.inference.export` in an ``InferenceSession``
  with every graph optimisation; int8 by static QDQ quantisation (:mod:`.int8`).
- ``openvino``: ``openvino.convert_model`` of the same ONNX export, compiled for the CPU with an
  explicit ``INFERENCE_PRECISION_HINT``; int8 by NNCF post-training quantisation (:mod:`.int8`).
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cpu import cpu_count, native_bf16
from ..models.model import GoogLeNet
from .export import onnx_bytes
from .extras import missing

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
OUTPUTS: tuple[str, ...] = ("logits", "features")


@dataclass
class Runner:
    """A built backend: ``runner(images)`` -> fp32 logits (or features) on the device it ran on."""

    run: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # e.g. the int8 format, for repr and logs

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)


class Backend:
    """One runtime: its name, the packages it imports (each installed by a pip extra,
    :mod:`.extras`), what it can run (:meth:`supports`) and
    ``build(model, precision, image_size, threads, calibration, *, device, outputs) -> Runner``
    (unchecked: ask :meth:`supports` first)."""

    name = ""
    modules: tuple[str, ...] = ()  # the imports that must succeed
    int8_modules: tuple[str, ...] = ()  # and those int8 needs besides
    fixed_image_size = True  # the ONNX-based graphs have a fixed image size and a dynamic batch

    def missing(self, precision: str = "fp32") -> str | None:
        """None when the packages this backend needs for ``precision`` import, else what to install."""
        reason = missing(f"backend {self.name}", *self.modules)
        if reason is None and precision == "int8":
            reason = missing(f"int8 on {self.name}", *self.int8_modules)
        return reason

    def available(self) -> bool:
        return self.missing() is None

    def supports(self, precision: str, device: str = "cpu", outputs: str = "logits") -> str | None:
        """None when this backend runs ``precision`` on ``device`` for ``outputs``, else why not."""
        if precision not in PRECISIONS:
            return f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}"
        if outputs not in OUTPUTS:
            return f"unknown outputs {outputs!r}; choose one of {', '.join(OUTPUTS)}"
        return self._supports(precision, device, outputs)

    def _supports(self, precision: str, device: str, outputs: str) -> str | None:
        if device != "cpu":
            return f"backend {self.name} runs on the CPU only; use backend='torch' for device={device!r}"
        reason = self.missing(precision)
        if reason is not None:
            return reason
        if precision == "int8" and outputs != "logits":
            return "int8 runs for logits only (its agreement with fp32 is checked on the top-1 class)"
        if precision == "bf16" and not native_bf16():
            return "this CPU has no native bf16 (AVX512-BF16 or AMX); bf16 would be emulated and slow"
        return None


# ---------------------------------------------------------------------------------------------
# torch


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it (torch's own fusion helper).

    Saves one memory pass per convolution at inference; the maths is unchanged up to rounding.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv, bn)
            module.bn = nn.Identity()
    return model


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for one call, the process's setting restored afterwards
    (``torch.set_num_threads`` is process-wide; a predictor must not change it for everyone)."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchBackend(Backend):
    name = "torch"
    fixed_image_size = False

    def _supports(self, precision: str, device: str, outputs: str) -> str | None:
        if precision == "int8":
            return "int8 runs on onnxruntime or openvino, not the torch backend"
        if device != "cpu":
            return None  # CUDA: fp32 or bf16 autocast
        return super()._supports(precision, device, outputs)

    def build(
        self,
        model: GoogLeNet,
        precision: str,
        image_size: int,
        threads: int | None,
        calibration: list[torch.Tensor] | None,
        *,
        device: str = "cpu",
        outputs: str = "logits",
    ) -> Runner:
        net = fold_batchnorm(copy.deepcopy(model).eval())
        for head in ("aux1", "aux2"):  # never run at inference (section 5); no need to hold them
            setattr(net, head, None)
        net = net.to(device=device, memory_format=torch.channels_last)
        dev = torch.device(device)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        if outputs == "features":  # pool5 output, N x 1024 (Table 1), dropout is off in eval
            forward: Callable[[torch.Tensor], torch.Tensor] = lambda x: net.forward_head(  # noqa: E731
                net.forward_features(x), pre_logits=True
            )
        else:
            forward = net

        def run(images: torch.Tensor) -> torch.Tensor:
            x = images.to(dev, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
            with (
                torch_threads(threads),
                torch.inference_mode(),
                torch.autocast(dev.type, dtype=dtype, enabled=precision == "bf16"),
            ):
                return forward(x).float()

        return Runner(run, {"device": str(dev)})


# ---------------------------------------------------------------------------------------------
# ONNX-based backends


# auto builds the onnxruntime and the OpenVINO candidates from the same graph, and tests build many
# predictors of one model: the export (seconds) is memoised on the weights' hash, a few entries only.
_ONNX_MEMO: dict[tuple[str, str, int, str], bytes] = {}
_ONNX_MEMO_SIZE = 4


def onnx_model(model: GoogLeNet, image_size: int, outputs: str = "logits") -> bytes:
    """The dynamic-batch ONNX export of ``model`` at ``image_size`` (memoised on the weights' hash)."""
    from ..weights.store import tensors_sha256

    cpu_model = copy.deepcopy(model).cpu().float().eval()
    key = (tensors_sha256(cpu_model.state_dict()), repr(cpu_model.config), image_size, outputs)
    if key not in _ONNX_MEMO:
        while len(_ONNX_MEMO) >= _ONNX_MEMO_SIZE:
            _ONNX_MEMO.pop(next(iter(_ONNX_MEMO)))
        _ONNX_MEMO[key] = onnx_bytes(cpu_model, image_size=image_size, dynamic_batch=True, outputs=outputs)
    return _ONNX_MEMO[key]


def as_numpy(batch: torch.Tensor) -> np.ndarray:
    return batch.detach().cpu().float().contiguous().numpy()


class OnnxBackend(Backend):
    """A runtime fed our ONNX export (:mod:`.export`, BatchNorm folded): only the compile step differs."""

    def build(
        self,
        model: GoogLeNet,
        precision: str,
        image_size: int,
        threads: int | None,
        calibration: list[torch.Tensor] | None,
        *,
        device: str = "cpu",
        outputs: str = "logits",
    ) -> Runner:
        batches = [as_numpy(b) for b in calibration or []]
        return self.compile(onnx_model(model, image_size, outputs), precision, image_size, threads, batches)

    def compile(
        self, data: bytes, precision: str, image_size: int, threads: int | None, calibration: list[np.ndarray]
    ) -> Runner:
        raise NotImplementedError


class OnnxRuntimeBackend(OnnxBackend):
    name = "onnxruntime"
    modules = ("onnxruntime", "onnx", "onnxscript")  # it runs our ONNX export (onnx, onnxscript)

    def _supports(self, precision: str, device: str, outputs: str) -> str | None:
        if precision == "bf16":
            return "onnxruntime's CPU provider has no bf16 convolutions; use torch or openvino for bf16"
        return super()._supports(precision, device, outputs)

    def compile(
        self, data: bytes, precision: str, image_size: int, threads: int | None, calibration: list[np.ndarray]
    ) -> Runner:
        import onnxruntime as ort

        info: dict[str, Any] = {}
        if precision == "int8":
            from .int8 import ort_int8_format, ort_quantize

            fmt = ort_int8_format()
            data = ort_quantize(data, calibration, fmt)
            info["int8_format"] = fmt.name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's to fix
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        output_name = session.get_outputs()[0].name

        def run(images: torch.Tensor) -> torch.Tensor:
            (out,) = session.run([output_name], {"images": as_numpy(images)})
            return torch.from_numpy(out)

        return Runner(run, info)


class OpenVINOBackend(OnnxBackend):
    name = "openvino"
    modules = ("openvino", "onnx", "onnxscript")  # it converts our ONNX export
    int8_modules = ("nncf",)

    def compile(
        self, data: bytes, precision: str, image_size: int, threads: int | None, calibration: list[np.ndarray]
    ) -> Runner:
        import openvino as ov

        with tempfile.TemporaryDirectory(prefix="googlenet-ov-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(data)
            ov_model = ov.convert_model(str(path))
        ov_model.reshape({0: ov.PartialShape([-1, 3, image_size, image_size])})
        info: dict[str, Any] = {}
        if precision == "int8":
            from .int8 import ov_int8_format, ov_quantize

            fmt = ov_int8_format()
            ov_model = ov_quantize(ov_model, calibration, fmt)
            info["int8_format"] = fmt.name
        # int8: what stays in float (first layer inputs, the head) runs in f32.
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",  # one synchronous request per call
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(ov_model, "CPU", config)
        request = compiled.create_infer_request()

        def run(images: torch.Tensor) -> torch.Tensor:
            result = request.infer({0: as_numpy(images)})
            return torch.from_numpy(np.array(result[compiled.output(0)], dtype=np.float32, copy=True))

        return Runner(run, info)


BACKENDS: dict[str, Backend] = {b.name: b for b in (TorchBackend(), OnnxRuntimeBackend(), OpenVINOBackend())}


def available_backends() -> list[str]:
    """The backends whose packages import here (torch always)."""
    return [name for name, backend in BACKENDS.items() if backend.available()]


def supported(backend: str, precision: str, *, device: str = "cpu", outputs: str = "logits") -> str | None:
    """None when ``backend`` can run ``precision`` here, else the reason why not (one line)."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}"
    return BACKENDS[backend].supports(precision, device, outputs)
