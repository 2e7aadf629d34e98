"""Regions for the region classifier (paper section 8, R-CNN style): warping, labelling, sampling.

* **Warping** (R-CNN's ``rcnn_im_crop``): each box is dilated so that, after the anisotropic warp to
  the network's input size ``S``, a context border of ``p = 16 * S / 227`` pixels surrounds the
  original box (R-CNN: 16 px of 227); what falls outside the image is the mean pixel. The warp is
  :func:`torchvision.ops.roi_align` on the normalised image: it samples every box of an image in one
  batched call, bilinearly (``sampling_ratio`` points per output pixel, which also anti-aliases a
  large box), and its zeros outside the image are the mean after normalisation, which is R-CNN's
  mean fill.
* **Labelling** (R-CNN fine-tuning): a region with IoU >= 0.5 with a ground-truth box is a positive
  of that box's class; every other region is background. Class ``0`` is background, object classes
  are ``1..N`` (the network has ``N + 1`` outputs).
* **Sampling**: batches of 1/4 positives (R-CNN: 32 of 128) and 3/4 background; an epoch is one pass
  over the positives, with background drawn to fill each batch, so an epoch's cost grows with the
  objects, not with the proposals. The draw is a pure function of (seed, epoch, position), as the
  classification sampler (:class:`googlenet.training.engine.EpochBatchSampler`), which this extends:
  resume and torchrun need nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import roi_align

from ..errors import GoogLeNetError
from ..training.engine import EpochBatchSampler
from .boxes import as_boxes, box_iou, to_continuous

RCNN_CROP_SIZE = 227  # R-CNN's input size, the reference for its context padding
RCNN_CONTEXT_PADDING = 16  # pixels of context around the box in a 227 x 227 warp
POSITIVE_IOU = 0.5  # R-CNN fine-tuning: IoU >= 0.5 with a ground truth is a positive
POSITIVE_FRACTION = 0.25  # R-CNN: 32 positives in a mini-batch of 128
BACKGROUND = 0  # the label of background regions; object classes are 1..N
SAMPLING_RATIO = 2  # roi_align sample points per output pixel and axis


def context_padding(size: int) -> float:
    """R-CNN's 16 px of context (of 227), scaled to a ``size`` x ``size`` warp."""
    return RCNN_CONTEXT_PADDING * size / RCNN_CROP_SIZE


def dilated_boxes(boxes: object, size: int, padding: float | None = None) -> np.ndarray:
    """Inclusive 1-based boxes -> continuous 0-based ``[x0, y0, x1, y1]`` of the dilated windows whose
    warp to ``size`` leaves ``padding`` pixels of context on each side (R-CNN's ``rcnn_im_crop``).

    The box's pixels are its continuous interval (:func:`.boxes.to_continuous`: ``[x1, x2]`` is
    ``[x1 - 1, x2)``, ``x2 - x1 + 1`` wide), dilated about its centre.
    """
    p = context_padding(size) if padding is None else padding
    scale = size / (size - 2 * p)
    x0, y0, x1, y1 = to_continuous(boxes).T
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def warp_regions(
    image: torch.Tensor, boxes: object, size: int, *, padding: float | None = None
) -> torch.Tensor:
    """Every box of one image warped to ``size`` x ``size`` with R-CNN's context padding.

    ``image`` is the normalised image ``3 x H x W`` (mean subtracted, so that roi_align's zeros
    outside the image are the mean pixel); ``boxes`` inclusive 1-based ``[xmin, ymin, xmax, ymax]``.
    Returns ``len(boxes) x 3 x size x size`` in the dtype of ``image``.
    """
    if image.ndim != 3:
        raise ValueError(f"image must be 3 x H x W. Got shape {tuple(image.shape)}")
    windows = torch.as_tensor(dilated_boxes(boxes, size, padding), dtype=image.dtype)
    if len(windows) == 0:
        return image.new_zeros((0, image.shape[0], size, size))
    rois = torch.cat([windows.new_zeros((len(windows), 1)), windows], dim=1)
    # aligned=True: pixel k's centre is at k + 0.5, which is the continuous convention above.
    return roi_align(
        image[None], rois, (size, size), spatial_scale=1.0, sampling_ratio=SAMPLING_RATIO, aligned=True
    )


def label_regions(
    boxes: object, gt_boxes: object, gt_labels: object, *, positive_iou: float = POSITIVE_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 = background, ``1 + gt label`` for a positive) and each region's best IoU.

    A region is a positive of the ground truth it overlaps most when that IoU is >= ``positive_iou``.
    """
    b, g = as_boxes(boxes), as_boxes(gt_boxes)
    labels = np.full(len(b), BACKGROUND, dtype=np.int64)
    if len(b) == 0 or len(g) == 0:
        return labels, np.zeros(len(b))
    iou = box_iou(b, g)
    best, which = iou.max(axis=1), iou.argmax(axis=1)
    positive = best >= positive_iou
    labels[positive] = np.asarray(gt_labels, dtype=np.int64)[which[positive]] + 1
    return labels, best


@dataclass(frozen=True)
class RegionSet:
    """The regions of a split: ``image_index[i]``, ``boxes[i]`` (inclusive) and ``labels[i]`` (0 =
    background) for every region, positives first (``positives`` of them)."""

    image_index: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    positives: int

    @property
    def backgrounds(self) -> int:
        return len(self.labels) - self.positives

    def __len__(self) -> int:
        return len(self.labels)


def build_region_set(
    targets: Sequence[object],
    proposals: Mapping[str, object],
    *,
    include_ground_truth: bool = True,
    positive_iou: float = POSITIVE_IOU,
) -> RegionSet:
    """Label every proposal of every image against its ground truth (R-CNN fine-tuning).

    ``targets`` are the dataset's :class:`~googlenet.detection.datasets.DetectionTarget` s (in
    dataset order); ``proposals`` maps image ids to boxes. With ``include_ground_truth`` the ground
    truth boxes themselves are positives too, as R-CNN trains. Difficult objects are ground truth
    like any other here (a region on one is not background).
    """
    pos: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    neg: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for index, target in enumerate(targets):
        props = as_boxes(proposals.get(target.image_id, np.zeros((0, 4))))
        gt = as_boxes(target.boxes)
        boxes = np.concatenate([gt, props]) if include_ground_truth else props
        labels, _ = label_regions(boxes, gt, target.labels, positive_iou=positive_iou)
        for keep, out in ((labels != BACKGROUND, pos), (labels == BACKGROUND, neg)):
            out.append((np.full(int(keep.sum()), index, dtype=np.int64), boxes[keep], labels[keep]))
    parts = pos + neg
    if not parts:
        return RegionSet(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), 0)
    return RegionSet(
        image_index=np.concatenate([p[0] for p in parts]),
        boxes=np.concatenate([p[1] for p in parts]),
        labels=np.concatenate([p[2] for p in parts]),
        positives=int(sum(len(p[2]) for p in pos)),
    )


class RegionBatchSampler(EpochBatchSampler):
    """Batches of region indices with ``positive_fraction`` positives in every rank's batch.

    One epoch passes over the positives once (in an order seeded by ``(seed, epoch)``); each batch of
    ``batch_size`` takes ``round(batch_size * positive_fraction)`` of them and fills the rest with
    background regions drawn uniformly, with replacement, from the same seeded stream. Regions are
    indexed as in :class:`RegionSet` (positives first). Everything else (ranks, resume at a batch,
    per-position augmentation seeds) is :class:`EpochBatchSampler`'s.
    """

    def __init__(
        self,
        positives: int,
        backgrounds: int,
        batch_size: int,
        *,
        positive_fraction: float = POSITIVE_FRACTION,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 < positive_fraction <= 1:
            raise ValueError(f"positive_fraction must be in (0, 1]. Got {positive_fraction}")
        self.per_batch = max(1, round(batch_size * positive_fraction))
        if positives < self.per_batch * world_size:
            raise ValueError(
                f"{positives} positive regions are too few for one batch of {self.per_batch} positives "
                f"per rank x {world_size} rank(s): lower the batch size or add data"
            )
        if backgrounds == 0 and self.per_batch < batch_size:
            raise ValueError("there are no background regions to fill the batches")
        self.positives, self.backgrounds = positives, backgrounds
        batches = positives // (self.per_batch * world_size)
        super().__init__(
            batches * batch_size * world_size, batch_size, seed=seed, rank=rank, world_size=world_size
        )

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        positives = torch.randperm(self.positives, generator=g)
        fill = self.batch_size - self.per_batch
        chunks = []
        for b in range(self.num_samples // self.batch_size):  # one chunk per rank-batch
            pos = positives[b * self.per_batch : (b + 1) * self.per_batch]
            neg = self.positives + torch.randint(self.backgrounds or 1, (fill,), generator=g)
            chunk = torch.cat([pos, neg])
            chunks.append(chunk[torch.randperm(len(chunk), generator=g)])
        return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long)


class _RegionSamples:
    """``samples[i][0]`` names the image file of region ``i`` (what the engine reports when unreadable)."""

    def __init__(self, dataset: object, regions: RegionSet) -> None:
        self.dataset, self.regions = dataset, regions

    def __getitem__(self, i: int) -> tuple[str, int]:
        return str(self.dataset.image_path(int(self.regions.image_index[i]))), int(self.regions.labels[i])

    def __len__(self) -> int:
        return len(self.regions)


class RegionDataset(torch.utils.data.Dataset):
    """Warped regions as a classification dataset: item ``i`` is ``(3 x S x S tensor, label)``.

    ``dataset`` is a :class:`~googlenet.detection.datasets.DetectionDataset`, ``regions`` its
    :class:`RegionSet`, ``mean`` / ``std`` the network's normalisation on RGB in [0, 1]. With ``flip``
    a region is mirrored with probability 1/2 (torch's RNG: the engine seeds it per sample). An
    unreadable image gives None, which the training engine counts and skips.
    """

    def __init__(
        self,
        dataset: object,
        regions: RegionSet,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        flip: bool = False,
    ) -> None:
        self.dataset, self.regions, self.size, self.flip = dataset, regions, size, flip
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.samples = _RegionSamples(dataset, regions)

    def __len__(self) -> int:
        return len(self.regions)

    def normalised_image(self, image_index: int) -> torch.Tensor | None:
        """The image as a normalised float tensor ``3 x H x W`` (None when unreadable)."""
        try:
            image, _ = self.dataset[image_index]
        except (OSError, GoogLeNetError):  # the detection datasets name an undecodable file this way
            return None
        return normalise(image, self.mean, self.std)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        image = self.normalised_image(int(self.regions.image_index[i]))
        if image is None:
            return None
        region = warp_regions(image, self.regions.boxes[i : i + 1], self.size)[0]
        if self.flip and torch.rand(()) < 0.5:
            region = region.flip(-1)
        return region, int(self.regions.labels[i])


def normalise(image: object, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A PIL RGB image (or H x W x 3 uint8 array) -> ``(x / 255 - mean) / std``, ``3 x H x W`` float32."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image. Got an array of shape {array.shape}")
    x = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
    return (x - mean) / std
