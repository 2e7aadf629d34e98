"""MultiBox's priors, the matching of ground truths to them, and the targets it gives (Erhan et al. 2014).

Erhan, Szegedy, Toshev, Anguelov, "Scalable Object Detection using Deep Neural Networks" (CVPR
2014, arXiv:1312.2249), the proposals GoogLeNet's detector adds to Selective Search's (paper
section 8):

* **Coordinates**: boxes are normalised ``[0, 1]`` corners of the image. Boxes elsewhere in the
  package are inclusive 1-based pixel indices: the pixels ``xmin..xmax`` cover the continuous
  interval ``[xmin - 1, xmax]``, which is what normalising maps to ``[0, 1]``
  (:func:`..boxes.normalise_boxes`, :func:`..boxes.denormalise_boxes`).
* **Priors**: the training boxes clustered into ``K`` priors by k-means
  (:func:`scipy.cluster.vq.kmeans2`, k-means++ seeding, fixed seed); box ``i`` is predicted as a
  residual to its prior, ``l_i = prior_i + r_i``. The ``grid`` head's priors
  (:func:`fit_grid_priors`) are tied to the cells of a feature map instead: ``A`` box shapes,
  k-means of the training boxes' log widths and heights, centred on every cell.
* **Matching**: each ground truth ``g_j`` takes one prior by the bipartite assignment minimising
  ``sum_ij x_ij * alpha / 2 * ||prior_i - g_j||^2`` (:func:`scipy.optimize.linear_sum_assignment`).
  The paper's cost also has the confidence terms of the current predictions; matching to the
  priors "instead of to the current predictions" drops them, and ``alpha / 2`` does not move the
  optimum.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...errors import GoogLeNetError
from ..boxes import as_boxes, normalise_boxes
from .loss import DEFAULT_ALPHA

__all__ = [
    "DEFAULT_NUM_PRIORS",
    "encode_targets",
    "fit_grid_priors",
    "fit_priors",
    "match_cost",
    "match_priors",
    "training_boxes",
]

# K: this project's choice for the built-in set (a few objects per image); Erhan et al. predict a
# fixed K per image and GoogLeNet keeps 200 of its proposals (section 8), so K = 100 is recorded,
# not the paper's.
DEFAULT_NUM_PRIORS = 100
KMEANS_ITERATIONS = 30
SCIPY_MISSING = "MultiBox's priors and matching need scipy: pip install 'googlenet[detection]'"


def training_boxes(targets: Iterable[Any]) -> np.ndarray:
    """Every ground-truth box of ``targets`` (:class:`..datasets.DetectionTarget`), normalised (M, 4)."""
    parts = [normalise_boxes(t.boxes, t.width, t.height) for t in targets if len(t.boxes)]
    return np.concatenate(parts) if parts else np.zeros((0, 4))


def fit_priors(boxes01: object, num_priors: int, *, seed: int = 0) -> np.ndarray:
    """``num_priors`` k-means centres (K, 4) of the normalised training boxes (Erhan et al. 2014).

    scipy's ``kmeans2`` with k-means++ seeding from ``numpy.random.default_rng(seed)``: the same
    boxes and seed give the same priors. A cluster that empties keeps its centre (a training box).
    """
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    return _kmeans(as_boxes(boxes01), num_priors, seed, "priors", "boxes", "--num-priors")


def fit_grid_priors(boxes01: object, grid: int, per_cell: int, *, seed: int = 0) -> np.ndarray:
    """The ``grid`` head's priors, ``(grid * grid * per_cell, 4)``: ``per_cell`` box shapes centred
    on each cell of a ``grid`` x ``grid`` map, cell-major (row, column), then shape, smallest first.

    The shapes are the k-means centres of the normalised training boxes' ``(log w, log h)`` (as
    :func:`fit_priors`): in log space a cluster stands for a range of scales, so the shapes spread
    from the smallest boxes to the largest instead of crowding where the large boxes' sides vary
    most. Priors may reach past the image; decoded boxes are clipped.
    """
    data = as_boxes(boxes01)
    if grid < 1 or per_cell < 1:
        raise GoogLeNetError(f"a grid of priors needs grid >= 1 and per_cell >= 1. Got {grid}, {per_cell}")
    sides = np.log(np.clip(data[:, 2:] - data[:, :2], 1e-4, None))
    shapes = np.exp(_kmeans(sides, per_cell, seed, "prior shapes per cell", "box sizes", "--priors-per-cell"))
    shapes = shapes[np.argsort(shapes.prod(axis=1), kind="stable")]  # (A, 2): w, h
    centre = (np.arange(grid, dtype=np.float64) + 0.5) / grid
    cy, cx = np.meshgrid(centre, centre, indexing="ij")  # row-major cells
    centres = np.stack([cx.ravel(), cy.ravel()], axis=1)[:, None, :]  # (cells, 1, 2)
    half = shapes[None, :, :] / 2.0
    return np.concatenate([centres - half, centres + half], axis=2).reshape(-1, 4)


def _kmeans(data: np.ndarray, k: int, seed: int, what: str, points: str, flag: str) -> np.ndarray:
    """``k`` k-means centres of the rows of ``data`` (scipy's ``kmeans2``, k-means++ seeding from
    ``numpy.random.default_rng(seed)``, :data:`KMEANS_ITERATIONS`); errors name ``flag``."""
    distinct = len(np.unique(data, axis=0))
    if distinct < k:
        # k-means++ draws centres with probability ~ squared distance: it cannot pick more
        # distinct centres than there are distinct points.
        raise GoogLeNetError(
            f"{k} {what} need at least {k} distinct training {points}; the data has "
            f"{distinct}: pass a smaller {flag} or more training images"
        )
    try:
        from scipy.cluster.vq import kmeans2
    except ImportError:
        raise GoogLeNetError(SCIPY_MISSING) from None

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        centres, _ = kmeans2(data, k, iter=KMEANS_ITERATIONS, minit="++", seed=np.random.default_rng(seed))
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
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise GoogLeNetError(SCIPY_MISSING) from None

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
