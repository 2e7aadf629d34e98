"""MultiBox's training objective, ``F = F_conf + alpha F_match`` (Erhan et al. 2014, arXiv:1312.2249).

``F_match = 1/2 sum_ij x_ij ||l_i - g_j||^2`` and
``F_conf = -sum_ij x_ij log c_i - sum_i (1 - sum_j x_ij) log(1 - c_i)``, summed over an image's
``K`` boxes and averaged over the images of a batch; ``x_ij`` is the matching of
:func:`.priors.match_priors`. Training reads the targets from label tensors
(:class:`.data.MultiBoxSamples`), whose column layout is defined here.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .network import decode_boxes, split_outputs

__all__ = [
    "DEFAULT_ALPHA",
    "LABEL_COLUMNS",
    "LABEL_INDEX",
    "LABEL_MATCHED",
    "LABEL_RESIDUAL",
    "MultiBoxLoss",
    "label_loss",
    "multibox_loss",
]

# alpha weighs F_match against F_conf; the paper gives it no value ("a tuned weight",
# docs/detection.md). 30 is this project's, measured on the built-in detection set: F_match of boxes
# at their priors is ~0.02 per image against F_conf's ~15, and with alpha = 0.3 the shared layers
# learned from the confidences alone (coverage 46% vs 50% at alpha 30 after 4,000 images).
DEFAULT_ALPHA = 30.0

# One image's label tensor (K x 6, :class:`.data.MultiBoxSamples`): per prior the target residual
# g_j - prior_i of the ground truth matched to it (zeros when unmatched), 1.0 where it is matched,
# and the image's index in its split (validation looks up the image's boxes and size by it).
LABEL_RESIDUAL, LABEL_MATCHED, LABEL_INDEX = slice(0, 4), 4, 5
LABEL_COLUMNS = 6


class MultiBoxLoss(NamedTuple):
    """``total = conf + alpha * match``, each the mean over the batch's images of a per-image sum."""

    total: torch.Tensor
    conf: torch.Tensor
    match: torch.Tensor


def multibox_loss(
    residuals: torch.Tensor,
    logits: torch.Tensor,
    priors: torch.Tensor,
    target_boxes: torch.Tensor,
    matched: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> MultiBoxLoss:
    """Erhan et al.'s ``F = F_conf + alpha F_match`` for a batch (targets from
    :func:`.priors.encode_targets`).

    ``residuals`` N x K x 4, ``logits`` N x K, ``priors`` K x 4, ``target_boxes`` N x K x 4,
    ``matched`` N x K bool. ``-log c`` and ``-log(1 - c)`` are computed from the logits
    (``binary_cross_entropy_with_logits``), which stays finite where ``c`` rounds to 0 or 1.
    """
    error = decode_boxes(residuals.float(), priors.float()) - target_boxes.float()
    return _loss_terms(error, logits, matched, alpha)


def label_loss(outputs: torch.Tensor, labels: torch.Tensor, *, alpha: float = DEFAULT_ALPHA) -> MultiBoxLoss:
    """:func:`multibox_loss` of the network's N x 5K ``outputs`` against :class:`.data.MultiBoxSamples`'
    N x K x 6 ``labels``: ``l_i - g_j = r_i - (g_j - prior_i)``, so the priors are in the labels."""
    residuals, logits = split_outputs(outputs, labels.shape[1])
    error = residuals.float() - labels[..., LABEL_RESIDUAL].float()
    return _loss_terms(error, logits, labels[..., LABEL_MATCHED] > 0.5, alpha)


def _loss_terms(
    error: torch.Tensor, logits: torch.Tensor, matched: torch.Tensor, alpha: float
) -> MultiBoxLoss:
    # error: l_i - g_j per coordinate (N x K x 4); only the matched priors count in F_match.
    matched_f = matched.float()
    conf = F.binary_cross_entropy_with_logits(logits.float(), matched_f, reduction="none").sum(1)
    match = 0.5 * ((error.float() ** 2).sum(2) * matched_f).sum(1)
    conf, match = conf.mean(), match.mean()
    return MultiBoxLoss(conf + alpha * match, conf, match)
