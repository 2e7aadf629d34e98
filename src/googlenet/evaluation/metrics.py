"""Classification metrics: the one place that counts top-k hits and decides which k is "top-5".

Section 7 reports top-1 and top-5 error. With five classes or fewer top-5 is trivially zero, so
every reader of a score asks :func:`topk_for` for the k it reports (and why); the trainer, the evaluation
protocol and the report count hits with :func:`topk_correct`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PAPER_TOP_K = 5  # section 7: "top-5 error rate"


def topk_for(num_classes: int) -> int:
    """The "top-5" k (section 7, ILSVRC): 5 with six classes or more; with five or fewer, one less
    than the classes (at least 1), since a top-k with k >= the classes is always right and says
    nothing: 5 classes report top-4, 3 classes top-2. The one place that says why; the docs, the
    tables and the JSON (``top_k``) all take their k from here."""
    return max(1, min(PAPER_TOP_K, num_classes - 1))


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[int]:
    """Number of samples whose label is among the ``k`` highest scores, for each ``k`` in ``ks``.

    ``logits`` is N x C (logits or probabilities: only the order matters); a ``k`` above C counts
    as C. Ties are broken by :func:`torch.topk`.
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # N x kmax
    hits = top.eq(labels.unsqueeze(1))
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum().item()) for k in ks]


# --------------------------------------------------------------------------------------------
# Scores of crop-combined probabilities (section 7's Table 3, the report's confusion matrix).
#
# The one rule for unreadable images: the protocol gives an image it could not read a row of NaN
# (:func:`googlenet.evaluation.protocol.crop_probabilities`); such a row is never right, and it
# stays in the denominator, so an error rate is always over every image asked for.


def readable_rows(probs: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: the rows of ``probs`` ``[N, C]`` that hold a prediction (no NaN)."""
    return ~torch.isnan(probs).any(-1)


def topk_errors(
    probs: torch.Tensor, labels: torch.Tensor | Sequence[int], ks: Sequence[int] = (1, PAPER_TOP_K)
) -> list[float]:
    """Top-k error rates (fractions) of ``probs`` ``[N, C]`` against ``labels`` ``[N]``, one per k.

    A NaN row (an unreadable image) counts as an error and stays in the denominator. A ``k``
    above C counts as C (always right). Ties are broken by :func:`torch.topk`.
    """
    labels = torch.as_tensor(labels).long()
    n = len(labels)
    if probs.shape[0] != n:
        raise ValueError(f"{probs.shape[0]} probability rows for {n} labels")
    if n == 0:
        raise ValueError("no images to score")
    valid = readable_rows(probs)
    if not valid.any():
        return [1.0 for _ in ks]
    correct = topk_correct(probs[valid], labels[valid], ks)
    return [1.0 - c / n for c in correct]


def confusion_matrix(
    labels: Sequence[int] | torch.Tensor, preds: Sequence[int] | torch.Tensor, num_classes: int
) -> torch.Tensor:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as class ``j`` (int64).

    Only images with a prediction belong here: pass the :func:`readable_rows` (an unreadable image
    has no predicted class; its error is counted by :func:`topk_errors`).
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    preds = torch.as_tensor(preds, dtype=torch.int64).reshape(-1)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and preds differ in length. Got {labels.numel()} and {preds.numel()}")
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive. Got {num_classes}")
    for name, values in (("labels", labels), ("preds", preds)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} must lie in [0, {num_classes}). Got {int(values.min())}..{int(values.max())}"
            )
    counts = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)
