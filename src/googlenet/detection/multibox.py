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
* **Training**: :func:`multibox_task`, a :class:`~googlenet.training.task.Task` of the shared loop
  (:func:`googlenet.training.train.fit`: optimizer, schedule, Polyak averaging, checkpoints, exact
  resume, torchrun, TensorBoard). Its labels are each image's targets against the priors, its
  validation the val loss and the coverage of the val boxes by the ``top`` proposals, and the
  finished run's folder is a MultiBox model (:func:`load_multibox`).

Boxes outside this module are inclusive 1-based pixel indices (:mod:`.boxes`): the pixels
``xmin..xmax`` cover the continuous interval ``[xmin - 1, xmax]``, which is what normalising maps
to ``[0, 1]``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_text
from ..data.config import DataConfig, check_image_size, resolve_data_config
from ..data.transforms import interpolation_mode
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from ..models.registry import create_model
from ..runs import MULTIBOX_FILE, RunLayout, read_yaml
from ..training.config import TrainConfig
from ..training.distributed import DistEnv, all_reduce_sum
from ..training.engine import Scores, TrainMetric, autocast, collate_batch
from ..training.engine import split_outputs as main_output
from ..training.loading import model_options
from ..training.task import Task, TaskData, initialise_from
from .boxes import as_boxes, to_exclusive
from .proposals import covered_boxes

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NMS_IOU",
    "DEFAULT_NUM_PRIORS",
    "MULTIBOX_RECIPE",
    "MultiBox",
    "MultiBoxLoss",
    "MultiBoxOptions",
    "MultiBoxSamples",
    "check_new_run",
    "create_multibox_network",
    "decode_boxes",
    "denormalise_boxes",
    "encode_targets",
    "fit_priors",
    "label_loss",
    "load_multibox",
    "match_cost",
    "match_priors",
    "multibox_loss",
    "multibox_proposals",
    "multibox_task",
    "normalise_boxes",
    "positive_share",
    "preprocess",
    "resume_options",
    "save_multibox",
    "split_outputs",
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
    error = decode_boxes(residuals.float(), priors.float()) - target_boxes.float()
    return _loss_terms(error, logits, matched, alpha)


def _loss_terms(
    error: torch.Tensor, logits: torch.Tensor, matched: torch.Tensor, alpha: float
) -> MultiBoxLoss:
    # error: l_i - g_j per coordinate (N x K x 4); only the matched priors count in F_match.
    matched_f = matched.float()
    conf = F.binary_cross_entropy_with_logits(logits.float(), matched_f, reduction="none").sum(1)
    match = 0.5 * ((error.float() ** 2).sum(2) * matched_f).sum(1)
    conf, match = conf.mean(), match.mean()
    return MultiBoxLoss(conf + alpha * match, conf, match)


# One image's label tensor (K x 6, :class:`MultiBoxSamples`): per prior the target residual
# g_j - prior_i of the ground truth matched to it (zeros when unmatched), 1.0 where it is matched,
# and the image's index in its split (validation looks up the image's boxes and size by it).
LABEL_RESIDUAL, LABEL_MATCHED, LABEL_INDEX = slice(0, 4), 4, 5
LABEL_COLUMNS = 6


def label_loss(outputs: torch.Tensor, labels: torch.Tensor, *, alpha: float = DEFAULT_ALPHA) -> MultiBoxLoss:
    """:func:`multibox_loss` of the network's N x 5K ``outputs`` against :class:`MultiBoxSamples`'
    N x K x 6 ``labels``: ``l_i - g_j = r_i - (g_j - prior_i)``, so the priors are in the labels."""
    residuals, logits = split_outputs(outputs, labels.shape[1])
    error = residuals.float() - labels[..., LABEL_RESIDUAL].float()
    return _loss_terms(error, logits, labels[..., LABEL_MATCHED] > 0.5, alpha)


def create_multibox_network(
    num_priors: int,
    *,
    model: str = "googlenet",
    confidence_start: float | None = None,
    **model_overrides: Any,
) -> GoogLeNet:
    """A GoogLeNet whose classifier predicts ``num_priors`` boxes (``5 K`` outputs), no auxiliary heads.

    ``model`` and ``model_overrides`` are :func:`~googlenet.models.registry.create_model`'s (a trained
    backbone is loaded afterwards: ``--init-from``, :func:`multibox_task`). The residual outputs
    start at zero, so every box starts at its prior. ``confidence_start`` (the share of priors
    matched per image, :func:`positive_share`) sets the confidence biases so that every ``c_i``
    starts there, as RetinaNet (Lin et al. 2017) initialises its classifier: with ``c_i = 1/2`` the
    ``K`` unmatched terms would dominate the first steps.
    """
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    net = create_model(model, num_classes=5 * num_priors, aux_logits=False, **model_overrides)
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


def save_multibox(
    multibox: MultiBox, directory: str | Path, *, write_weights: bool = True, **extra: Any
) -> Path:
    """Write ``DIR/model.safetensors`` (the network) and then ``DIR/multibox.json`` (priors and settings).

    Both writes are atomic and the JSON, written last, records the weights' tensor hash, so a
    folder never pairs priors with other weights. With ``write_weights=False`` the weights file is
    already there (a training run's averaged weights) and must hold the network's tensors.
    ``extra``: JSON-able fields recorded beside them.
    """
    from ..weights.store import read_metadata, save_weights, tensors_sha256

    layout = RunLayout(directory)
    layout.root.mkdir(parents=True, exist_ok=True)
    if write_weights:
        save_weights(multibox.network, layout.weights, extra={"multibox": MULTIBOX_FILE})
    sha = read_metadata(layout.weights)["sha256"]
    if not write_weights and tensors_sha256(multibox.network.state_dict()) != sha:
        raise GoogLeNetError(f"{layout.weights} does not hold the MultiBox network being saved")
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
    """Training samples of a detection dataset: ``(image 3 x S x S, labels K x 6)``.

    ``dataset[i]`` gives ``(PIL image, DetectionTarget)`` (:class:`.datasets.DetectionDataset`). The
    labels are the image's targets against the priors (:data:`LABEL_RESIDUAL`, :data:`LABEL_MATCHED`,
    :data:`LABEL_INDEX`; :func:`encode_targets`). With ``flip`` the image and its boxes are mirrored
    with probability 1/2, drawn from torch's RNG (so the engine's
    :class:`~googlenet.training.engine.SeededSamples` makes it a function of the sample's seed); the
    matching to the priors follows the flip.
    """

    def __init__(self, dataset: Any, priors: np.ndarray, data: DataConfig, *, flip: bool = True) -> None:
        self.dataset = dataset
        self.priors = as_boxes(priors)
        self.data = data
        self.flip = flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.dataset[index]
        rgb = np.asarray(image.convert("RGB") if isinstance(image, PIL.Image.Image) else image)
        gt = normalise_boxes(target.boxes, target.width, target.height)
        if self.flip and bool(torch.rand(()) < 0.5):
            rgb = rgb[:, ::-1]
            gt = np.stack([1.0 - gt[:, 2], gt[:, 1], 1.0 - gt[:, 0], gt[:, 3]], axis=1)
        boxes, matched = encode_targets(self.priors, gt)
        labels = np.zeros((len(self.priors), LABEL_COLUMNS), dtype=np.float32)
        labels[matched, LABEL_RESIDUAL] = boxes[matched] - self.priors[matched]
        labels[:, LABEL_MATCHED] = matched
        labels[:, LABEL_INDEX] = index
        return preprocess([rgb], self.data)[0], torch.from_numpy(labels)


def positive_share(targets: Iterable[Any], num_priors: int) -> float:
    """The mean share of the ``num_priors`` priors matched per image (one per ground truth, at most K)."""
    counts = [min(len(t.boxes), num_priors) for t in targets]
    return sum(counts) / (len(counts) * num_priors) if counts else 0.0


# --------------------------------------------------------------------------- training: a Task of fit

# The recipe train-multibox starts from, where it differs from the classifier's (docs/detection.md):
# Adam rather than section 6's SGD -- on the paper network (0-255 inputs, no BatchNorm) SGD at
# 0.01-0.05 diverged within a few steps on small sets here; Erhan et al. give no optimizer settings.
# AdamW without weight decay is Adam; 1e-4 at batch 16 (scaled with the global batch like the
# classifier's rate), every parameter at the same rate.
MULTIBOX_RECIPE: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-4,
    "lr_reference_batch": 16,
    "weight_decay": 0.0,
    "bias_lr_mult": 1.0,
    "batch_size": 16,
    "epochs": 10,
    "image_size": DEFAULT_IMAGE_SIZE,
}
COVERAGE_IOU = 0.5  # a box counts as found by a proposal with IoU >= 0.5 (R-CNN, section 8)


@dataclass(frozen=True)
class MultiBoxOptions:
    """MultiBox's own settings beside the recipe (:class:`~googlenet.training.config.TrainConfig`).

    They are the task's ``settings``: kept in ``RUN/task.yaml`` and every checkpoint, and a resume
    must keep them (:func:`resume_options`).
    """

    num_priors: int = DEFAULT_NUM_PRIORS
    alpha: float = DEFAULT_ALPHA
    nms_iou: float = DEFAULT_NMS_IOU
    top: int = 200  # section 8: the proposals kept per image, for the validation coverage
    flip: bool = True
    train_split: str = "train"
    val_split: str = "val"

    def validate(self) -> None:
        """A one-line error naming the first bad setting by its flag."""

        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        def number(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        for name in ("num_priors", "top"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoogLeNetError(f"{flag(name)} must be a positive integer. Got {value!r}")
        if not (number(self.alpha) and self.alpha >= 0):
            raise GoogLeNetError(f"--alpha must be a non-negative number. Got {self.alpha!r}")
        if not (number(self.nms_iou) and 0 < self.nms_iou <= 1):
            raise GoogLeNetError(f"--nms-iou must be in (0, 1]. Got {self.nms_iou!r}")
        if not isinstance(self.flip, bool):
            raise GoogLeNetError(f"flip must be true or false. Got {self.flip!r}")
        for name in ("train_split", "val_split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise GoogLeNetError(f"{flag(name)} must name a split. Got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> MultiBoxOptions:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise GoogLeNetError(
                f"{source}: unknown MultiBox setting {unknown[0]!r} (known: {', '.join(known)})"
            )
        options = cls(**data)
        options.validate()
        return options


def resume_options(run_dir: str | Path, given: Mapping[str, Any]) -> MultiBoxOptions:
    """The MultiBox settings of the run in ``run_dir`` (its ``task.yaml``); a ``given`` setting
    (None: not given) that differs from the run's is a one-line error: a resume keeps them all."""
    path = RunLayout(run_dir).task_settings
    if not path.is_file():
        raise GoogLeNetError(f"cannot resume: {path} not found (is {run_dir} a train-multibox run?)")
    options = MultiBoxOptions.from_dict(read_yaml(path), source=str(path))
    saved = options.to_dict()
    for key, value in given.items():
        if value is not None and saved.get(key) != value:
            raise GoogLeNetError(
                f"cannot change {key!r} when resuming {run_dir}: it was trained with "
                f"{key}={saved.get(key)!r} ({path}); leave it out to keep it"
            )
    return options


def check_new_run(out: str | Path) -> None:
    """``out`` holds no MultiBox run yet (else: continue it with ``--resume``, or choose another)."""
    layout = RunLayout(out)
    if layout.last_checkpoint.is_file() or (layout.root / MULTIBOX_FILE).is_file():
        raise GoogLeNetError(
            f"--out {layout.root} already holds a MultiBox run: pass --resume to continue it or another --out"
        )


class MultiBoxLossParts(TrainMetric):
    """The training metric: ``F_conf`` and ``F_match`` of each step, the record's ``train_conf`` and
    ``train_match`` (the epoch's means over its images)."""

    keys = ("conf", "match")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def step(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            loss = label_loss(logits, labels.to(logits.device), alpha=self.alpha)
        n = labels.shape[0]
        return {"conf": float(loss.conf) * n, "match": float(loss.match) * n}

    def epoch(self, sums: Mapping[str, float], images: float) -> dict[str, float]:
        return {f"train_{k}": sums.get(k, 0.0) / images if images else math.nan for k in ("conf", "match")}


def _training_loss(outputs: Any, labels: torch.Tensor, *, alpha: float) -> torch.Tensor:
    logits, _ = main_output(outputs)  # the network has no auxiliary heads
    return label_loss(logits, labels, alpha=alpha).total


@torch.no_grad()
def _validate(
    model: Any,
    loader: Iterable[Any],
    *,
    data: TaskData,
    env: DistEnv,
    precision: str,
    channels_last: bool,
    options: MultiBoxOptions,
) -> Scores:
    """This rank's share of the val split: its loss (and parts) and how many of its boxes the
    ``top`` proposals cover (IoU >= 0.5, as ``googlenet proposals`` would give them); sums over ranks."""
    samples: MultiBoxSamples = data.val
    model.eval()
    device = next(model.parameters()).device
    multibox = MultiBox(model, samples.priors, samples.data.image_size, options.alpha, options.nms_iou)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    sums = dict.fromkeys(("loss", "conf", "match", "images", "covered", "boxes"), 0.0)
    for batch in loader:
        if batch.labels.numel() == 0:
            continue
        images = batch.images.to(device, non_blocking=True, memory_format=memory_format)
        labels = batch.labels.to(device, non_blocking=True)
        with autocast(device, precision):
            outputs = model(images)
        n = labels.shape[0]
        loss = label_loss(outputs, labels, alpha=options.alpha)
        for key, value in zip(("loss", "conf", "match"), loss, strict=True):
            sums[key] += float(value) * n
        sums["images"] += n
        indices = labels[:, 0, LABEL_INDEX].round().long().tolist()
        for (boxes01, scores), index in zip(multibox.decode(outputs), indices, strict=True):
            target = samples.dataset.target(index)
            found = multibox.select(boxes01, scores, target.width, target.height, options.top)
            sums["boxes"] += len(target.boxes)
            sums["covered"] += covered_boxes(target.boxes, found, COVERAGE_IOU)
    sums = all_reduce_sum(env, sums)
    n = sums["images"]
    if n == 0:
        raise GoogLeNetError("the validation split has no image")
    values = {k: sums[k] / n for k in ("loss", "conf", "match")}
    values[f"coverage_at_{options.top}"] = sums["covered"] / sums["boxes"] if sums["boxes"] else math.nan
    return Scores(values, int(n))


def _finalise(
    config: TrainConfig, data: TaskData, averaged: GoogLeNet, run_dir: Path, *, options: MultiBoxOptions
) -> None:
    """The run directory becomes a MultiBox model: ``multibox.json`` for its averaged weights."""
    multibox = MultiBox(averaged, data.train.priors, config.image_size, options.alpha, options.nms_iou)
    trained = {**config.training_dict(), **options.to_dict()}
    save_multibox(multibox, run_dir, write_weights=False, trained=trained, epochs_done=config.epochs)


def multibox_task(options: MultiBoxOptions | None = None) -> Task:
    """MultiBox as a :class:`~googlenet.training.task.Task` of :func:`googlenet.training.train.fit`.

    * data: ``config.data``'s ``train_split`` and ``val_split`` (a detection dataset or
      ``builtin``), each image warped to ``config.image_size`` with its targets against the priors
      (:class:`MultiBoxSamples`, flipped in training unless ``flip`` is off). The priors are fitted
      by k-means on the training boxes with ``config.seed`` (:func:`fit_priors`): every rank and a
      resumed run fit the same ones;
    * model: :func:`create_multibox_network` of ``config.model`` (confidences starting at
      :func:`positive_share`), then ``config.init_from`` / ``freeze`` as for the classifier (the
      backbone of a classifier of the same variant; the new ``5 K`` classifier stays);
    * loss: ``F_conf + alpha F_match`` (:func:`label_loss`); the training metric its two parts;
    * validation: the val loss and ``coverage_at_<top>``; the best epoch has the lowest averaged
      val loss;
    * finalise: ``multibox.json`` beside the run's ``model.safetensors`` (the Polyak-averaged
      network), so the run directory is what :func:`load_multibox` reads.
    """
    options = options or MultiBoxOptions()
    options.validate()
    # What build_data found that build_model needs (fit calls them in this order, in each process).
    found: dict[str, float] = {}

    def build_data(config: TrainConfig) -> TaskData:
        from ..models.registry import model_meta
        from .datasets import open_detection_dataset

        train_set = open_detection_dataset(config.data, options.train_split, strict=config.strict_data)
        val_set = open_detection_dataset(config.data, options.val_split, strict=config.strict_data)
        targets = train_set.targets()
        priors = fit_priors(training_boxes(targets), options.num_priors, seed=config.seed)
        meta = model_meta(config.model, **{k: v for k, v in config.model_options.items() if k != "aux"})
        data = resolve_data_config(meta, image_size=config.image_size)
        found["confidence_start"] = positive_share(targets, options.num_priors)
        return TaskData(
            train=MultiBoxSamples(train_set, priors, data, flip=options.flip),
            val=MultiBoxSamples(val_set, priors, data, flip=False),
            classes=[],  # class-agnostic
            source=f"{train_set.root} ({options.train_split})",
        )

    def build_model(config: TrainConfig, classes: Sequence[str]) -> GoogLeNet:
        if "confidence_start" not in found:
            raise RuntimeError("multibox_task: build_model needs build_data first (fit calls both)")
        net = create_multibox_network(
            options.num_priors,
            model=config.model,
            confidence_start=found["confidence_start"],
            **model_options(config),
        )
        net.meta.input_size = (3, config.image_size, config.image_size)
        initialise_from(net, config)
        return net

    return Task(
        build_data=build_data,
        build_model=build_model,
        build_loss=lambda config: partial(_training_loss, alpha=options.alpha),
        collate=partial(collate_batch, label_dtype=torch.float32),
        train_metric=MultiBoxLossParts(options.alpha),
        validate=partial(_validate, options=options),
        best_metric="loss",
        finalise=partial(_finalise, options=options),
        settings=options.to_dict(),
    )
