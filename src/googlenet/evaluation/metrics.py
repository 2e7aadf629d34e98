"""Classification metrics: the one place that counts top-k hits and decides which k is "top-5".

Section 7 reports top-1 and top-5 error. With fewer than five classes top-5 is trivially zero, so
every reader of a score asks :func:`topk_for` for the k it reports; the trainer, the evaluation
protocol and the report count hits with :func:`topk_correct`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PAPER_TOP_K = 5  # section 7: "top-5 error rate"


def topk_for(num_classes: int) -> int:
    """The "top-5" k: 5, or the number of classes when there are fewer (then top-k error is 0)."""
    return min(PAPER_TOP_K, num_classes)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[int]:
    """Number of samples whose label is among the ``k`` highest scores, for each ``k`` in ``ks``.

    ``logits`` is N x C (logits or probabilities: only the order matters); a ``k`` above C counts
    as C. Ties are broken by :func:`torch.topk`.
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # N x kmax
    hits = top.eq(labels.unsqueeze(1))
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum().item()) for k in ks]
