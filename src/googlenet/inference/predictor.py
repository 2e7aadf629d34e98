"""Inference backends (PyTorch, onnxruntime, OpenVINO) and precisions behind one :class:`Predictor`.

The network is the inference net of the paper's Table 1 (section 5: the auxiliary classifiers are
discarded at inference time), fed normalised ``N x 3 x H x W`` batches as ``model.meta`` prescribes;
the predictor returns fp32 logits on the CPU whatever runs underneath:

- ``torch``: eager PyTorch in inference mode, channels-last memory format (oneDNN's preferred layout
  on CPU), eval BatchNorm folded into the convolutions, fp32 or bf16 autocast.
- ``onnxruntime``: the ONNX export of :mod:`googlenet.inference.export` in an ``InferenceSession`` with every
  graph optimisation; int8 by onnxruntime's static QDQ quantisation (per-channel weights).
- ``openvino``: ``openvino.convert_model`` of the ONNX export, compiled for the CPU with an explicit
  ``INFERENCE_PRECISION_HINT``; int8 by NNCF post-training quantisation.

``auto`` measures the candidates on a dummy batch when the predictor is built and keeps the
fastest; the decision is cached per model variant, image size, batch and machine. Int8 changes the
predictions slightly, so ``auto`` considers it only when calibration data is given, and bf16 only
where the CPU computes it natively (AVX512-BF16 or AMX). See docs/inference.md for measurements.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import GoogLeNetError
from ..models.model import GoogLeNet, ModelMeta
from .export import MIN_IMAGE_SIZE, onnx_bytes

Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
# The int8 path used when backend="auto" and precision="int8", or when auto may pick int8:
# NNCF + OpenVINO measured faster than onnxruntime's QDQ int8 on this project's CPU (docs/inference.md).
INT8_BACKEND = "openvino"
AUTO_BATCH = 16  # the batch auto times the candidates on, unless told otherwise
AUTO_REPEATS = 3
CACHE_FILE = "inference_auto.json"
CACHE_VERSION = 1

log = logging.getLogger(__name__)

Runner = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------
# Machine capabilities


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name as lscpu / /proc/cpuinfo give it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """True where the CPU has bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def available_backends() -> list[str]:
    """The backends whose libraries import here (torch always)."""
    found = ["torch"]
    for name in ("onnxruntime", "openvino"):
        try:
            __import__(name)
        except ImportError:
            continue
        found.append(name)
    return found


def supported(backend: str, precision: str, *, device: str = "cpu") -> str | None:
    """None when ``backend`` can run ``precision`` here, else the reason why not (one line)."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}"
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}"
    if device != "cpu":
        if backend != "torch":
            return f"backend {backend} runs on the CPU only; use backend='torch' for device={device!r}"
        if precision == "int8":
            return "int8 is CPU-only (onnxruntime or openvino)"
        return None
    if backend not in available_backends():
        return f"backend {backend} is not installed (pip install 'googlenet[{_extra(backend)}]')"
    if precision == "bf16":
        if backend == "onnxruntime":
            return "onnxruntime's CPU provider has no bf16 convolutions; use torch or openvino for bf16"
        if not native_bf16():
            return "this CPU has no native bf16 (AVX512-BF16 or AMX); bf16 would be emulated and slow"
    if precision == "int8" and backend == "torch":
        return "int8 runs on onnxruntime or openvino, not the torch backend"
    return None


def _extra(backend: str) -> str:
    return "onnx" if backend == "onnxruntime" else backend


# ---------------------------------------------------------------------------------------------
# Backends: each builds a function normalised float batch -> fp32 CPU logits


def _fold_batchnorm(model: nn.Module) -> nn.Module:
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
def _torch_threads(threads: int | None) -> Iterator[None]:
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


def _torch_runner(model: GoogLeNet, precision: str, device: str, threads: int | None = None) -> Runner:
    net = _fold_batchnorm(copy.deepcopy(model).eval())
    for head in ("aux1", "aux2"):  # never run at inference (section 5); no need to hold them
        setattr(net, head, None)
    net = net.to(device=device, memory_format=torch.channels_last)
    dev = torch.device(device)
    autocast_dtype = torch.bfloat16 if precision == "bf16" else None

    def run(images: torch.Tensor) -> torch.Tensor:
        x = images.to(dev, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
        with (
            _torch_threads(threads),
            torch.inference_mode(),
            torch.autocast(
                dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
            ),
        ):
            logits = net(x)
        return logits.float().cpu()

    return run


# auto builds the onnxruntime and the OpenVINO candidates from the same graph, and tests build many
# predictors of one model: the export (seconds) is memoised on the weights' hash, a few entries only.
_ONNX_MEMO: dict[tuple[str, str, int], bytes] = {}
_ONNX_MEMO_SIZE = 4


def _onnx_model(model: GoogLeNet, image_size: int) -> bytes:
    from ..weights.store import tensors_sha256

    cpu_model = copy.deepcopy(model).cpu().float().eval()
    key = (tensors_sha256(cpu_model.state_dict()), repr(cpu_model.config), image_size)
    if key not in _ONNX_MEMO:
        while len(_ONNX_MEMO) >= _ONNX_MEMO_SIZE:
            _ONNX_MEMO.pop(next(iter(_ONNX_MEMO)))
        _ONNX_MEMO[key] = onnx_bytes(cpu_model, image_size=image_size, dynamic_batch=True)
    return _ONNX_MEMO[key]


def _batches_as_numpy(calibration: list[torch.Tensor]) -> list[np.ndarray]:
    return [b.detach().cpu().float().contiguous().numpy() for b in calibration]


def _ort_runner(
    model: GoogLeNet, precision: str, image_size: int, threads: int, calibration: list[torch.Tensor] | None
) -> Runner:
    import onnxruntime as ort

    data = _onnx_model(model, image_size)
    if precision == "int8":
        data = _ort_quantize(data, _batches_as_numpy(calibration or []))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's to fix
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def run(images: torch.Tensor) -> torch.Tensor:
        x = images.detach().cpu().float().contiguous().numpy()
        (logits,) = session.run(["logits"], {"images": x})
        return torch.from_numpy(logits)

    return run


def _ort_quantize(data: bytes, batches: list[np.ndarray]) -> bytes:
    """onnxruntime static quantisation: QDQ, per-channel int8 weights, uint8 activations (U8S8, the
    format x86 VNNI kernels take), MinMax ranges over the calibration batches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {"images": batch}

    with tempfile.TemporaryDirectory(prefix="googlenet-int8-") as tmp:
        fp32, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(data)
        # Shape inference + graph clean-up first, as onnxruntime's quantisation guide asks.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return out.read_bytes()


def _ov_model(model: GoogLeNet, image_size: int) -> Any:
    import openvino as ov

    # Through our ONNX export: the same graph the onnxruntime backend runs (BN already folded).
    with tempfile.TemporaryDirectory(prefix="googlenet-ov-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(_onnx_model(model, image_size))
        ov_model = ov.convert_model(str(path))
    ov_model.reshape({0: ov.PartialShape([-1, 3, image_size, image_size])})
    return ov_model


def _ov_runner(
    model: GoogLeNet,
    precision: str,
    image_size: int,
    threads: int | None,
    calibration: list[torch.Tensor] | None,
) -> Runner:
    import openvino as ov

    ov_model = _ov_model(model, image_size)
    if precision == "int8":
        import nncf

        batches = _batches_as_numpy(calibration or [])
        # NNCF draws a progress bar on stdout; a library stays quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            ov_model = nncf.quantize(
                ov_model,
                nncf.Dataset(batches),
                subset_size=len(batches),  # NNCF counts dataset items, here whole batches
                preset=nncf.QuantizationPreset.PERFORMANCE,
            )
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}  # one synchronous request per call
    if precision in ("fp32", "bf16"):
        config["INFERENCE_PRECISION_HINT"] = "f32" if precision == "fp32" else "bf16"
    else:  # int8: what stays in float (first layer inputs, softmax-free head) runs in f32
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()

    def run(images: torch.Tensor) -> torch.Tensor:
        x = images.detach().cpu().float().contiguous().numpy()
        result = request.infer({0: x})
        return torch.from_numpy(np.array(result[compiled.output(0)], dtype=np.float32, copy=True))

    return run


def build_runner(
    model: GoogLeNet,
    backend: str,
    precision: str,
    *,
    image_size: int,
    threads: int,
    calibration: list[torch.Tensor] | None = None,
    device: str = "cpu",
    explicit_threads: bool = False,
) -> Runner:
    """The function running ``model`` on ``backend`` at ``precision`` (unchecked; see :class:`Predictor`)."""
    if backend == "torch":
        return _torch_runner(model, precision, device, threads if explicit_threads else None)
    if backend == "onnxruntime":
        return _ort_runner(model, precision, image_size, threads, calibration)
    return _ov_runner(model, precision, image_size, threads if explicit_threads else None, calibration)


# ---------------------------------------------------------------------------------------------
# auto: measured choice, cached


def cache_dir() -> Path:
    """``$GOOGLENET_CACHE`` or ``~/.cache/googlenet``."""
    env = os.environ.get("GOOGLENET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "googlenet"


def machine_key() -> str:
    """What makes a timing valid elsewhere: CPU, cores, library versions."""
    parts = [cpu_name(), str(cpu_count()), f"torch {torch.__version__}"]
    for name in ("onnxruntime", "openvino"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} absent")
    return " | ".join(parts)


def time_runner(run: Runner, batch: torch.Tensor, repeats: int = AUTO_REPEATS) -> float:
    """Median seconds per call after one warm-up call."""
    run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    from ..atomic import atomic_write

    try:
        data = _read_cache(path) or {"version": CACHE_VERSION, "choices": {}}
        data.setdefault("choices", {})[key] = entry
        text = json.dumps(data, indent=1, sort_keys=True).encode()
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(text))
    except OSError as exc:  # a read-only home must not stop inference
        log.warning("could not write the auto-choice cache %s: %s", path, exc)


# ---------------------------------------------------------------------------------------------


class Predictor:
    """Run a :class:`~googlenet.models.model.GoogLeNet` for inference on the fastest or the chosen backend.

    ``predictor(images)`` takes a normalised float batch ``N x 3 x H x W`` (``H = W = image_size``
    for the onnxruntime and openvino backends, whose graphs have a fixed image size and a dynamic
    batch) and returns fp32 logits ``N x num_classes`` on the CPU. ``image_size`` defaults to the
    model's ``meta.input_size`` (224 for the paper's network; the crop size a run was trained at).

    ``backend`` / ``precision`` ``"auto"`` time every supported candidate on a dummy batch of
    ``auto_batch`` images and keep the fastest (cached, see :func:`cache_dir`); int8 is a candidate
    only with ``calibration``. ``calibration`` is an iterable of normalised batches (a few hundred
    training images) and is required for int8. ``threads`` sets the onnxruntime / OpenVINO thread
    count (default: the cores of this process) and, when given, torch's thread count during this
    predictor's calls (restored after each call). On a machine shared with other busy processes,
    ``threads=1`` can be several times faster for the torch backend (docs/inference.md).
    """

    def __init__(
        self,
        model: GoogLeNet,
        backend: Backend = "auto",
        precision: Precision = "auto",
        *,
        image_size: int | None = None,
        calibration: Iterable[torch.Tensor] | None = None,
        threads: int | None = None,
        device: str = "cpu",
        auto_batch: int = AUTO_BATCH,
        use_cache: bool = True,
    ) -> None:
        if image_size is None:
            image_size = int(model.meta.input_size[-1])
        if image_size < MIN_IMAGE_SIZE:
            raise GoogLeNetError(
                f"image size {image_size} is too small; GoogLeNet needs at least {MIN_IMAGE_SIZE}"
            )
        if backend != "auto" and backend not in BACKENDS:
            raise GoogLeNetError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
        if precision != "auto" and precision not in PRECISIONS:
            raise GoogLeNetError(
                f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}"
            )
        if threads is not None and threads < 1:
            raise GoogLeNetError(f"threads must be >= 1, got {threads}")
        device = str(torch.device(device))
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise GoogLeNetError(f"device {device!r} requested but CUDA is not available")
        self.meta: ModelMeta = model.meta
        self.image_size = image_size
        self.device = device
        self.threads = threads or cpu_count()
        self._explicit_threads = threads is not None
        self._calibration = self._collect_calibration(calibration, precision)
        self.timings: dict[str, float] = {}  # seconds per auto_batch call, when auto measured them
        self.from_cache = False

        candidates = self._candidates(backend, precision)
        if len(candidates) == 1:
            self.backend, self.precision = candidates[0]
            self._run = self._build(model, *candidates[0])
        else:
            self.backend, self.precision, self._run = self._choose(model, candidates, auto_batch, use_cache)

    # -- construction helpers -----------------------------------------------------------------

    def _collect_calibration(
        self, calibration: Iterable[torch.Tensor] | None, precision: str
    ) -> list[torch.Tensor] | None:
        if calibration is None:
            if precision == "int8":
                raise GoogLeNetError(
                    "precision int8 needs calibration data: pass calibration= an iterable of normalised "
                    "image batches (a few hundred training images)"
                )
            return None
        batches = [b.detach().cpu().float() for b in calibration]
        if not batches:
            raise GoogLeNetError("calibration data is empty")
        for b in batches:
            if b.ndim != 4 or tuple(b.shape[1:]) != (3, self.image_size, self.image_size):
                raise GoogLeNetError(
                    f"calibration batch of shape {tuple(b.shape)}; expected N x 3 x {self.image_size} x "
                    f"{self.image_size}"
                )
        return batches

    def _candidates(self, backend: str, precision: str) -> list[tuple[str, str]]:
        if backend != "auto" and precision != "auto":
            reason = supported(backend, precision, device=self.device)
            if reason:
                raise GoogLeNetError(f"backend={backend} precision={precision}: {reason}")
            return [(backend, precision)]
        if backend == "auto" and precision == "int8":
            return [(INT8_BACKEND if not supported(INT8_BACKEND, "int8") else "onnxruntime", "int8")]
        backends = BACKENDS if backend == "auto" else (backend,)
        precisions = PRECISIONS if precision == "auto" else (precision,)
        found = []
        for b in backends:
            for p in precisions:
                if p == "int8" and (self._calibration is None or (backend == "auto" and b != INT8_BACKEND)):
                    continue  # int8 changes predictions: only with calibration, one int8 path under auto
                if supported(b, p, device=self.device) is None:
                    found.append((b, p))
        if not found:
            raise GoogLeNetError(
                f"no backend can run backend={backend} precision={precision} on {self.device}"
            )
        return found

    def _build(self, model: GoogLeNet, backend: str, precision: str) -> Runner:
        return build_runner(
            model,
            backend,
            precision,
            image_size=self.image_size,
            threads=self.threads,
            calibration=self._calibration,
            device=self.device,
            explicit_threads=self._explicit_threads,
        )

    def _cache_key(self, model: GoogLeNet, candidates: list[tuple[str, str]], batch: int) -> str:
        desc = {
            "variant": model.meta.variant,
            "num_classes": model.num_classes,
            "config": hashlib.sha256(repr(model.config).encode()).hexdigest()[:12],
            "image_size": self.image_size,
            "batch": batch,
            "device": self.device,
            "threads": self.threads,
            "machine": machine_key(),
            "candidates": sorted(f"{b}/{p}" for b, p in candidates),
        }
        return json.dumps(desc, sort_keys=True)

    def _choose(
        self, model: GoogLeNet, candidates: list[tuple[str, str]], batch: int, use_cache: bool
    ) -> tuple[str, str, Runner]:
        path = cache_dir() / CACHE_FILE
        key = self._cache_key(model, candidates, batch)
        cached = _read_cache(path).get("choices", {}).get(key) if use_cache else None
        if cached and (cached.get("backend"), cached.get("precision")) in candidates:
            self.from_cache = True
            self.timings = dict(cached.get("timings", {}))
            log.info("auto: %s/%s (cached in %s)", cached["backend"], cached["precision"], path)
            return (
                cached["backend"],
                cached["precision"],
                self._build(model, cached["backend"], cached["precision"]),
            )
        dummy = torch.randn(
            batch, 3, self.image_size, self.image_size, generator=torch.Generator().manual_seed(0)
        )
        best: tuple[float, str, str, Runner] | None = None
        for backend, precision in candidates:
            run = self._build(model, backend, precision)
            seconds = time_runner(run, dummy)
            self.timings[f"{backend}/{precision}"] = seconds
            if best is None or seconds < best[0]:
                best = (seconds, backend, precision, run)
        assert best is not None
        seconds, backend, precision, run = best
        log.info(
            "auto: %s/%s, %.1f images/s at batch %d (measured: %s)",
            backend,
            precision,
            batch / seconds,
            batch,
            ", ".join(f"{k} {batch / v:.1f}/s" for k, v in self.timings.items()),
        )
        if use_cache:
            _write_cache(
                path,
                key,
                {
                    "backend": backend,
                    "precision": precision,
                    "timings": self.timings,
                    "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
        return backend, precision, run

    # -- inference ------------------------------------------------------------------------------

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """fp32 logits ``N x num_classes`` (on the CPU) for a normalised float batch ``N x 3 x H x W``."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise GoogLeNetError(f"expected a float batch N x 3 x H x W, got {shape}")
        if self.backend != "torch" and tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise GoogLeNetError(
                f"images of {images.shape[2]}x{images.shape[3]}; this {self.backend} predictor was built for "
                f"{self.image_size}x{self.image_size} (Predictor(image_size=...))"
            )
        if not images.is_floating_point():
            raise GoogLeNetError(f"expected normalised float images, got dtype {images.dtype}")
        return self._run(images)

    def predict_batches(self, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Logits for each batch of ``batches``, in order."""
        for batch in batches:
            yield self(batch)

    def __repr__(self) -> str:
        return (
            f"Predictor(variant={self.meta.variant!r}, backend={self.backend!r}, "
            f"precision={self.precision!r}, image_size={self.image_size}, threads={self.threads}, "
            f"device={self.device!r})"
        )
