"""Import the BVLC Caffe GoogLeNet (``bvlc_googlenet.caffemodel``) into the paper variant ``googlenet``.

BVLC's reproduction of the paper (section 5, Table 1; PAPER.md "Training") is the only public
set of weights for the network as published: LRN, biased convolutions, real 5x5 branches. Its
layers are named by ``deploy.prototxt`` / ``train_val.prototxt`` (``conv1/7x7_s2``,
``inception_3a/5x5_reduce``, ``loss3/classifier``, the auxiliary ``loss1/*`` and ``loss2/*``);
the mapping onto our module names is derived from Table 1 (:data:`googlenet.models.spec.TABLE1`), not
typed out layer by layer.

What the import checks and changes:

- every weight layer of the model is present, and nothing else with weights is in the file;
- each blob's shape equals the module's (leading 1s of Caffe's legacy 4-D shapes ignored) and
  holds as many values as its shape says; errors name the layer and both shapes;
- conv1's input channels are reversed: Caffe's net sees BGR, ours RGB, so the imported model is
  used with ``googlenet``'s registered preprocessing (RGB, 0-255, minus 123/117/104, no std);
- the auxiliary heads (section 5, trained jointly with weight 0.3) are imported when the file
  has them (a net saved from ``train_val.prototxt``) and left out otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...errors import GoogLeNetError
from ...models.imagenet_classes import NUM_IMAGENET_CLASSES, imagenet_class_names
from ...models.model import GoogLeNet
from ...models.spec import PAPER, ConvRow, GoogLeNetConfig, InceptionRow
from .caffe_proto import CaffeBlob, CaffeLayer, ProtobufError, parse_net
from .common import ImportReport, assign_state, empty_model, file_sha256

logger = logging.getLogger(__name__)

# BVLC layer names of the stem convolutions (deploy.prototxt), by Table 1 row.
_STEM_LAYERS = {"conv1": "conv1/7x7_s2", "conv2_reduce": "conv2/3x3_reduce", "conv2": "conv2/3x3"}
# Inception branch submodules (layers.Inception, figure 2b) -> BVLC layer suffix.
_BRANCH_LAYERS = {
    "branch1.conv": "1x1",
    "branch2.0.conv": "3x3_reduce",
    "branch2.1.conv": "3x3",
    "branch3.0.conv": "5x5_reduce",
    "branch3.1.conv": "5x5",
    "branch4.1.conv": "pool_proj",
}
# Auxiliary head submodules (layers.AuxHead, section 5) -> BVLC layer suffix under loss1/ or loss2/.
_AUX_LAYERS = {"conv.conv": "conv", "fc1": "fc", "fc2": "classifier"}
_CLASSIFIER = "loss3/classifier"
_FIRST_CONV = "conv1/7x7_s2"
_MAX_LISTED = 5


def caffe_layer_map(config: GoogLeNetConfig = PAPER) -> dict[str, str]:
    """BVLC layer name -> module path in ``googlenet``.

    For example ``"inception_4c/3x3"`` -> ``"inception4c.branch2.1.conv"``. Walks the model's
    Table 1 rows; includes the auxiliary heads (``loss1/*``, ``loss2/*``).
    """
    mapping: dict[str, str] = {}
    for row in config.rows():
        if isinstance(row, ConvRow):
            mapping[_STEM_LAYERS[row.name]] = f"{row.name}.conv"
        elif isinstance(row, InceptionRow):
            prefix = "inception_" + row.name.removeprefix("inception")  # inception4c -> inception_4c
            for module, suffix in _BRANCH_LAYERS.items():
                mapping[f"{prefix}/{suffix}"] = f"{row.name}.{module}"
    mapping[_CLASSIFIER] = "fc"
    for index, head in ((1, "aux1"), (2, "aux2")):
        for module, suffix in _AUX_LAYERS.items():
            mapping[f"loss{index}/{suffix}"] = f"{head}.{module}"
    return mapping


def _aux_layer(name: str) -> bool:
    return name.startswith(("loss1/", "loss2/"))


def _squeeze_leading(shape: tuple[int, ...]) -> tuple[int, ...]:
    # Legacy 4-D blobs pad with leading 1s: an InnerProduct weight is (1, 1, out, in), a bias
    # (1, 1, 1, out). BlobShape stores (out, in) and (out,). Compare without them.
    i = 0
    while i < len(shape) - 1 and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


def _first(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _read_layers(path: Path) -> tuple[dict[str, CaffeLayer], str, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GoogLeNetError(f"Caffe model {path} not found") from None
    except OSError as exc:
        raise GoogLeNetError(f"{path}: cannot read the Caffe model ({exc.strerror or exc})") from None
    if not data:
        raise GoogLeNetError(f"{path}: empty file, not a Caffe model")
    try:
        net = parse_net(data)
    except ProtobufError as exc:
        head = data[:64]
        looks_like_text = head.isascii() and all(c >= 32 or c in b"\t\r\n" for c in head)
        hint = "; it looks like text, and a .prototxt holds no weights" if looks_like_text else ""
        raise GoogLeNetError(
            f"{path}: not a binary Caffe model (.caffemodel NetParameter): {exc}{hint}"
        ) from None
    layers: dict[str, CaffeLayer] = {}
    for layer in net.layers:
        if not layer.blobs:
            continue
        if layer.name in layers:
            raise GoogLeNetError(f"{path}: layer {layer.name!r} appears twice with weights")
        layers[layer.name] = layer
    if not layers:
        raise GoogLeNetError(f"{path}: no layer with weights; not a trained Caffe model")
    return layers, net.layout, net.name


def _blob_tensor(
    path: Path, layer: str, index: int, blob: CaffeBlob, expected: tuple[int, ...]
) -> torch.Tensor:
    what = ("weights", "bias")[index]
    if _squeeze_leading(blob.shape) != _squeeze_leading(expected):
        raise GoogLeNetError(
            f"{path}: layer {layer!r} {what} (blob {index}) has shape {blob.shape}, "
            f"the model expects {expected}"
        )
    count = int(np.prod(blob.shape))
    if blob.data.size != count:
        raise GoogLeNetError(
            f"{path}: layer {layer!r} {what} (blob {index}) holds {blob.data.size} values, "
            f"its shape {blob.shape} says {count}"
        )
    return torch.from_numpy(blob.data).reshape(expected)


def import_caffe(
    caffemodel_path: str | Path, *, aux_logits: bool | None = None
) -> tuple[GoogLeNet, ImportReport]:
    """Build ``googlenet`` (eval mode) from a BVLC GoogLeNet ``.caffemodel``, and say what was imported.

    Accepts the current (``layer``) and legacy V1 (``layers``) net layouts, BlobShape and legacy
    4-D blob shapes, packed and unpacked float data. The auxiliary heads are imported when the
    file has them, unless ``aux_logits=False`` leaves them out (``True`` requires them). The
    model takes RGB input with ``googlenet``'s preprocessing
    (:data:`~googlenet.models.model.CAFFE_MEAN`, :data:`~googlenet.models.model.CAFFE_STD`).
    """
    path = Path(caffemodel_path)
    layers, layout, net_name = _read_layers(path)
    mapping = caffe_layer_map()

    if _CLASSIFIER not in layers:
        raise GoogLeNetError(f"{path}: no {_CLASSIFIER!r} layer; not a BVLC GoogLeNet model")
    classifier = layers[_CLASSIFIER].blobs
    if len(classifier) != 2:
        raise GoogLeNetError(f"{path}: layer {_CLASSIFIER!r} has {len(classifier)} blob(s), expected 2")
    num_classes = int(classifier[1].data.size)  # the bias: one value per class
    if num_classes < 1:
        raise GoogLeNetError(f"{path}: layer {_CLASSIFIER!r} has an empty bias")

    aux_expected = [name for name in mapping if _aux_layer(name)]
    aux_found = [name for name in aux_expected if name in layers]
    if aux_found and len(aux_found) != len(aux_expected):
        missing = [n for n in aux_expected if n not in layers]
        raise GoogLeNetError(f"{path}: incomplete auxiliary heads, missing layer(s) {_first(missing)}")
    if aux_logits is True and not aux_found:
        raise GoogLeNetError(f"{path}: auxiliary heads requested but the file has no loss1/loss2 layers")
    aux_heads = bool(aux_found) if aux_logits is None else aux_logits
    wanted = [name for name in mapping if aux_heads or not _aux_layer(name)]
    missing = [name for name in wanted if name not in layers]
    if missing:
        raise GoogLeNetError(f"{path}: not a BVLC GoogLeNet model; missing layer(s) {_first(missing)}")
    unknown = [name for name in layers if name not in mapping]
    if unknown:
        raise GoogLeNetError(f"{path}: layer(s) with weights that GoogLeNet does not have: {_first(unknown)}")

    class_names = imagenet_class_names() if num_classes == NUM_IMAGENET_CLASSES else None
    model = empty_model("googlenet", num_classes=num_classes, aux_logits=aux_heads, class_names=class_names)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name in wanted:
        blobs = layers[name].blobs
        if len(blobs) != 2:
            raise GoogLeNetError(
                f"{path}: layer {name!r} has {len(blobs)} blob(s), expected 2 (weights and bias)"
            )
        for index, suffix in enumerate(("weight", "bias")):
            key = f"{mapping[name]}.{suffix}"
            state[key] = _blob_tensor(path, name, index, blobs[index], tuple(expected[key].shape))
    # Caffe's net was trained on BGR images (OpenCV decoding); ours takes RGB.
    conv1 = f"{mapping[_FIRST_CONV]}.weight"
    state[conv1] = state[conv1].flip(1).contiguous()
    assign_state(model, state, str(path))

    digest = file_sha256(path)
    layout_text = "layer (current)" if layout == "layer" else "layers (legacy V1)"
    model.meta.source = f"caffe:{path.name} sha256:{digest}"
    model.meta.extra.update(
        {
            "source_format": "caffe",
            "source_file": path.name,
            "source_sha256": digest,
            "caffe_net_name": net_name,
            "caffe_layout": layout_text,
        }
    )
    notes = [f"net {net_name!r}, {layout_text} layout", "conv1 input channels flipped BGR -> RGB"]
    if aux_found and not aux_heads:
        notes.append("auxiliary heads in the file left out")
    elif not aux_heads:
        notes.append("no loss1/loss2 layers in the file (a deploy net), so no auxiliary heads")
    report = ImportReport(
        source_format="caffe",
        source=path.name,
        source_sha256=digest,
        variant="googlenet",
        num_classes=num_classes,
        aux_heads=aux_heads,
        tensors=len(wanted),
        notes=notes,
    )
    return model.eval(), report


def load_caffe(caffemodel_path: str | Path, *, aux_logits: bool | None = None) -> GoogLeNet:
    """The ``googlenet`` model of a BVLC ``.caffemodel`` (see :func:`import_caffe`), in eval mode."""
    model, report = import_caffe(caffemodel_path, aux_logits=aux_logits)
    logger.info("%s", report.summary())
    return model
