"""int8 post-training quantisation of the inference network, in a format chosen by the CPU's features.

x86 int8 kernels without VNNI (AVX2, AVX-512 before Cascade Lake / Zen 4) multiply u8 activations
by s8 weights with ``vpmaddubsw``, whose pairwise sums saturate at 16 bits; with full 8-bit
weights the sums of large activations clip and the predictions drift (measured on an AVX2-only
EPYC: onnxruntime int8 agreed with fp32 on 83.5% of 1000 validation images, OpenVINO on 92.1%,
against 97.6% / 96.0% with VNNI). Both runtimes document the remedy, 7-bit weights:

- onnxruntime (``onnxruntime.quantization.quantize_static`` docstring, and
  https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html, "When and why do
  I need to try U8U8?" / ``reduce_range``): on x86 without VNNI use U8S8 with
  ``reduce_range=True``, which "quantizes weights to 7-bit to reduce the risk of integer saturation";
  with VNNI, ``reduce_range=False``.
- NNCF (``nncf.quantization.advanced_parameters.OverflowFix``): ``ENABLE`` quantises the weights of
  every convolution and MatMul with half the 8-bit range; its default ``FIRST_LAYER`` does so for
  the first convolution only, enough with VNNI.

The chosen format is recorded in the runner's ``info["int8_format"]`` (and so in
``Predictor.int8_format`` and its repr) and, for onnxruntime, in the quantised model's
``metadata_props`` (``googlenet.int8_format``). :func:`agreement` measures what the quantisation
cost: the share of images whose top-1 class int8 and fp32 agree, the number ``auto`` checks
against :data:`MIN_AGREEMENT` before it takes int8.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cpu import has_vnni
from .extras import require

# int8 must keep >= 95% top-1 agreement with fp32 on any x86-64 CPU; auto refuses int8 whose
# agreement on the calibration images is lower.
MIN_AGREEMENT = 0.95
FORMAT_KEY = "googlenet.int8_format"


@dataclass(frozen=True)
class Int8Format:
    """How one runtime quantises: a readable ``name`` and the options that make it."""

    name: str
    weight_bits: int  # 8, or 7 where the CPU's kernels would saturate (no VNNI)
    options: dict[str, Any]


def ort_int8_format(vnni: bool | None = None) -> Int8Format:
    """onnxruntime's static QDQ format for this CPU (``vnni`` overrides :func:`googlenet.cpu.has_vnni`)."""
    vnni = has_vnni() if vnni is None else vnni
    if vnni:
        return Int8Format(
            "onnxruntime QDQ U8S8 per-channel, 8-bit weights (VNNI)", 8, {"reduce_range": False}
        )
    return Int8Format(
        "onnxruntime QDQ U8S8 per-channel, 7-bit weights (reduce_range: no VNNI)", 7, {"reduce_range": True}
    )


def ov_int8_format(vnni: bool | None = None) -> Int8Format:
    """NNCF's format for this CPU (``vnni`` overrides :func:`googlenet.cpu.has_vnni`)."""
    vnni = has_vnni() if vnni is None else vnni
    if vnni:
        return Int8Format(
            "NNCF performance preset, overflow fix on the first layer (VNNI)",
            8,
            {"overflow_fix": "first_layer_only"},
        )
    return Int8Format(
        "NNCF performance preset, 7-bit weights in every layer (overflow fix: no VNNI)",
        7,
        {"overflow_fix": "enable"},
    )


def ort_quantize(data: bytes, batches: list[np.ndarray], fmt: Int8Format) -> bytes:
    """onnxruntime static quantisation: QDQ, per-channel int8 weights, uint8 activations (U8S8),
    MinMax ranges over the calibration ``batches``; ``fmt`` says whether weights use 7 bits."""
    require("int8 quantisation on onnxruntime", "onnxruntime", "onnx")
    import onnx
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
            reduce_range=bool(fmt.options["reduce_range"]),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = FORMAT_KEY, fmt.name
    return proto.SerializeToString()


def ov_quantize(ov_model: Any, batches: list[np.ndarray], fmt: Int8Format) -> Any:
    """NNCF post-training quantisation of an OpenVINO model over the calibration ``batches``."""
    require("int8 quantisation on openvino", "nncf")
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    # NNCF draws a progress bar on stdout; a library stays quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        quantised = nncf.quantize(
            ov_model,
            nncf.Dataset(batches),
            subset_size=len(batches),  # NNCF counts dataset items, here whole batches
            preset=nncf.QuantizationPreset.PERFORMANCE,
            advanced_parameters=AdvancedQuantizationParameters(
                overflow_fix=OverflowFix(fmt.options["overflow_fix"])
            ),
        )
    quantised.set_rt_info(fmt.name, ["model_info", FORMAT_KEY])
    return quantised


def agreement(
    run: Callable[[torch.Tensor], torch.Tensor],
    reference: Iterable[torch.Tensor],
    batches: Iterable[torch.Tensor],
) -> float:
    """Share of images whose top-1 class under ``run`` equals the top-1 of the ``reference`` logits
    (one tensor per batch of ``batches``, in order)."""
    same = total = 0
    for ref, batch in zip(reference, batches, strict=True):
        got = run(batch).to(ref.device)
        same += int((got.argmax(1) == ref.argmax(1)).sum())
        total += ref.shape[0]
    return same / total if total else 0.0
