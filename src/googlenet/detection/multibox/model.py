"""A trained MultiBox model: network, priors and settings, and the proposals it makes for an image.

Proposals as GoogLeNet's detector takes them from MultiBox (paper section 8; Erhan et al. 2014,
arXiv:1312.2249): the image warped to the network's input (:func:`.network.preprocess`), the ``K``
boxes decoded from their priors and clipped to the image, greedy non-maximum suppression
(``torchvision.ops.nms``) and the ``top`` best. :class:`MultiBox` is what
:func:`.store.load_multibox` returns and what :func:`googlenet.detection.proposals.propose` asks for
boxes (``propose(image, top)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...data.config import DataConfig, check_image_size, resolve_data_config
from ...errors import GoogLeNetError
from ...models.model import GoogLeNet
from ..boxes import as_boxes, denormalise_boxes, to_exclusive
from .loss import DEFAULT_ALPHA
from .network import DEFAULT_IMAGE_SIZE, MultiBoxHead, decode_boxes, grid_size, preprocess, split_outputs

__all__ = ["DEFAULT_NMS_IOU", "MultiBox"]

# Greedy NMS threshold on the proposals: this project's choice (boxes overlapping more than IoU 0.7
# are near duplicates for R-CNN's warp; R-CNN suppresses at 0.3 per class after scoring).
DEFAULT_NMS_IOU = 0.7


@dataclass
class MultiBox:
    """A trained MultiBox model: the network, its priors (K, 4) and the settings it runs with.

    ``head`` says which head the network has (:class:`.network.MultiBoxHead`; ``pool``, a plain
    GoogLeNet, unless given).
    """

    network: GoogLeNet
    priors: np.ndarray
    image_size: int = DEFAULT_IMAGE_SIZE
    alpha: float = DEFAULT_ALPHA
    nms_iou: float = DEFAULT_NMS_IOU
    head: MultiBoxHead = field(default_factory=lambda: MultiBoxHead(kind="pool"))

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
        if self.head.kind == "grid":
            cells = grid_size(self.network.config, self.head.tap, self.image_size) ** 2
            if cells * self.head.per_cell != len(self.priors):
                raise GoogLeNetError(
                    f"the grid head has {cells} cells x {self.head.per_cell} priors at {self.image_size} px, "
                    f"not the {len(self.priors)} priors given"
                )

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


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise GoogLeNetError(f"MultiBox expects an (H, W, 3) uint8 RGB image. Got {what}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise GoogLeNetError(f"MultiBox got an empty image of shape {image.shape}")
    return image
