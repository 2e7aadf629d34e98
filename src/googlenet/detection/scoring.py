"""Scoring regions into detections (paper section 8, R-CNN's test procedure).

Every proposal of an image is classified by the region classifier (``N + 1`` outputs, class 0 the
background); its scores are the softmax over those outputs, averaged over the ensemble's members
(section 8: "an ensemble of 6 ConvNets ... when classifying each region"). Per class, greedy
non-maximum suppression (R-CNN: a region is rejected when it has IoU > 0.3 with a higher-scoring
region of that class; :func:`torchvision.ops.batched_nms`) keeps the local maxima; at most
``max_detections`` per image, best first. There is no bounding-box regression (the paper had none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms

from .boxes import as_boxes, to_exclusive

NMS_IOU = 0.3  # R-CNN's per-class NMS threshold
MAX_DETECTIONS = 100  # per image, as ILSVRC and COCO evaluations cap them
MIN_SCORE = 1e-3  # candidates below this softmax score are never kept (they cannot matter to AP much)


@dataclass(frozen=True)
class ScoringSettings:
    """How region scores become detections; recorded in the detector's manifest."""

    nms_iou: float = NMS_IOU
    max_detections: int = MAX_DETECTIONS
    min_score: float = MIN_SCORE

    def __post_init__(self) -> None:
        if not 0 < self.nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1]. Got {self.nms_iou!r}")
        if isinstance(self.max_detections, bool) or not isinstance(self.max_detections, int):
            raise ValueError(f"max_detections must be an integer. Got {self.max_detections!r}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1. Got {self.max_detections}")
        if not 0 <= self.min_score < 1:
            raise ValueError(f"min_score must be in [0, 1). Got {self.min_score!r}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class ScoredBoxes:
    """One image's detections: ``boxes`` (inclusive, K x 4), ``labels`` (0-based object classes, i.e.
    the network's output index - 1), ``scores`` (K,), best first."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def region_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """One member's region scores: the softmax over its ``N + 1`` outputs, in float32."""
    return logits.float().softmax(dim=1)


def mean_probabilities(member_probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ensemble's region scores from its members' softmaxes: their mean (``R x (N+1)``).

    Any subset of a detector's members is an ensemble of its own: the mean over the subset's
    probabilities is what a detector of just those members computes, bit for bit.
    """
    if not member_probabilities:
        raise ValueError("no member outputs to average")
    shapes = {tuple(m.shape) for m in member_probabilities}
    if len(shapes) != 1:
        raise ValueError(f"members disagree on the output shape: {sorted(shapes)}")
    return torch.stack(list(member_probabilities)).mean(dim=0)


def average_probabilities(member_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ensemble's region scores: the mean over members of each member's softmax (``R x (N+1)``)."""
    return mean_probabilities([region_probabilities(m) for m in member_logits])


def detections_from_scores(
    probabilities: torch.Tensor, boxes: object, settings: ScoringSettings | None = None
) -> ScoredBoxes:
    """Per-class NMS over every (region, object class) pair, then the best ``max_detections``.

    ``probabilities`` is ``R x (N + 1)`` with column 0 the background; ``boxes`` the ``R`` regions
    (inclusive 1-based). NMS runs on torchvision's exclusive corners (``x2 + 1``), which gives the
    +1-width IoU of the devkits.
    """
    settings = settings or ScoringSettings()
    b = as_boxes(boxes)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(b) or probabilities.shape[1] < 2:
        raise ValueError(
            f"probabilities must be R x (N + 1) for the {len(b)} regions. Got {tuple(probabilities.shape)}"
        )
    scores = probabilities[:, 1:].float()
    region, cls = torch.nonzero(scores >= settings.min_score, as_tuple=True)
    if len(region) == 0:
        return ScoredBoxes(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
    cand_scores = scores[region, cls]
    cand_boxes = torch.as_tensor(to_exclusive(b), dtype=torch.float32)[region]
    keep = batched_nms(cand_boxes, cand_scores, cls, settings.nms_iou)[: settings.max_detections]
    return ScoredBoxes(
        boxes=b[region[keep].numpy()],
        labels=cls[keep].numpy().astype(np.int64),
        scores=cand_scores[keep].numpy().astype(np.float64),
    )
