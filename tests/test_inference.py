"""googlenet.Predictor: every backend x precision runs and agrees with eager fp32; auto and its cache.

Tolerances, each with its reason (also in docs/inference.md):
- fp32 on onnxruntime / OpenVINO vs eager fp32 torch: max abs logit difference < 1e-3 (logits of
  order 1; only summation order and the folded BatchNorm differ, ~1e-6 relative per layer);
- bf16 and int8: top-1 agreement with fp32 >= int8.MIN_AGREEMENT (95%, the product's promise) on
  images the model separates, and a mean abs logit error below ``MARGIN_FRACTION`` of the median
  top-1/top-2 margin of the fp32 logits. Why that fraction: a top-1 flips when the difference of
  two logits' errors exceeds the margin; for roughly Gaussian errors of standard deviation s that
  difference has deviation s*sqrt(2), and flips stay under 5% while s*sqrt(2)*1.96 < margin, i.e.
  s < 0.36 margin, a mean abs error (0.8 s) below 0.29 margin. The bound follows from the rounding
  model and the 95% target, whatever the format's step (8-bit weights with VNNI, 7-bit without),
  not from one machine's run. Measured here (AVX-512 VNNI): 0.06 margin with 8-bit weights, 0.08
  with 7-bit; bf16 0.02.

Which int8 format and which auto candidates to expect follow from googlenet.cpu's detected features
(``GOOGLENET_CPU_FEATURES=avx2`` runs the suite as on a CPU without bf16 / VNNI).

Agreement is only meaningful where the model separates the images: a randomly initialised network
gives nearly the same logits for every image, so any rounding flips its top-1. The test model is
googlenet_bn with a random backbone, BatchNorm statistics recomputed on built-in training images
and a nearest-class-mean classifier on its pooled features (:func:`fit_stand_in`): the cheapest
"briefly fitted" model whose top-1 depends on the image, not on rounding noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import googlenet
from googlenet.cpu import has_vnni, native_bf16
from googlenet.errors import GoogLeNetError
from googlenet.inference import autotune, int8
from googlenet.inference.backends import Runner, supported
from googlenet.inference.predictor import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

SIZE = 96
CLASSES = 10
FP32_TOL = 1e-3
MARGIN_FRACTION = 0.29  # see the module docstring


def _images(root: Path, split: str, meta: googlenet.ModelMeta) -> tuple[torch.Tensor, torch.Tensor]:
    from googlenet.data.datasets import build_dataset
    from googlenet.data.transforms import eval_transform

    data = build_dataset(root, split, eval_transform(meta, SIZE))
    pairs = [data[i] for i in range(len(data))]
    return torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


def fit_stand_in(model: googlenet.GoogLeNet, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Make a random googlenet_bn's predictions depend on the image (see module docstring).

    1. BatchNorm statistics recomputed on ``images`` (one pass in train mode, cumulative average):
       every channel is then standardised over real data, so the pooled features vary from image
       to image instead of being dominated by one shared direction, as in a raw random network;
    2. the classifier is a ridge regression of +-1 class targets on the standardised features,
       solved in closed form: on ``images`` it is right and confident (logits about +-1.8), as a
       trained network is on data like its training data. (Its accuracy on unseen built-in images
       is near chance - a random backbone - so agreement there, 85-95%, would measure ties.)
    """
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(images), pre_logits=True)
        mu, sd = feats.mean(0), feats.std(0) + 1e-6
        z = (feats - mu) / sd
        targets = torch.nn.functional.one_hot(labels, model.num_classes).float() * 2 - 1
        w = torch.linalg.solve(z.T @ z + 10 * torch.eye(z.shape[1]), z.T @ targets).T
        model.fc.weight.copy_(w / sd)
        model.fc.bias.copy_(-(w / sd) @ mu)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from googlenet.data.builtin import make_builtin

    root = make_builtin(
        tmp_path_factory.mktemp("builtin") / "set",
        classes=CLASSES,
        train_per_class=10,
        val_per_class=5,
        image_size=112,
        seed=0,
    )
    torch.manual_seed(0)
    model = googlenet.create_model("googlenet_bn", num_classes=CLASSES, aux_logits=False)
    train_x, train_y = _images(root, "train", model.meta)
    val_x, _ = _images(root, "val", model.meta)
    fit_stand_in(model, train_x, train_y)
    with torch.inference_mode():
        reference = model(train_x)
    # The classifier must spread its predictions, else agreement below would be vacuous.
    assert reference.argmax(1).unique().numel() == CLASSES
    # int8 is calibrated on the validation images, so calibration and evaluation images differ.
    return {
        "model": model,
        "images": train_x,
        "reference": reference,
        "calibration": list(val_x.split(25)),
        "confident": list(train_x.split(25)),  # images the stand-in separates (agreement is meaningful)
    }


COMBOS = [
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
]


@pytest.mark.parametrize(("backend", "precision"), COMBOS, ids=[f"{b}-{p}" for b, p in COMBOS])
def test_backend_precision_agrees_with_fp32(fitted: dict, backend: str, precision: str) -> None:
    reason = supported(backend, precision)
    if reason:
        pytest.skip(reason)
    predictor = Predictor(
        fitted["model"],
        backend,
        precision,
        image_size=SIZE,
        calibration=fitted["calibration"] if precision == "int8" else None,
    )
    assert (predictor.backend, predictor.precision) == (backend, precision)
    logits = torch.cat([predictor(b) for b in fitted["images"].split(16)])
    reference = fitted["reference"]
    assert logits.dtype == torch.float32 and logits.device.type == "cpu" and logits.shape == reference.shape
    if precision == "fp32":
        assert (logits - reference).abs().max().item() < FP32_TOL
    else:
        agreement = (logits.argmax(1) == reference.argmax(1)).float().mean().item()
        assert agreement >= int8.MIN_AGREEMENT, f"{backend}/{precision} top-1 agreement {agreement:.2%}"
        # Close logits, not just the same argmax; and really a different arithmetic.
        top2 = reference.topk(2, dim=1).values
        margin = (top2[:, 0] - top2[:, 1]).median().item()
        diff = (logits - reference).abs()
        assert 0 < diff.mean().item() < MARGIN_FRACTION * margin
    if precision == "int8":
        # The format follows the CPU's features: 7-bit weights where int8 kernels would saturate.
        fmt = (int8.ort_int8_format if backend == "onnxruntime" else int8.ov_int8_format)()
        assert predictor.int8_format == fmt.name and fmt.weight_bits == (8 if has_vnni() else 7)
        assert fmt.name in repr(predictor) and predictor.agreement is not None


def test_image_size_defaults_to_the_trained_size() -> None:
    model = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False).eval()
    assert Predictor(model, "torch", "fp32").image_size == 224  # Table 1
    model.meta.input_size = (3, 80, 80)  # what `googlenet train --image-size 80` records
    assert Predictor(model, "torch", "fp32").image_size == 80


def test_bad_requests_are_clear_errors(fitted: dict) -> None:
    model = fitted["model"]
    with pytest.raises(GoogLeNetError, match="calibration"):
        Predictor(model, "openvino", "int8", image_size=SIZE)
    with pytest.raises(GoogLeNetError, match="bf16"):
        Predictor(model, "onnxruntime", "bf16", image_size=SIZE)
    with pytest.raises(GoogLeNetError, match="int8"):
        Predictor(model, "torch", "int8", image_size=SIZE, calibration=fitted["calibration"])
    with pytest.raises(GoogLeNetError, match="unknown backend"):
        Predictor(model, "tensorrt", "fp32", image_size=SIZE)  # type: ignore[arg-type]
    with pytest.raises(GoogLeNetError, match="calibration batch"):
        Predictor(model, "onnxruntime", "int8", image_size=SIZE, calibration=[torch.zeros(2, 3, 64, 64)])
    predictor = Predictor(model, "onnxruntime", "fp32", image_size=SIZE)
    with pytest.raises(GoogLeNetError, match="built for 96x96"):
        predictor(torch.zeros(1, 3, 128, 128))
    with pytest.raises(GoogLeNetError, match="N x 3 x H x W"):
        predictor(torch.zeros(3, SIZE, SIZE))


def test_bf16_needs_native_support(fitted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CPU_FEATURES", "avx2")  # as on a CPU without AVX512-BF16 / AMX
    with pytest.raises(GoogLeNetError, match="native bf16"):
        Predictor(fitted["model"], "torch", "bf16", image_size=SIZE)
    predictor = Predictor(fitted["model"], "torch", "auto", image_size=SIZE, auto_batch=2, use_cache=False)
    assert predictor.precision == "fp32" and predictor.timings == {}  # bf16 not even a candidate


def test_auto_measures_and_caches(fitted: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path))
    model = fitted["model"]
    first = Predictor(model, "auto", "auto", image_size=SIZE, auto_batch=2)
    bf16 = {"torch/bf16", "openvino/bf16"} if native_bf16() else set()
    expected = {"torch/fp32", "onnxruntime/fp32", "openvino/fp32"} | bf16
    assert set(first.timings) == expected  # no int8 without calibration data
    fastest = min(first.timings, key=first.timings.__getitem__)
    assert f"{first.backend}/{first.precision}" == fastest and not first.from_cache
    assert "fastest" in first.reason and first.reason in repr(first)
    cache = tmp_path / autotune.CACHE_FILE
    assert cache.is_file()
    batch = fitted["images"][:4]
    torch.testing.assert_close(first(batch).argmax(1), fitted["reference"][:4].argmax(1))

    # The next predictor reads the decision instead of measuring: prove it by editing the cache.
    data = json.loads(cache.read_text())
    (key,) = data["choices"]
    other = next(c for c in sorted(expected) if c != fastest)
    data["choices"][key]["backend"], data["choices"][key]["precision"] = other.split("/")
    cache.write_text(json.dumps(data))
    second = Predictor(model, "auto", "auto", image_size=SIZE, auto_batch=2)
    assert second.from_cache and f"{second.backend}/{second.precision}" == other
    assert second.reason.startswith("cached: ")

    # Backend fixed: only its precisions, which on a CPU without native bf16 is fp32 alone, built
    # without measuring; with bf16 a different batch is a different key, measured again.
    third = Predictor(model, "torch", "auto", image_size=SIZE, auto_batch=3)
    assert not third.from_cache and third.precision in {"fp32", "bf16"}
    if native_bf16():
        assert set(third.timings) == {"torch/fp32", "torch/bf16"}
        assert len(json.loads(cache.read_text())["choices"]) == 2
    else:
        assert third.timings == {} and third.precision == "fp32" and "only candidate" in third.reason
        assert len(json.loads(cache.read_text())["choices"]) == 1


def _fake_times(monkeypatch: pytest.MonkeyPatch, int8_seconds: float, float_seconds: float) -> None:
    """Timings auto sees: fixed per kind (int8 runners carry their format), spread 1%."""

    def fake(run, batch, repeats=autotune.REPEATS):
        run(batch)
        is_int8 = "int8_format" in getattr(run, "info", {})
        return autotune.Timing(int8_seconds if is_int8 else float_seconds, 0.01)

    monkeypatch.setattr(autotune, "time_runner", fake)


def test_auto_takes_int8_only_when_faster_beyond_noise_and_faithful(
    fitted: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fitted["model"]
    # Clearly faster and calibrated on images the model separates: int8, and the reason says both.
    _fake_times(monkeypatch, int8_seconds=0.5, float_seconds=1.0)
    chosen = Predictor(
        model, "openvino", "auto", image_size=SIZE, calibration=fitted["confident"], use_cache=False
    )
    assert chosen.precision == "int8" and chosen.agreement is not None
    assert chosen.agreement >= int8.MIN_AGREEMENT and "agreement" in chosen.reason
    assert chosen.int8_format in repr(chosen)

    # The rule itself, on runners that cost nothing to build (three more real OpenVINO builds would
    # add ~20 s): a float candidate is the model, the int8 one the model as its build calibrated it.
    calibration = fitted["confident"]

    def runners(int8_logits):
        def build(backend: str, precision: str) -> Runner:
            if precision == "int8":
                return Runner(lambda x: int8_logits(model(x)), {"int8_format": "stand-in"})
            return Runner(model)

        return build

    def reference() -> list[torch.Tensor]:
        return [model(b) for b in calibration]

    candidates = [("openvino", "fp32"), ("openvino", "int8")]
    with torch.inference_mode():
        # 5% faster is inside the timing noise (the margin is INT8_MIN_SPEEDUP): float kept, and why.
        _fake_times(monkeypatch, int8_seconds=1 / 1.05, float_seconds=1.0)
        kept = autotune.choose(
            candidates, runners(lambda y: y), image_size=SIZE, batch=2, calibration=calibration,
            reference=reference,
        )  # fmt: skip
        assert kept.precision == "fp32" and "timing noise" in kept.reason and "openvino/int8" in kept.reason
        assert kept.agreement is None  # not faster: its predictions were not even compared

        # Faster, but its top-1s differ from fp32's (each image's classes reversed): float kept, and why.
        _fake_times(monkeypatch, int8_seconds=0.5, float_seconds=1.0)
        unfaithful = autotune.choose(
            candidates, runners(lambda y: -y), image_size=SIZE, batch=2, calibration=calibration,
            reference=reference,
        )  # fmt: skip
        assert unfaithful.agreement is not None and unfaithful.agreement < int8.MIN_AGREEMENT
        assert unfaithful.precision == "fp32" and "agreed with fp32 on only" in unfaithful.reason

        # Faster and faithful: int8, and the reason says both.
        faithful = autotune.choose(
            candidates, runners(lambda y: y), image_size=SIZE, batch=2, calibration=calibration,
            reference=reference,
        )  # fmt: skip
        assert faithful.precision == "int8" and faithful.agreement == 1.0 and "agreement" in faithful.reason


def test_required_speedup_grows_with_the_measured_spread() -> None:
    quiet, noisy = autotune.Timing(1.0, 0.01), autotune.Timing(1.0, 0.2)
    assert autotune.required_speedup(quiet, quiet) == autotune.INT8_MIN_SPEEDUP
    assert autotune.required_speedup(noisy, quiet) == pytest.approx(1.21)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_features_mode_gives_pooled_features(fitted: dict, backend: str) -> None:
    model = fitted["model"]
    predictor = Predictor(model, backend, "fp32", image_size=SIZE, outputs="features")
    batch = fitted["images"][:3]
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(batch), pre_logits=True)
    got = predictor(batch)
    assert got.shape == (3, 1024) and got.dtype == torch.float32 and got.device.type == "cpu"
    torch.testing.assert_close(got, expected, atol=FP32_TOL, rtol=1e-4)
    assert "outputs='features'" in repr(predictor)
    with pytest.raises(GoogLeNetError, match="int8 runs for logits only"):
        Predictor(
            model, "onnxruntime", "int8", image_size=SIZE, outputs="features", calibration=fitted["confident"]
        )


def test_output_and_device_strings_are_checked(fitted: dict) -> None:
    model = fitted["model"]
    kept = Predictor(model, "torch", "fp32", image_size=SIZE, output_device=None)
    assert kept(fitted["images"][:1]).device.type == "cpu"
    with pytest.raises(GoogLeNetError, match="unknown device 'gpu'"):
        Predictor(model, "torch", "fp32", image_size=SIZE, device="gpu")
    with pytest.raises(GoogLeNetError, match="unknown outputs"):
        Predictor(model, "torch", "fp32", image_size=SIZE, outputs="pool4")  # type: ignore[arg-type]
