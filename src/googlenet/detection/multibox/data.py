"""MultiBox's training samples: a detection dataset's images, warped, with their targets against the priors.

Each image's label is its ground truths matched to the priors (Erhan et al. 2014; the layout of
:mod:`.loss`), so the loss needs no matching of its own and every rank and a resumed run see the
same targets for the same sample. :func:`positive_share` is the statistic the confidences start at
(:func:`.network.create_multibox_network`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import PIL.Image
import torch

from ...data.config import DataConfig
from ..boxes import as_boxes, normalise_boxes
from .loss import LABEL_COLUMNS, LABEL_INDEX, LABEL_MATCHED, LABEL_RESIDUAL
from .network import preprocess
from .priors import encode_targets

__all__ = ["MultiBoxSamples", "positive_share"]


class MultiBoxSamples(torch.utils.data.Dataset):
    """Training samples of a detection dataset: ``(image 3 x S x S, labels K x 6)``.

    ``dataset[i]`` gives ``(PIL image, DetectionTarget)`` (:class:`..datasets.DetectionDataset`). The
    labels are the image's targets against the priors (:data:`.loss.LABEL_RESIDUAL`,
    :data:`.loss.LABEL_MATCHED`, :data:`.loss.LABEL_INDEX`; :func:`.priors.encode_targets`). With
    ``flip`` the image and its boxes are mirrored with probability 1/2, drawn from torch's RNG (so
    the engine's :class:`~googlenet.training.engine.SeededSamples` makes it a function of the
    sample's seed); the matching to the priors follows the flip.

    With ``epoch_images`` an epoch has that many samples, each an image drawn uniformly (with
    replacement) from the whole dataset by the same seeded RNG: a split far larger than a run
    (the built-in generator draws as many images as asked) is then validated every
    ``epoch_images``, and the draw stays a function of ``(seed, epoch, position)``.
    """

    def __init__(
        self,
        dataset: Any,
        priors: np.ndarray,
        data: DataConfig,
        *,
        flip: bool = True,
        epoch_images: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.priors = as_boxes(priors)
        self.data = data
        self.flip = flip
        self.epoch_images = epoch_images

    def __len__(self) -> int:
        return len(self.dataset) if self.epoch_images is None else self.epoch_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.epoch_images is not None:
            index = int(torch.randint(len(self.dataset), ()))
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
