"""MultiBox: class-agnostic box proposals from one pass of the Inception network (paper section 8).

GoogLeNet's detector adds "200 proposals" of MultiBox (Erhan, Szegedy, Toshev, Anguelov, "Scalable
Object Detection using Deep Neural Networks", CVPR 2014, arXiv:1312.2249) to Selective Search's.
What is implemented here, with the paper's notation (docs/detection.md, section "MultiBox"):

* **The network**: the GoogLeNet backbone up to inception5b (``forward_features``, N x 1024 x 7 x 7
  at 224 px), average pooling and one linear layer to ``K * 4`` box residuals and ``K``
  confidence logits (``c_i = sigmoid(logit_i)``). It is a :class:`~googlenet.models.model.GoogLeNet`
  with ``num_classes = 5 K`` and no auxiliary heads, so ``googlenet.weights.store`` saves and
  checks it like any other model; the output's first ``4 K`` entries are the residuals (prior-major,
  ``x1 y1 x2 y2``), the last ``K`` the logits.
* **Priors**: the training boxes, in normalised ``[0, 1]`` corner coordinates, clustered into ``K``
  priors by k-means (:func:`scipy.cluster.vq.kmeans2`, k-means++ seeding, fixed seed). Box ``i`` is
  predicted as a residual to its prior: ``l_i = prior_i + r_i``.
* **Matching**: each ground-truth box ``g_j`` is matched to one prior by the bipartite assignment
  minimising ``sum_ij x_ij * alpha / 2 * ||prior_i - g_j||^2``
  (:func:`scipy.optimize.linear_sum_assignment`). The paper's assignment cost also has the
  confidence terms of the current predictions; matching to the priors "instead of to the current
  predictions" drops them, and the factor ``alpha / 2`` does not change the optimum.
* **Loss**: ``F = F_conf + alpha * F_match`` with ``F_match = 1/2 sum_ij x_ij ||l_i - g_j||^2`` and
  ``F_conf = -sum_ij x_ij log c_i - sum_i (1 - sum_j x_ij) log(1 - c_i)``, summed over an image's
  ``K`` boxes and averaged over the images of a batch.
* **Proposals**: the image warped to the network's input, the ``K`` boxes decoded and clipped, then
  greedy non-maximum suppression (``torchvision.ops.nms``) and the ``top`` best.

Boxes outside this module are inclusive 1-based pixel indices (:mod:`.boxes`): the pixels
``xmin..xmax`` cover the continuous interval ``[xmin - 1, xmax]``, which is what normalising maps
to ``[0, 1]``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..atomic import atomic_write, atomic_write_text
from ..data.config import DataConfig, check_image_size, resolve_data_config
from ..data.transforms import interpolation_mode
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet, ModelMeta
from ..models.registry import create_model
from ..runs import MULTIBOX_FILE, RunLayout
from .boxes import as_boxes, to_exclusive

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NMS_IOU",
    "DEFAULT_NUM_PRIORS",
    "MultiBox",
    "MultiBoxLoss",
    "MultiBoxRun",
    "MultiBoxSamples",
    "MultiBoxTrainConfig",
    "create_multibox_network",
    "decode_boxes",
    "denormalise_boxes",
    "encode_targets",
    "fit_priors",
    "load_multibox",
    "match_cost",
    "match_priors",
    "multibox_loss",
    "multibox_proposals",
    "normalise_boxes",
    "positive_share",
    "preprocess",
    "resume_config",
    "save_multibox",
    "split_outputs",
    "train_multibox",
    "training_boxes",
]

# K: this project's choice for the built-in set (a few objects per image); Erhan et al. predict a
# fixed K per image and GoogLeNet keeps 200 of its proposals (section 8), so K = 100 is recorded,
# not the paper's.
DEFAULT_NUM_PRIORS = 100
# alpha weighs F_match against F_conf; the paper gives it no value ("a tuned weight",
# docs/detection.md); 0.3 is this project's setting.
DEFAULT_ALPHA = 0.3
# Greedy NMS threshold on the proposals: this project's choice (boxes overlapping more than IoU 0.7
# are near duplicates for R-CNN's warp; R-CNN suppresses at 0.3 per class after scoring).
DEFAULT_NMS_IOU = 0.7
DEFAULT_IMAGE_SIZE = 224  # section 5: the network's receptive field
KMEANS_ITERATIONS = 30
MULTIBOX_FORMAT = "googlenet-multibox"
MULTIBOX_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- box coordinates


def normalise_boxes(boxes: object, width: int, height: int) -> np.ndarray:
    """Inclusive 1-based pixel boxes of a ``width`` x ``height`` image -> ``[0, 1]`` corners."""
    b = as_boxes(boxes)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return (b - np.array([1.0, 1.0, 0.0, 0.0])) / scale


def denormalise_boxes(boxes01: object, width: int, height: int) -> np.ndarray:
    """``[0, 1]`` corners -> inclusive 1-based whole-pixel boxes inside the image.

    Corners are clipped to the image and put in order; each box keeps at least one pixel.
    """
    b = np.clip(as_boxes(boxes01), 0.0, 1.0)
    x1, x2 = np.minimum(b[:, 0], b[:, 2]) * width, np.maximum(b[:, 0], b[:, 2]) * width
    y1, y2 = np.minimum(b[:, 1], b[:, 3]) * height, np.maximum(b[:, 1], b[:, 3]) * height
    xmin = np.clip(np.round(x1) + 1.0, 1.0, width)
    ymin = np.clip(np.round(y1) + 1.0, 1.0, height)
    xmax = np.clip(np.maximum(np.round(x2), xmin), 1.0, width)
    ymax = np.clip(np.maximum(np.round(y2), ymin), 1.0, height)
    return np.stack([xmin, ymin, xmax, ymax], axis=1)


def training_boxes(targets: Iterable[Any]) -> np.ndarray:
    """Every ground-truth box of ``targets`` (:class:`.datasets.DetectionTarget`), normalised (M, 4)."""
    parts = [normalise_boxes(t.boxes, t.width, t.height) for t in targets if len(t.boxes)]
    return np.concatenate(parts) if parts else np.zeros((0, 4))


# --------------------------------------------------------------------------- priors and matching


def fit_priors(boxes01: object, num_priors: int, *, seed: int = 0) -> np.ndarray:
    """``num_priors`` k-means centres (K, 4) of the normalised training boxes (Erhan et al. 2014).

    scipy's ``kmeans2`` with k-means++ seeding from ``numpy.random.default_rng(seed)``: the same
    boxes and seed give the same priors. A cluster that empties keeps its centre (a training box).
    """
    data = as_boxes(boxes01)
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    distinct = len(np.unique(data, axis=0))
    if distinct < num_priors:
        # k-means++ draws centres with probability ~ squared distance: it cannot pick more
        # distinct centres than there are distinct boxes.
        raise GoogLeNetError(
            f"{num_priors} priors need at least {num_priors} distinct training boxes; the data has "
            f"{distinct}: pass a smaller --num-priors or more training images"
        )
    from scipy.cluster.vq import kmeans2

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        centres, _ = kmeans2(
            data, num_priors, iter=KMEANS_ITERATIONS, minit="++", seed=np.random.default_rng(seed)
        )
    return np.asarray(centres, dtype=np.float64)


def match_cost(priors: object, gt01: object, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """The assignment cost (K, M): ``alpha / 2 * ||prior_i - g_j||^2``."""
    p, g = as_boxes(priors), as_boxes(gt01)
    return alpha / 2.0 * ((p[:, None, :] - g[None, :, :]) ** 2).sum(axis=2)


def match_priors(priors: object, gt01: object) -> tuple[np.ndarray, np.ndarray]:
    """The optimal bipartite matching of ground truths to priors: ``(prior indices, gt indices)``.

    Each ground truth takes one prior and each prior at most one ground truth; with more ground
    truths than priors, ``K`` of them are matched (those of the cheapest complete assignment).
    """
    from scipy.optimize import linear_sum_assignment

    g = as_boxes(gt01)
    if len(g) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = linear_sum_assignment(match_cost(priors, g, 1.0))
    return rows.astype(np.int64), cols.astype(np.int64)


def encode_targets(priors: object, gt01: object) -> tuple[np.ndarray, np.ndarray]:
    """Per prior: the matched ground-truth box (K, 4; zeros where unmatched) and the match (K,) bool."""
    p = as_boxes(priors)
    boxes = np.zeros_like(p, dtype=np.float32)
    matched = np.zeros(len(p), dtype=bool)
    rows, cols = match_priors(p, gt01)
    if len(rows):
        boxes[rows] = as_boxes(gt01)[cols]
        matched[rows] = True
    return boxes, matched


# --------------------------------------------------------------------------- the network and loss


class MultiBoxLoss(NamedTuple):
    """``total = conf + alpha * match``, each the mean over the batch's images of a per-image sum."""

    total: torch.Tensor
    conf: torch.Tensor
    match: torch.Tensor


def split_outputs(outputs: torch.Tensor, num_priors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's N x 5K output -> residuals N x K x 4 and confidence logits N x K."""
    if outputs.shape[-1] != 5 * num_priors:
        raise ValueError(f"{num_priors} priors need {5 * num_priors} outputs. Got {outputs.shape[-1]}")
    return outputs[:, : 4 * num_priors].reshape(-1, num_priors, 4), outputs[:, 4 * num_priors :]


def decode_boxes(residuals: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """``l_i = prior_i + r_i`` (normalised corners, not clipped)."""
    return priors.to(residuals.dtype) + residuals


def multibox_loss(
    residuals: torch.Tensor,
    logits: torch.Tensor,
    priors: torch.Tensor,
    target_boxes: torch.Tensor,
    matched: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> MultiBoxLoss:
    """Erhan et al.'s ``F = F_conf + alpha F_match`` for a batch (targets from :func:`encode_targets`).

    ``residuals`` N x K x 4, ``logits`` N x K, ``priors`` K x 4, ``target_boxes`` N x K x 4,
    ``matched`` N x K bool. ``-log c`` and ``-log(1 - c)`` are computed from the logits
    (``binary_cross_entropy_with_logits``), which stays finite where ``c`` rounds to 0 or 1.
    """
    matched_f = matched.to(logits.dtype)
    conf = F.binary_cross_entropy_with_logits(logits.float(), matched_f.float(), reduction="none").sum(1)
    error = (decode_boxes(residuals.float(), priors.float()) - target_boxes.float()) ** 2
    match = 0.5 * (error.sum(2) * matched_f.float()).sum(1)
    conf, match = conf.mean(), match.mean()
    return MultiBoxLoss(conf + alpha * match, conf, match)


def create_multibox_network(
    num_priors: int,
    *,
    model: str = "googlenet",
    backbone: GoogLeNet | None = None,
    confidence_start: float | None = None,
) -> GoogLeNet:
    """A GoogLeNet whose classifier predicts ``num_priors`` boxes (``5 K`` outputs), no auxiliary heads.

    ``backbone``: a trained classifier whose layers up to inception5b are copied (its variant is
    used; ``model`` is then ignored). The residual outputs start at zero, so every box starts at its
    prior. ``confidence_start`` (the share of priors matched per image, :func:`positive_share`) sets
    the confidence biases so that every ``c_i`` starts there, as RetinaNet (Lin et al. 2017)
    initialises its classifier: with ``c_i = 1/2`` the ``K`` unmatched terms would dominate the
    first steps.
    """
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    if backbone is None:
        net = create_model(model, num_classes=5 * num_priors, aux_logits=False)
    else:
        meta = ModelMeta(
            variant=backbone.meta.variant,
            num_classes=5 * num_priors,
            mean=tuple(backbone.meta.mean),
            std=tuple(backbone.meta.std),
            resize_ratio=backbone.meta.resize_ratio,
            interpolation=backbone.meta.interpolation,
            transform_input=backbone.meta.transform_input,
            source=f"MultiBox on {backbone.meta.source}",
        )
        net = GoogLeNet(backbone.config, num_classes=5 * num_priors, aux_logits=False, meta=meta)
        features = {k: v for k, v in backbone.state_dict().items() if k.split(".")[0] in set(net.stages)}
        missing, unexpected = net.load_state_dict(features, strict=False)
        left = [k for k in missing if not k.startswith("fc.")]
        if left or unexpected:
            raise GoogLeNetError(f"the backbone does not fit the MultiBox network: missing {left[:3]}")
    with torch.no_grad():
        net.fc.weight[: 4 * num_priors].zero_()
        net.fc.bias[: 4 * num_priors].zero_()
        if confidence_start is not None and 0.0 < confidence_start < 1.0:
            net.fc.bias[4 * num_priors :] = math.log(confidence_start / (1.0 - confidence_start))
    net.meta.class_names = None
    net.meta.extra = {"multibox_priors": str(num_priors)}
    return net


def preprocess(images: Sequence[np.ndarray], data: DataConfig) -> torch.Tensor:
    """(H, W, 3) uint8 RGB images -> the network's N x 3 x S x S input.

    The whole image is warped (anisotropically) to S x S, so normalised box coordinates are the
    same before and after; then ``(x - mean) / std`` on [0, 1] pixels.
    """
    from torchvision.transforms.v2 import functional as TF

    mode = interpolation_mode(data.interpolation)
    batch = []
    for image in images:
        # A copy: PIL's arrays are read-only and a flipped view has negative strides.
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1)
        tensor = TF.resize(tensor, [data.image_size, data.image_size], interpolation=mode, antialias=True)
        batch.append(TF.normalize(tensor.float() / 255.0, list(data.mean), list(data.std)))
    return torch.stack(batch)


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise GoogLeNetError(f"MultiBox expects an (H, W, 3) uint8 RGB image. Got {what}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise GoogLeNetError(f"MultiBox got an empty image of shape {image.shape}")
    return image


# --------------------------------------------------------------------------- a trained model


@dataclass
class MultiBox:
    """A trained MultiBox model: the network, its priors (K, 4) and the settings it runs with."""

    network: GoogLeNet
    priors: np.ndarray
    image_size: int = DEFAULT_IMAGE_SIZE
    alpha: float = DEFAULT_ALPHA
    nms_iou: float = DEFAULT_NMS_IOU

    def __post_init__(self) -> None:
        self.priors = as_boxes(self.priors)
        check_image_size(self.image_size, "MultiBox image size")
        if self.network.num_classes != 5 * len(self.priors):
            raise GoogLeNetError(
                f"the MultiBox network has {self.network.num_classes} outputs, "
                f"{len(self.priors)} priors need {5 * len(self.priors)}"
            )
        if not 0.0 < self.nms_iou <= 1.0:
            raise GoogLeNetError(f"MultiBox NMS IoU must be in (0, 1]. Got {self.nms_iou}")

    @property
    def num_priors(self) -> int:
        return len(self.priors)

    @property
    def data_config(self) -> DataConfig:
        return resolve_data_config(self.network.meta, image_size=self.image_size)

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: the K decoded boxes in normalised corners (K, 4), clipped to [0, 1], and their
        confidences (K,)."""
        images = [_check_image(im) for im in images]
        if not images:
            return []
        device = next(self.network.parameters()).device
        was_training = self.network.training
        self.network.eval()
        try:
            outputs = self.network(preprocess(images, self.data_config).to(device))
        finally:
            self.network.train(was_training)
        return self.decode(outputs)

    def decode(self, outputs: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """The network's N x 5K outputs -> per image (boxes (K, 4) in [0, 1], confidences (K,))."""
        residuals, logits = split_outputs(outputs.detach().float(), self.num_priors)
        priors = torch.as_tensor(self.priors, dtype=torch.float32, device=residuals.device)
        boxes = decode_boxes(residuals, priors).clamp(0.0, 1.0).double().cpu().numpy()
        scores = torch.sigmoid(logits).double().cpu().numpy()
        return list(zip(boxes, scores, strict=True))

    def select(
        self, boxes01: np.ndarray, scores: np.ndarray, width: int, height: int, top: int
    ) -> np.ndarray:
        """One image's proposals from its decoded boxes: pixels, NMS, the ``top`` best first."""
        import torchvision.ops

        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise GoogLeNetError(f"the number of MultiBox proposals must be a positive integer. Got {top!r}")
        boxes = denormalise_boxes(boxes01, width, height)
        # torchvision's exclusive corners give the +1 widths of the inclusive convention.
        keep = torchvision.ops.nms(
            torch.from_numpy(to_exclusive(boxes)), torch.from_numpy(scores), float(self.nms_iou)
        )
        return boxes[keep[:top].numpy()]

    def propose(self, image_rgb: np.ndarray, top: int) -> np.ndarray:
        """The ``top`` best boxes after NMS, (N, 4) float64 inclusive pixel indices, best first."""
        return self.propose_many([image_rgb], top)[0]

    def propose_many(self, images: Sequence[np.ndarray], top: int) -> list[np.ndarray]:
        """:meth:`propose` for several images, run through the network as one batch."""
        return [
            self.select(boxes01, scores, image.shape[1], image.shape[0], top)
            for image, (boxes01, scores) in zip(images, self.predict(images), strict=True)
        ]


def _settings(multibox: MultiBox, weights_sha256: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": MULTIBOX_FORMAT,
        "format_version": MULTIBOX_FORMAT_VERSION,
        "num_priors": multibox.num_priors,
        "image_size": multibox.image_size,
        "alpha": multibox.alpha,
        "nms_iou": multibox.nms_iou,
        "weights_sha256": weights_sha256,
        **extra,
        "priors": multibox.priors.tolist(),
    }


def save_multibox(multibox: MultiBox, directory: str | Path, **extra: Any) -> Path:
    """Write ``DIR/model.safetensors`` (the network) and then ``DIR/multibox.json`` (priors and settings).

    Both writes are atomic and the JSON, written last, records the weights' tensor hash, so a
    folder never pairs priors with other weights. ``extra``: JSON-able fields recorded beside them.
    """
    from ..weights.store import read_metadata, save_weights

    layout = RunLayout(directory)
    layout.root.mkdir(parents=True, exist_ok=True)
    save_weights(multibox.network, layout.weights, extra={"multibox": MULTIBOX_FILE})
    sha = read_metadata(layout.weights)["sha256"]
    path = layout.root / MULTIBOX_FILE
    atomic_write_text(path, json.dumps(_settings(multibox, sha, extra), indent=1) + "\n")
    return path


def _number(settings: dict[str, Any], key: str, path: Path, *, integer: bool = False) -> Any:
    value = settings.get(key)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise GoogLeNetError(f"{path}: {key} must be {kind}. Got {value!r}")
    return value


def load_multibox(directory: str | Path, *, device: str | torch.device = "cpu") -> MultiBox:
    """The MultiBox model written by :func:`save_multibox` (``googlenet train-multibox --out DIR``)."""
    from ..weights.store import load_weights, read_metadata

    root = Path(directory).expanduser()
    path = root / MULTIBOX_FILE
    if not path.is_file():
        raise GoogLeNetError(
            f"MultiBox model folder {root} has no {MULTIBOX_FILE}: pass a folder written by "
            "googlenet train-multibox --out DIR"
        )
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoogLeNetError(f"{path}: not a readable MultiBox file ({exc})") from None
    if not isinstance(settings, dict) or settings.get("format") != MULTIBOX_FORMAT:
        raise GoogLeNetError(f"{path}: not a MultiBox file (format is not {MULTIBOX_FORMAT!r})")
    try:
        priors = np.asarray(settings.get("priors"), dtype=np.float64)
    except (TypeError, ValueError):
        priors = np.zeros(0)
    if priors.ndim != 2 or priors.shape[1:] != (4,) or len(priors) < 1 or not np.isfinite(priors).all():
        raise GoogLeNetError(f"{path}: priors must be a non-empty list of [x1, y1, x2, y2] numbers")
    weights = RunLayout(root).weights
    sha = read_metadata(weights).get("sha256")
    if sha != settings.get("weights_sha256"):
        raise GoogLeNetError(
            f"{path}: records weights {str(settings.get('weights_sha256'))[:16]}... but {weights} holds "
            f"{str(sha)[:16]}...; the folder mixes two trainings"
        )
    return MultiBox(
        network=load_weights(weights, device=device),
        priors=priors,
        image_size=_number(settings, "image_size", path, integer=True),
        alpha=float(_number(settings, "alpha", path)),
        nms_iou=float(_number(settings, "nms_iou", path)),
    )


@functools.lru_cache(maxsize=4)
def _cached_multibox(directory: str, mtime_ns: int) -> MultiBox:
    return load_multibox(directory)


def multibox_proposals(image_rgb: np.ndarray, multibox_dir: str | Path, top: int) -> np.ndarray:
    """The ``top`` best MultiBox boxes of one (H, W, 3) uint8 RGB image, (N, 4) float64 inclusive.

    The model in ``multibox_dir`` is loaded once per process (reloaded when its
    ``multibox.json`` changes).
    """
    path = Path(multibox_dir).expanduser() / MULTIBOX_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0  # load_multibox says what is missing
    return _cached_multibox(str(Path(multibox_dir).expanduser().resolve()), mtime).propose(image_rgb, top)


# --------------------------------------------------------------------------- training samples


class MultiBoxSamples(torch.utils.data.Dataset):
    """Training samples of a detection dataset: ``(image 3 x S x S, target boxes K x 4, matched K)``.

    ``dataset[i]`` gives ``(PIL image, DetectionTarget)`` (:class:`.datasets.DetectionDataset`). With
    ``flip`` the image and its boxes are mirrored with probability 1/2, drawn from torch's RNG (so
    the engine's :class:`~googlenet.training.engine.SeededSamples` makes it a function of the
    sample's seed); the matching to the priors follows the flip.
    """

    def __init__(self, dataset: Any, priors: np.ndarray, data: DataConfig, *, flip: bool = True) -> None:
        self.dataset = dataset
        self.priors = as_boxes(priors)
        self.data = data
        self.flip = flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, target = self.dataset[index]
        rgb = np.asarray(image.convert("RGB") if isinstance(image, PIL.Image.Image) else image)
        gt = normalise_boxes(target.boxes, target.width, target.height)
        if self.flip and bool(torch.rand(()) < 0.5):
            rgb = rgb[:, ::-1]
            gt = np.stack([1.0 - gt[:, 2], gt[:, 1], 1.0 - gt[:, 0], gt[:, 3]], axis=1)
        boxes, matched = encode_targets(self.priors, gt)
        x = preprocess([rgb], self.data)[0]
        return x, torch.from_numpy(boxes), torch.from_numpy(matched)


def positive_share(targets: Iterable[Any], num_priors: int) -> float:
    """The mean share of the ``num_priors`` priors matched per image (one per ground truth, at most K)."""
    counts = [min(len(t.boxes), num_priors) for t in targets]
    return sum(counts) / (len(counts) * num_priors) if counts else 0.0


# --------------------------------------------------------------------------- training runs

# Adam rather than the classifier's SGD (section 6): on the paper network (0-255 inputs, no
# BatchNorm) SGD at 0.01-0.05 diverged within a few steps on small sets here; Erhan et al. give no
# optimizer settings. Recorded in docs/detection.md.
DEFAULT_LR = 1e-4
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 16
CHECKPOINT_FORMAT = "googlenet-multibox-checkpoint"
# Settings a resumed run may change; every other one must be the checkpoint's.
RESUME_MAY_CHANGE = frozenset({"epochs", "workers", "device", "out"})


@dataclass(frozen=True)
class MultiBoxTrainConfig:
    """One ``googlenet train-multibox`` run (defaults documented in docs/detection.md, "MultiBox")."""

    data: str
    out: str
    model: str = "googlenet"
    init_from: str | None = None
    num_priors: int = DEFAULT_NUM_PRIORS
    alpha: float = DEFAULT_ALPHA
    nms_iou: float = DEFAULT_NMS_IOU
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    image_size: int = DEFAULT_IMAGE_SIZE
    flip: bool = True
    seed: int = 0
    workers: int = 0
    train_split: str = "train"
    val_split: str | None = "val"
    top: int = 200  # section 8: the proposals kept per image, for the validation coverage
    device: str = "cpu"

    def validate(self) -> None:
        """A one-line error naming the first bad setting."""
        check_image_size(self.image_size, "--image-size")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "num_priors": self.num_priors}
        for name, value in {**positive, "top": self.top}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoogLeNetError(f"--{name.replace('_', '-')} must be a positive integer. Got {value!r}")
        if self.workers < 0:
            raise GoogLeNetError(f"--workers must be >= 0. Got {self.workers}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GoogLeNetError(f"--lr must be a positive number. Got {self.lr}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise GoogLeNetError(f"--alpha must be a non-negative number. Got {self.alpha}")
        if not 0 < self.nms_iou <= 1:
            raise GoogLeNetError(f"--nms-iou must be in (0, 1]. Got {self.nms_iou}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MultiBoxRun:
    """What :func:`train_multibox` leaves: the folder (a MultiBox model) and one record per epoch."""

    out: Path
    records: list[dict[str, Any]]
    resumed_from_epoch: int


def _open_split(config: MultiBoxTrainConfig, split: str) -> Any:
    from .datasets import open_detection_dataset

    return open_detection_dataset(config.data, split)


def _initial_network(config: MultiBoxTrainConfig, targets: list[Any]) -> GoogLeNet:
    backbone = None
    if config.init_from is not None:
        from ..runs import resolve_checkpoint

        backbone = resolve_checkpoint(config.init_from).load()
    torch.manual_seed(config.seed)
    net = create_multibox_network(
        config.num_priors,
        model=config.model,
        backbone=backbone,
        confidence_start=positive_share(targets, config.num_priors),
    )
    net.meta.input_size = (3, config.image_size, config.image_size)
    return net


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted types for truncated or foreign files
        raise GoogLeNetError(f"{path}: not a readable MultiBox checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise GoogLeNetError(f"{path}: not a MultiBox training checkpoint (googlenet train-multibox)")
    return state


def _loader(samples: Any, sampler: Any, workers: int) -> Any:
    from ..training.engine import SeededSamples

    return torch.utils.data.DataLoader(
        SeededSamples(samples), batch_sampler=sampler, num_workers=workers, persistent_workers=False
    )


@torch.no_grad()
def _validate(multibox: MultiBox, val: Any, config: MultiBoxTrainConfig) -> dict[str, float]:
    """Mean validation loss of the split and the coverage of its boxes by the ``top`` proposals."""
    from .proposals import coverage

    net = multibox.network
    net.eval()
    device = next(net.parameters()).device
    priors = torch.as_tensor(multibox.priors, dtype=torch.float32, device=device)
    sums = {"loss": 0.0, "conf": 0.0, "match": 0.0}
    proposals: dict[str, np.ndarray] = {}
    batch = min(config.batch_size, 32)
    for first in range(0, len(val), batch):
        items = [val[i] for i in range(first, min(first + batch, len(val)))]
        images = [np.asarray(image.convert("RGB")) for image, _ in items]
        encoded = [
            encode_targets(multibox.priors, normalise_boxes(t.boxes, t.width, t.height)) for _, t in items
        ]
        boxes = torch.as_tensor(np.stack([b for b, _ in encoded]), device=device)
        matched = torch.as_tensor(np.stack([m for _, m in encoded]), device=device)
        outputs = net(preprocess(images, multibox.data_config).to(device))
        loss = multibox_loss(
            *split_outputs(outputs, multibox.num_priors), priors, boxes, matched, alpha=config.alpha
        )
        for key, value in zip(("loss", "conf", "match"), loss, strict=True):
            sums[key] += float(value.detach()) * len(items)
        for (_, target), (boxes01, scores) in zip(items, multibox.decode(outputs), strict=True):
            found = multibox.select(boxes01, scores, target.width, target.height, config.top)
            proposals[target.image_id] = found
    out = {f"val_{k}": v / len(val) for k, v in sums.items()}
    out[f"val_coverage_at_{config.top}"] = coverage(proposals, val.targets(), 0.5)
    return out


def resume_config(out: str | Path, overrides: dict[str, Any] | None = None) -> MultiBoxTrainConfig:
    """The config of the run in ``out`` (its last checkpoint), with ``overrides`` applied.

    Only the settings in :data:`RESUME_MAY_CHANGE` may differ from the saved ones; ``None`` values
    are not given.
    """
    path = RunLayout(out).last_checkpoint
    if not path.is_file():
        raise GoogLeNetError(f"--resume: {path} does not exist; start a new run without --resume")
    saved = dict(_read_checkpoint(path)["config"])
    for key, value in (overrides or {}).items():
        if value is None or key == "out":
            continue
        if key in RESUME_MAY_CHANGE:
            saved[key] = value
        elif saved.get(key) != value:
            raise GoogLeNetError(
                f"{path} was trained with {key}={saved.get(key)!r}, not {value!r}: resume with the same "
                f"settings (only {', '.join(sorted(RESUME_MAY_CHANGE - {'out'}))} may change)"
            )
    saved["out"] = str(out)
    return MultiBoxTrainConfig(**saved)


def train_multibox(config: MultiBoxTrainConfig, *, resume: bool = False, on_epoch: Any = None) -> MultiBoxRun:
    """Train MultiBox on ``config.data`` into ``config.out`` (a folder :func:`load_multibox` reads).

    The priors are fitted once on the training split and kept in the checkpoint. The data order
    and each sample's flip are functions of ``(seed, epoch, position)`` (the training engine's
    ``EpochBatchSampler`` / ``SeededSamples``); dropout's RNG is saved with the weights and the
    optimizer in ``checkpoints/last.pt`` after every epoch (written atomically), so ``resume``
    (with the config of :func:`resume_config`) continues exactly where the last completed epoch
    ended. ``on_epoch(record)`` is called after
    each epoch with its metrics. Every input is checked before anything is written.
    """
    from ..training.engine import EpochBatchSampler

    config.validate()
    layout = RunLayout(config.out)
    state = None
    if resume:
        # The settings must be the checkpoint's (resume_config builds them), except those that
        # do not change what is computed.
        resume_config(config.out, config.to_dict())
        state = _read_checkpoint(layout.last_checkpoint)
    elif layout.last_checkpoint.is_file() or (layout.root / MULTIBOX_FILE).is_file():
        raise GoogLeNetError(
            f"--out {layout.root} already holds a MultiBox run: pass --resume to continue it or another --out"
        )
    device = torch.device(config.device)
    train = _open_split(config, config.train_split)
    val = _open_split(config, config.val_split) if config.val_split else None
    sampler = EpochBatchSampler(len(train), config.batch_size, seed=config.seed, shuffle=True)
    if sampler.batches_per_epoch() < 1:
        raise GoogLeNetError(
            f"--batch-size {config.batch_size} is larger than the {len(train)} training images of "
            f"{config.data} ({config.train_split})"
        )
    targets = train.targets()
    if state is not None:
        priors = state["priors"].double().numpy()
    else:
        priors = fit_priors(training_boxes(targets), config.num_priors, seed=config.seed)
    network = _initial_network(config, targets).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    records: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        records = list(state["records"])
        start = int(state["epoch"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    multibox = MultiBox(network, priors, config.image_size, config.alpha, config.nms_iou)
    samples = MultiBoxSamples(train, priors, multibox.data_config, flip=config.flip)
    prior_t = torch.as_tensor(priors, dtype=torch.float32, device=device)

    layout.checkpoints.mkdir(parents=True, exist_ok=True)
    if state is None:
        import yaml

        atomic_write_text(layout.config, yaml.safe_dump(config.to_dict(), sort_keys=False))
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        network.train()
        sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "conf": 0.0, "match": 0.0}
        steps = 0
        for x, boxes, matched in _loader(samples, sampler, config.workers):
            x, boxes, matched = x.to(device), boxes.to(device), matched.to(device)
            loss = multibox_loss(
                *split_outputs(network(x), config.num_priors), prior_t, boxes, matched, alpha=config.alpha
            )
            if not bool(torch.isfinite(loss.total)):
                raise GoogLeNetError(
                    f"non-finite MultiBox loss at epoch {epoch + 1}, step {steps + 1}: lower --lr "
                    f"(now {config.lr})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            for key, value in zip(("loss", "conf", "match"), loss, strict=True):
                sums[key] += float(value.detach())
            steps += 1
        record: dict[str, Any] = {"epoch": epoch + 1, "steps": steps}
        record.update({k: v / steps for k, v in sums.items()})
        if val is not None:
            record.update(_validate(multibox, val, config))
        record["seconds"] = time.perf_counter() - began
        records.append(record)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
            "config": config.to_dict(),
            "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "priors": torch.from_numpy(priors),
            "records": records,
            "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
        }
        atomic_write(layout.last_checkpoint, lambda tmp, c=checkpoint: torch.save(c, tmp))
        atomic_write_text(layout.metrics, "".join(json.dumps(r) + "\n" for r in records))
        if on_epoch is not None:
            on_epoch(record)
    network.eval()
    save_multibox(
        multibox,
        layout.root,
        trained={k: v for k, v in config.to_dict().items() if k not in {"out", "workers", "device"}},
        epochs_done=config.epochs,
    )
    return MultiBoxRun(layout.root, records, start)
