"""BVLC Caffe GoogLeNet import (weights.importers.caffe), checked against OpenCV's own Caffe importer.

The tests write random-weight ``.caffemodel`` files in both Caffe layouts (current ``layer`` with
BlobShape, legacy V1 ``layers`` with 4-D shapes and unpacked floats) with a small protobuf
encoder below, taking the layer list and shapes from BVLC's ``deploy.prototxt`` (a copy in
tests/data). OpenCV (``cv2.dnn.readNetFromCaffe``) runs the same file on a BGR, 0-255,
mean-subtracted batch ``x``; the imported model must give the same logits on ``x.flip(1)``.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import googlenet
from googlenet.cli import main as cli_main
from googlenet.errors import GoogLeNetError
from googlenet.models.model import CAFFE_MEAN, CAFFE_STD
from googlenet.weights.importers import caffe_layer_map, import_caffe, load_caffe
from googlenet.weights.importers.caffe_proto import parse_blob

from .helpers import cli_in_process

cv2 = pytest.importorskip("cv2")

DEPLOY = Path(__file__).resolve().parent / "data" / "bvlc_googlenet_deploy.prototxt"
SHARED_DEPLOY = Path(__file__).resolve().parents[2] / "shared/reference/bvlc_googlenet/deploy.prototxt"
REL_TOL = 1e-4

# ---------------------------------------------------------------------------------------------
# deploy.prototxt: layer list and parameter shapes (an independent reading, not the importer's)


def parse_prototxt_layers(text: str) -> list[dict]:
    """Top-level ``layer { ... }`` blocks: name/type/bottom/top at depth 1, layer params anywhere."""
    layers: list[dict] = []
    depth = 0
    current: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if depth == 0 and line.startswith("layer {"):
            current = {"bottom": []}
            layers.append(current)
        elif current is not None and ":" in line and not line.endswith("{"):
            key, value = (s.strip() for s in line.split(":", 1))
            value = value.strip('"')
            if depth == 1 and key == "bottom":
                current["bottom"].append(value)
            elif depth == 1 and key in ("name", "type", "top"):
                current[key] = value
            elif key in ("num_output", "kernel_size", "stride", "pad", "pool"):
                current.setdefault(key, value)
        depth += line.count("{") - line.count("}")
    return layers


def caffe_param_shapes(layers: list[dict], image: int = 224) -> dict[str, list[tuple[int, ...]]]:
    """Weight and bias shape of every Convolution / InnerProduct layer, by walking the blobs."""
    blobs: dict[str, tuple[int, int, int]] = {}
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for layer in layers:
        kind = layer["type"]
        if kind == "Input":
            blobs[layer["top"]] = (3, image, image)
            continue
        ins = [blobs[b] for b in layer["bottom"]]
        c, h, w = ins[0]
        k, s, p = int(layer.get("kernel_size", 1)), int(layer.get("stride", 1)), int(layer.get("pad", 0))
        if kind == "Convolution":
            n = int(layer["num_output"])
            shapes[layer["name"]] = [(n, c, k, k), (n,)]
            out = (n, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif kind == "Pooling":  # Caffe rounds pooled sizes up
            out = (c, math.ceil((h + 2 * p - k) / s) + 1, math.ceil((w + 2 * p - k) / s) + 1)
        elif kind == "Concat":
            out = (sum(b[0] for b in ins), h, w)
        elif kind == "InnerProduct":
            n = int(layer["num_output"])
            shapes[layer["name"]] = [(n, c * h * w), (n,)]
            out = (n, 1, 1)
        else:  # ReLU, LRN, Dropout, Softmax keep the shape
            out = (c, h, w)
        blobs[layer["top"]] = out
    return shapes


def aux_prototxt(index: int, source: str, num_classes: int = 1000) -> str:
    """Section 5 auxiliary head as BVLC train_val.prototxt writes it (loss1 on 4a, loss2 on 4d)."""
    p = f"loss{index}"
    return f"""
layer {{ name: "{p}/ave_pool" type: "Pooling" bottom: "{source}" top: "{p}/ave_pool"
  pooling_param {{ pool: AVE kernel_size: 5 stride: 3 }} }}
layer {{ name: "{p}/conv" type: "Convolution" bottom: "{p}/ave_pool" top: "{p}/conv"
  convolution_param {{ num_output: 128 kernel_size: 1 }} }}
layer {{ name: "{p}/relu_conv" type: "ReLU" bottom: "{p}/conv" top: "{p}/conv" }}
layer {{ name: "{p}/fc" type: "InnerProduct" bottom: "{p}/conv" top: "{p}/fc"
  inner_product_param {{ num_output: 1024 }} }}
layer {{ name: "{p}/relu_fc" type: "ReLU" bottom: "{p}/fc" top: "{p}/fc" }}
layer {{ name: "{p}/classifier" type: "InnerProduct" bottom: "{p}/fc" top: "{p}/classifier"
  inner_product_param {{ num_output: {num_classes} }} }}
"""


# Section 5 shapes of the auxiliary heads at 224 input (4x4 maps after the 5x5/3 pool).
AUX_SHAPES = {
    f"loss{i}/{name}": shapes
    for i, channels in ((1, 512), (2, 528))
    for name, shapes in (
        ("conv", [(128, channels, 1, 1), (128,)]),
        ("fc", [(1024, 128 * 4 * 4), (1024,)]),
        ("classifier", [(1000, 1024), (1000,)]),
    )
}

AUX_LAYERS = [{"name": n, "type": "Convolution" if "conv" in n else "InnerProduct"} for n in AUX_SHAPES]

# ---------------------------------------------------------------------------------------------
# A small protobuf encoder: field numbers from BVLC caffe.proto (NetParameter name=1, layers=2,
# layer=100; LayerParameter name=1, type=2, blobs=7; V1LayerParameter name=4, type=5, blobs=6;
# BlobProto num/channels/height/width=1..4, data=5, shape=7; BlobShape dim=1).

V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18, "Pooling": 17, "LRN": 15,
            "Concat": 3, "Dropout": 6, "Softmax": 20}  # fmt: skip


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def length_delimited(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


def encode_blob(array: np.ndarray, *, legacy_4d: bool, packed: bool) -> bytes:
    out = b""
    if legacy_4d:
        shape = (1,) * (4 - array.ndim) + array.shape
        for field, dim in zip((1, 2, 3, 4), shape, strict=True):
            out += key(field, 0) + varint(dim)
    else:
        out += length_delimited(7, length_delimited(1, b"".join(varint(d) for d in array.shape)))
    flat = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    if packed:
        out += length_delimited(5, flat.tobytes())
    else:  # one fixed32 record per value: key byte 0x2d + 4 bytes
        records = np.empty((flat.size, 5), dtype=np.uint8)
        records[:, 0] = key(5, 5)[0]
        records[:, 1:] = flat.view(np.uint8).reshape(-1, 4)
        out += records.tobytes()
    return out


def encode_net(
    layers: list[dict], weights: dict[str, list[np.ndarray]], *, v1: bool, legacy_4d: bool, packed: bool
) -> bytes:
    out = length_delimited(1, b"GoogleNet")
    for layer in layers:
        if v1 and layer["type"] not in V1_TYPES:
            continue  # V1 has no Input layer type; inputs were net-level fields then
        blobs = [encode_blob(a, legacy_4d=legacy_4d, packed=packed) for a in weights.get(layer["name"], [])]
        if v1:
            body = length_delimited(4, layer["name"].encode()) + key(5, 0) + varint(V1_TYPES[layer["type"]])
            body += b"".join(length_delimited(6, b) for b in blobs)
            out += length_delimited(2, body)
        else:
            body = length_delimited(1, layer["name"].encode()) + length_delimited(2, layer["type"].encode())
            body += b"".join(length_delimited(7, b) for b in blobs)
            out += length_delimited(100, body)
    return out


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def deploy_text() -> str:
    return DEPLOY.read_text()


@pytest.fixture(scope="module")
def net_layers(deploy_text: str) -> list[dict]:
    return parse_prototxt_layers(deploy_text)


@pytest.fixture(scope="module")
def weights(net_layers: list[dict]) -> dict[str, list[np.ndarray]]:
    """He-scaled random weights and small biases: activations stay O(input) through the LRNs."""
    rng = np.random.default_rng(0)
    shapes = {**caffe_param_shapes(net_layers), **AUX_SHAPES}
    out = {}
    for name, (w_shape, b_shape) in shapes.items():
        fan_in = int(np.prod(w_shape[1:]))
        gain = 1.0 if "classifier" in name else 2.0
        w = rng.standard_normal(w_shape, dtype=np.float32) * np.float32(math.sqrt(gain / fan_in))
        b = rng.uniform(-0.5, 0.5, b_shape).astype(np.float32)
        out[name] = [w, b]
    return out


@pytest.fixture(scope="module")
def caffe_batch() -> np.ndarray:
    """Two 224x224 images laid out as Caffe expects: BGR, 0-255, minus the BVLC mean (104, 117, 123)."""
    rng = np.random.default_rng(1)
    bgr = rng.uniform(0, 255, (2, 3, 224, 224)).astype(np.float32)
    return bgr - np.array([104, 117, 123], dtype=np.float32).reshape(1, 3, 1, 1)


@pytest.fixture(scope="module")
def current_file(tmp_path_factory, net_layers, weights) -> Path:
    """Current layout, BlobShape, packed floats, with the auxiliary heads (a train_val snapshot)."""
    path = tmp_path_factory.mktemp("caffe") / "bvlc_googlenet.caffemodel"
    path.write_bytes(encode_net(net_layers + AUX_LAYERS, weights, v1=False, legacy_4d=False, packed=True))
    return path


def opencv_logits(prototxt: str, caffemodel: Path, x: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromCaffe(bytearray(prototxt.encode()), bytearray(caffemodel.read_bytes()))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(x)
    return [np.asarray(o).reshape(x.shape[0], -1) for o in net.forward(outputs)]


def assert_close(ours: torch.Tensor, reference: np.ndarray) -> None:
    ref = torch.from_numpy(reference)
    assert ref.std() > 1.0, "degenerate reference logits would make the comparison meaningless"
    rel = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert rel < REL_TOL, f"relative error {rel:.2e}"


@pytest.fixture(scope="module")
def imported(current_file, caffe_batch):
    """The import of ``current_file`` and its (logits, aux1, aux2) on the Caffe batch, made once."""
    model, report = import_caffe(current_file)
    with torch.no_grad():
        outputs = model.forward_train(torch.from_numpy(caffe_batch).flip(1))  # the model takes RGB
    return model, report, outputs


# ---------------------------------------------------------------------------------------------
# Tests


def test_test_copy_of_deploy_prototxt_is_bvlcs():
    if not SHARED_DEPLOY.is_file():
        pytest.skip(f"{SHARED_DEPLOY} not checked out beside the repository")
    assert DEPLOY.read_bytes() == SHARED_DEPLOY.read_bytes()


def test_layer_map_covers_every_weight_layer_and_module(net_layers):
    mapping = caffe_layer_map()
    deploy_weight_layers = set(caffe_param_shapes(net_layers))
    assert set(mapping) == deploy_weight_layers | set(AUX_SHAPES)
    model = googlenet.create_model("googlenet")
    param_modules = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    assert set(mapping.values()) == param_modules
    assert mapping["inception_4c/5x5"] == "inception4c.branch3.1.conv"
    assert mapping["loss2/fc"] == "aux2.fc1"


def test_current_layout_matches_opencv_main_and_aux_logits(
    imported, current_file, deploy_text, caffe_batch, weights
):
    model, report, out = imported
    assert report.aux_heads and model.aux_logits and report.num_classes == 1000
    assert "with the auxiliary heads" in report.summary()
    prototxt = deploy_text + aux_prototxt(1, "inception_4a/output") + aux_prototxt(2, "inception_4d/output")
    ref_main, ref_aux1, ref_aux2 = opencv_logits(
        prototxt, current_file, caffe_batch, ["loss3/classifier", "loss1/classifier", "loss2/classifier"]
    )
    assert_close(out.logits, ref_main)
    assert_close(out.aux1, ref_aux1)
    assert_close(out.aux2, ref_aux2)
    # conv1 sees RGB: its input channels are Caffe's reversed; every other layer is copied as is.
    conv1, reduce4c = model.conv1.conv.weight.detach(), model.inception4c.branch2[0].conv.weight.detach()
    np.testing.assert_array_equal(conv1.numpy(), weights["conv1/7x7_s2"][0][:, ::-1])
    np.testing.assert_array_equal(reduce4c.numpy(), weights["inception_4c/3x3_reduce"][0])
    assert not model.training


def test_metadata_is_caffe_preprocessing_and_imagenet_classes(imported, current_file):
    meta = imported[0].meta
    assert meta.variant == "googlenet" and meta.channel_order == "RGB"
    assert meta.mean == CAFFE_MEAN and meta.std == CAFFE_STD
    assert meta.class_names is not None and len(meta.class_names) == 1000
    assert meta.class_names[0] == "tench" and meta.class_names[999] == "toilet tissue"
    digest = hashlib.sha256(current_file.read_bytes()).hexdigest()
    assert meta.source == f"caffe:{current_file.name} sha256:{digest}"
    assert meta.extra["caffe_layout"].startswith("layer ")
    # The registered preprocessing turns [0, 1] RGB into Caffe's 0-255, mean-subtracted input.
    rgb = torch.rand(1, 3, 4, 4)
    mean, std = torch.tensor(meta.mean).view(1, 3, 1, 1), torch.tensor(meta.std).view(1, 3, 1, 1)
    caffe_bgr = (rgb * 255).flip(1) - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(((rgb - mean) / std).flip(1), caffe_bgr, rtol=1e-5, atol=1e-4)


def test_v1_layout_4d_blobs_unpacked_floats_give_the_same_model(
    tmp_path, imported, net_layers, weights, deploy_text, caffe_batch
):
    reference = imported[0].state_dict()
    # (V1 layout, legacy 4-D shapes, unpacked floats): BVLC's 2014 file is V1 + 4-D; the second
    # file isolates the 4-D encoding in the current layout.
    for v1, legacy_4d, packed in ((True, True, False), (False, True, True)):
        path = tmp_path / f"v1{v1}_4d{legacy_4d}_packed{packed}.caffemodel"
        path.write_bytes(
            encode_net(net_layers + AUX_LAYERS, weights, v1=v1, legacy_4d=legacy_4d, packed=packed)
        )
        model = load_caffe(path)
        assert model.meta.extra["caffe_layout"].startswith("layers (legacy V1)" if v1 else "layer ")
        state = model.state_dict()
        assert state.keys() == reference.keys()
        for k in reference:
            assert torch.equal(state[k], reference[k]), (path.name, k)
        if v1:  # OpenCV reads the legacy file too (it upgrades V1 nets as Caffe does)
            (ref_main,) = opencv_logits(deploy_text, path, caffe_batch, ["loss3/classifier"])
            assert_close(imported[2].logits, ref_main)


def test_deploy_only_file_has_no_aux_heads_and_custom_classes(tmp_path, net_layers, weights):
    rng = np.random.default_rng(2)
    w = dict(weights)
    w["loss3/classifier"] = [rng.standard_normal((10, 1024), np.float32) * 0.03, np.zeros(10, np.float32)]
    path = tmp_path / "deploy_only.caffemodel"
    path.write_bytes(encode_net(net_layers, w, v1=False, legacy_4d=True, packed=True))
    model, report = import_caffe(path)
    assert not model.aux_logits and not report.aux_heads and report.num_classes == 10
    assert "no auxiliary heads" in report.summary()
    assert model.meta.class_names is None
    torch.testing.assert_close(model.fc.weight, torch.from_numpy(w["loss3/classifier"][0]), rtol=0, atol=0)
    with pytest.raises(GoogLeNetError, match="no loss1/loss2"):
        import_caffe(path, aux_logits=True)


def test_aux_heads_can_be_left_out(current_file):
    model, report = import_caffe(current_file, aux_logits=False)
    assert not model.aux_logits and "left out" in report.summary()


def test_wrong_shape_names_layer_and_both_shapes(tmp_path, net_layers, weights):
    # Layer names are checked before shapes, and conv1 is the first shape checked: the other
    # layers can hold 1-value placeholders (keeps the test fast).
    w = {name: [np.zeros(1, np.float32)] * 2 for name in weights}
    w["conv1/7x7_s2"] = [np.zeros((64, 3, 5, 5), np.float32), np.zeros(64, np.float32)]
    path = tmp_path / "bad_shape.caffemodel"
    path.write_bytes(encode_net(net_layers + AUX_LAYERS, w, v1=False, legacy_4d=False, packed=True))
    with pytest.raises(GoogLeNetError) as info:
        load_caffe(path)
    message = str(info.value)
    assert "'conv1/7x7_s2'" in message and "(64, 3, 5, 5)" in message and "(64, 3, 7, 7)" in message
    assert str(path) in message


def test_missing_and_unknown_layers_are_named(tmp_path, net_layers, weights):
    placeholders = {name: [np.zeros(1, np.float32)] * 2 for name in weights}
    w = {k: v for k, v in placeholders.items() if k != "inception_5b/pool_proj"}
    path = tmp_path / "missing.caffemodel"
    path.write_bytes(encode_net(net_layers, w, v1=False, legacy_4d=False, packed=True))
    with pytest.raises(GoogLeNetError, match=r"missing layer.*'inception_5b/pool_proj'"):
        load_caffe(path)
    extra = [*net_layers, {"name": "fc_extra", "type": "InnerProduct"}]
    w = {**placeholders, "fc_extra": [np.zeros((2, 3), np.float32), np.zeros(2, np.float32)]}
    path.write_bytes(encode_net(extra, w, v1=False, legacy_4d=False, packed=True))
    with pytest.raises(GoogLeNetError, match="'fc_extra'"):
        load_caffe(path)
    w = {k: v for k, v in placeholders.items() if k != "loss2/fc"}
    path.write_bytes(encode_net(net_layers + AUX_LAYERS, w, v1=False, legacy_4d=False, packed=True))
    with pytest.raises(GoogLeNetError, match=r"incomplete auxiliary heads.*'loss2/fc'"):
        load_caffe(path)


def test_blob_encodings_decode_alike():
    """Every encoding protobuf allows for a BlobProto's shape and values gives the same blob."""
    values = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    shape_packed = length_delimited(7, length_delimited(1, varint(2) + varint(3)))
    shape_unpacked = length_delimited(7, key(1, 0) + varint(2) + key(1, 0) + varint(3))
    flat = values.reshape(-1)
    encodings = {
        "packed": encode_blob(values, legacy_4d=False, packed=True),
        "unpacked": encode_blob(values, legacy_4d=False, packed=False),
        "legacy-4d": encode_blob(values, legacy_4d=True, packed=True),
        "unpacked-dims": shape_unpacked + length_delimited(5, flat.tobytes()),
        "split-packed": shape_packed
        + length_delimited(5, flat[:4].tobytes())
        + length_delimited(5, flat[4:].tobytes()),
        "double": shape_packed + length_delimited(8, flat.astype("<f8").tobytes()),
    }
    for name, data in encodings.items():
        blob = parse_blob(memoryview(data))
        assert blob.shape == ((1, 1, 2, 3) if name == "legacy-4d" else (2, 3)), name
        np.testing.assert_array_equal(blob.data, flat, err_msg=name)
        assert blob.data.dtype == np.float32


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff" * 11, b"\x0a\x50short", DEPLOY.read_bytes()],
    ids=["empty", "bad-varint", "truncated", "prototxt-text"],
)
def test_garbage_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "garbage.caffemodel"
    path.write_bytes(content)
    with pytest.raises(GoogLeNetError, match=re.escape(str(path))):
        load_caffe(path)


def test_cli_convert_caffe_roundtrip(tmp_path, imported, current_file, caffe_batch):
    out = tmp_path / "out" / "googlenet_bvlc.safetensors"
    proc = cli_in_process("convert", "caffe", current_file, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "with the auxiliary heads" in proc.stdout and str(out) in proc.stdout
    loaded = googlenet.load(out)
    assert loaded.meta.source == imported[0].meta.source
    assert loaded.aux_logits and loaded.meta.mean == CAFFE_MEAN
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(torch.from_numpy(caffe_batch).flip(1)), imported[2].logits, rtol=0, atol=0
        )


def test_cli_convert_garbage_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "garbage.caffemodel"
    bad.write_bytes(b"\x0a\x50short")
    target = tmp_path / "x.safetensors"
    assert cli_main(["convert", "caffe", str(bad), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("googlenet convert: error: ") and err.count("\n") == 1 and str(bad) in err
    assert not target.exists()
