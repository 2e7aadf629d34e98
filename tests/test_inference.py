"""googlenet.Predictor: every backend x precision runs and agrees with eager fp32; auto and its cache.

Tolerances (stated in docs/inference.md):
- fp32 on onnxruntime / OpenVINO vs eager fp32 torch: max abs logit difference < 1e-3 (logits of
  order 1; only summation order and the folded BatchNorm differ);
- bf16 and int8: top-1 agreement with fp32 >= 90% on real (built-in) images, and mean abs logit
  difference below 10% (bf16) / 35% (int8) of the fp32 logits' standard deviation.

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
import googlenet.inference.predictor as inference
from googlenet.errors import GoogLeNetError
from googlenet.inference.predictor import Predictor, native_bf16, supported

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

SIZE = 96
CLASSES = 10
FP32_TOL = 1e-3
AGREEMENT = 0.90
# Mean abs logit error as a fraction of the fp32 logits' standard deviation (measured: bf16 < 0.1,
# int8 0.20-0.22 on this model).
LOGIT_REL_TOL = {"bf16": 0.1, "int8": 0.35}


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
    return {"model": model, "images": train_x, "reference": reference, "calibration": list(val_x.split(25))}


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
        assert agreement >= AGREEMENT, f"{backend}/{precision} top-1 agreement {agreement:.2%}"
        # Close logits, not just the same argmax; and really a different arithmetic.
        diff = (logits - reference).abs()
        assert 0 < diff.mean().item() < LOGIT_REL_TOL[precision] * reference.std().item()


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
    monkeypatch.setattr(inference, "native_bf16", lambda: False)
    with pytest.raises(GoogLeNetError, match="native bf16"):
        Predictor(fitted["model"], "torch", "bf16", image_size=SIZE)
    predictor = Predictor(fitted["model"], "torch", "auto", image_size=SIZE, auto_batch=2, use_cache=False)
    assert predictor.precision == "fp32" and predictor.timings == {}  # bf16 not even a candidate


def test_auto_measures_and_caches(fitted: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path))
    model = fitted["model"]
    first = Predictor(model, "auto", "auto", image_size=SIZE, auto_batch=2)
    expected = {"torch/fp32", "onnxruntime/fp32", "openvino/fp32"}
    if native_bf16():
        expected |= {"torch/bf16", "openvino/bf16"}
    assert set(first.timings) == expected  # no int8 without calibration data
    fastest = min(first.timings, key=first.timings.__getitem__)
    assert f"{first.backend}/{first.precision}" == fastest and not first.from_cache
    cache = tmp_path / inference.CACHE_FILE
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

    # A different batch is a different key: measured again. Backend fixed: only its precisions.
    third = Predictor(model, "torch", "auto", image_size=SIZE, auto_batch=3)
    assert not third.from_cache and {k.split("/")[0] for k in third.timings} == {"torch"}
    assert len(json.loads(cache.read_text())["choices"]) == 2
