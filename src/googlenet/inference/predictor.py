"""One object to run a trained GoogLeNet for inference, on the backend and precision asked or measured.

The network is the inference net of the paper's Table 1 (section 5: the auxiliary classifiers are
discarded at inference time), fed normalised ``N x 3 x H x W`` batches as the model's data config
(:func:`googlenet.data.config.resolve_data_config`) prescribes. :class:`Predictor` only validates,
picks and calls; the runtimes are in :mod:`.backends` (a registry of small objects), the measured
choice in :mod:`.autotune`, int8 formats in :mod:`.int8` and calibration data in
:mod:`.calibration`. See docs/inference.md for measurements.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Literal

import torch

from ..cpu import cpu_count, cpu_name, native_bf16
from ..data.config import resolve_data_config
from ..device import resolve_device
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet, ModelMeta
from . import autotune
from .backends import BACKENDS, OUTPUTS, PRECISIONS, Runner, available_backends, supported
from .int8 import MIN_AGREEMENT, agreement

__all__ = [
    "BACKENDS",
    "INT8_BACKEND",
    "PRECISIONS",
    "Predictor",
    "available_backends",
    "candidates",
    "cpu_count",
    "cpu_name",
    "native_bf16",
    "supported",
]

Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Outputs = Literal["logits", "features"]
# The int8 path used when backend="auto" and precision="int8", or when auto may pick int8:
# NNCF + OpenVINO measured faster than onnxruntime's QDQ int8 on this project's CPU (docs/inference.md).
INT8_BACKEND = "openvino"

log = logging.getLogger(__name__)


def _check_names(backend: str, precision: str, outputs: str = "logits") -> None:
    if backend != "auto" and backend not in BACKENDS:
        raise GoogLeNetError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if precision != "auto" and precision not in PRECISIONS:
        raise GoogLeNetError(f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}")
    if outputs not in OUTPUTS:
        raise GoogLeNetError(f"unknown outputs {outputs!r}; choose one of {', '.join(OUTPUTS)}")


def candidates(
    backend: str,
    precision: str,
    *,
    device: str = "cpu",
    outputs: str = "logits",
    calibrated: bool = False,
) -> list[tuple[str, str]]:
    """The ``(backend, precision)`` pairs a :class:`Predictor` asked for ``backend`` / ``precision``
    would choose among here (one: built as asked; several: timed by auto), else a
    :class:`~googlenet.errors.GoogLeNetError` saying why none can run (a missing package is named
    with the extra that installs it). int8 is a candidate only when ``calibrated`` (calibration
    images are given). Nothing is built: callers check a request with it before loading a model.
    """
    _check_names(backend, precision, outputs)
    where = {"device": device, "outputs": outputs}
    if backend != "auto" and precision != "auto":
        reason = supported(backend, precision, **where)
        if reason:
            raise GoogLeNetError(f"backend={backend} precision={precision}: {reason}")
        return [(backend, precision)]
    if backend == "auto" and precision == "int8":
        for b in (INT8_BACKEND, "onnxruntime"):
            if supported(b, "int8", **where) is None:
                return [(b, "int8")]
        raise GoogLeNetError(f"precision int8: {supported(INT8_BACKEND, 'int8', **where)}")
    found, reasons = [], []
    for b in BACKENDS if backend == "auto" else (backend,):
        for p in PRECISIONS if precision == "auto" else (precision,):
            if p == "int8" and (not calibrated or (backend == "auto" and b != INT8_BACKEND)):
                continue  # int8 changes predictions: only with calibration, one int8 path under auto
            reason = supported(b, p, **where)
            if reason is None:
                found.append((b, p))
            else:
                reasons.append(reason)
    if not found:
        # The first reason is fp32's (or the one precision asked): the backend's own, such as a
        # package that is not installed or a device it cannot use.
        raise GoogLeNetError(
            f"no backend can run backend={backend} precision={precision} on {device}: {reasons[0]}"
        )
    return found


class Predictor:
    """Run a :class:`~googlenet.models.model.GoogLeNet` for inference on the fastest or the chosen backend.

    ``predictor(images)`` takes a normalised float batch ``N x 3 x H x W`` (``H = W = image_size``
    for the onnxruntime and openvino backends, whose graphs have a fixed image size and a dynamic
    batch) and returns fp32 logits ``N x num_classes`` (``outputs="features"``: the pooled
    ``N x 1024`` pool5 features, Table 1) on ``output_device`` (default the CPU; None leaves them
    where they were computed). ``image_size`` defaults to the model's trained size.

    ``backend`` / ``precision`` ``"auto"`` time every supported candidate on a dummy batch of
    ``auto_batch`` images and keep the fastest (cached; :mod:`.autotune`); int8 is a candidate only
    with ``calibration`` and is taken only when measurably faster and faithful to fp32.
    ``calibration`` is an iterable of normalised batches (a few hundred training images,
    :func:`googlenet.inference.calibration.calibration_batches`) and is required for int8.
    ``threads`` sets the onnxruntime / OpenVINO thread count (default: the cores of this process)
    and, when given, torch's thread count during this predictor's calls (restored after each call).

    After construction: ``backend``, ``precision``, ``reason`` (why this pair), ``timings`` (what
    auto measured), ``int8_format`` and ``agreement`` (int8's top-1 agreement with fp32 on the
    calibration images), ``from_cache``.
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
        output_device: str | None = "cpu",
        outputs: Outputs = "logits",
        auto_batch: int = autotune.BATCH,
        use_cache: bool = True,
    ) -> None:
        self.data_config = resolve_data_config(model.meta, image_size=image_size)
        self.image_size = self.data_config.image_size
        _check_names(backend, precision, outputs)
        if threads is not None and threads < 1:
            raise GoogLeNetError(f"threads must be >= 1, got {threads}")
        self.meta: ModelMeta = model.meta
        self.device = resolve_device(device)
        self.output_device = None if output_device is None else resolve_device(output_device)
        self.outputs = outputs
        self.threads = threads or cpu_count()
        self._calibration = self._collect_calibration(calibration, precision)
        self.timings: dict[str, float] = {}
        self.from_cache = False
        self.agreement: float | None = None

        def build(b: str, p: str) -> Runner:
            return BACKENDS[b].build(
                model, p, self.image_size, threads, self._calibration, device=self.device, outputs=outputs
            )

        def reference() -> list[torch.Tensor]:  # fp32 logits of the calibration images, int8's yardstick
            fp32 = BACKENDS["torch"].build(model, "fp32", self.image_size, threads, None)
            return [fp32(b) for b in self._calibration or []]

        found = candidates(
            backend, precision, device=self.device, outputs=outputs, calibrated=self._calibration is not None
        )
        if len(found) == 1:
            self.backend, self.precision = found[0]
            self._runner = build(self.backend, self.precision)
            asked = backend != "auto" and precision != "auto"
            self.reason = (
                "as requested" if asked else f"the only candidate for backend={backend} precision={precision}"
            )
            if self.precision == "int8":
                self.agreement = agreement(self._runner, reference(), self._calibration or [])
                self.reason += f"; int8 agrees with fp32 on {self.agreement:.1%} of the calibration images"
                if self.agreement < MIN_AGREEMENT:
                    log.warning(
                        "int8 top-1 agreement with fp32 %.1f%% < %.0f%%",
                        100 * self.agreement,
                        100 * MIN_AGREEMENT,
                    )
        else:
            key = None
            if use_cache:
                key = autotune.cache_key(
                    model,
                    found,
                    image_size=self.image_size,
                    batch=auto_batch,
                    device=self.device,
                    threads=self.threads,
                    outputs=outputs,
                    calibration=autotune.tensors_digest(self._calibration),
                )
            choice = autotune.choose(
                found,
                build,
                image_size=self.image_size,
                batch=auto_batch,
                calibration=self._calibration,
                reference=reference,
                cache=key,
            )
            self.backend, self.precision, self.reason = choice.backend, choice.precision, choice.reason
            self.timings, self.agreement, self.from_cache = (
                choice.timings,
                choice.agreement,
                choice.from_cache,
            )
            self._runner = choice.runner or build(self.backend, self.precision)
        self.int8_format: str | None = self._runner.info.get("int8_format")

    # -- construction helpers -----------------------------------------------------------------

    def _collect_calibration(
        self, calibration: Iterable[torch.Tensor] | None, precision: str
    ) -> list[torch.Tensor] | None:
        if calibration is None:
            if precision == "int8":
                raise GoogLeNetError(
                    "precision int8 needs calibration images: pass calibration= batches of a few hundred "
                    "normalised training images (googlenet.inference.calibration.calibration_batches)"
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

    # -- inference ------------------------------------------------------------------------------

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """fp32 logits ``N x num_classes`` (or features ``N x 1024``) for a normalised float batch."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise GoogLeNetError(f"expected a float batch N x 3 x H x W, got {shape}")
        if BACKENDS[self.backend].fixed_image_size and tuple(images.shape[2:]) != (self.image_size,) * 2:
            raise GoogLeNetError(
                f"images of {images.shape[2]}x{images.shape[3]}; this {self.backend} predictor was built for "
                f"{self.image_size}x{self.image_size} (Predictor(image_size=...))"
            )
        if not images.is_floating_point():
            raise GoogLeNetError(f"expected normalised float images, got dtype {images.dtype}")
        out = self._runner(images)
        return out if self.output_device is None else out.to(self.output_device)

    def predict_batches(self, batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Outputs for each batch of ``batches``, in order."""
        for batch in batches:
            yield self(batch)

    def __repr__(self) -> str:
        extra = ""
        if self.int8_format is not None:
            extra += f", int8_format={self.int8_format!r}"
            if self.agreement is not None:
                extra += f", agreement={self.agreement:.3f}"
        if self.outputs != "logits":
            extra += f", outputs={self.outputs!r}"
        return (
            f"Predictor(variant={self.meta.variant!r}, backend={self.backend!r}, "
            f"precision={self.precision!r}, image_size={self.image_size}, threads={self.threads}, "
            f"device={self.device!r}{extra}, reason={self.reason!r})"
        )
