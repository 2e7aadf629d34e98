"""Box arithmetic in the annotation convention of PASCAL VOC and ILSVRC DET.

Boxes are ``[xmin, ymin, xmax, ymax]`` in inclusive 1-based pixel indices, so a box's width is
``xmax - xmin + 1`` and its height ``ymax - ymin + 1``, as both devkits compute them
(``VOCevaldet.m``, ``eval_detection.m``). The +1 IoU is written here because no library offers it
(mmdetection's ``bbox_overlaps(use_legacy_coordinate=True)`` is not a dependency).

Every conversion to another convention is here, and only here:

- :func:`to_exclusive` / :func:`from_exclusive`: torchvision.ops' corners (width ``xmax - xmin``),
  same origin; right for IoU and NMS, which only compare boxes;
- :func:`to_continuous` / :func:`from_continuous`: continuous 0-based image coordinates (pixels
  ``xmin..xmax`` cover ``[xmin - 1, xmax]``), what a network reading pixels needs (torchvision's
  detection models);
- :func:`to_coco` / :func:`from_coco`: COCO's ``[x, y, w, h]``: ``x = xmin - 1``,
  ``w = xmax - xmin + 1``, as detectron2's PASCAL VOC loader converts (and OpenCV's rectangles,
  whose ``w`` and ``h`` count pixels);
- :func:`normalise_boxes` / :func:`denormalise_boxes`: ``[0, 1]`` corners of the image, the
  continuous boxes divided by its size (MultiBox's coordinates, Erhan et al. 2014).
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: object) -> np.ndarray:
    """``boxes`` as a float64 array of shape (N, 4) (an empty input gives shape (0, 4))."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4). Got {arr.shape}")
    return arr


def box_sides(boxes: object) -> tuple[np.ndarray, np.ndarray]:
    """Widths and heights with +1: ``xmax - xmin + 1``, ``ymax - ymin + 1``."""
    b = as_boxes(boxes)
    return b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0


def box_area(boxes: object) -> np.ndarray:
    """Areas with +1 widths: ``(xmax - xmin + 1) * (ymax - ymin + 1)``."""
    w, h = box_sides(boxes)
    return w * h


def box_iou(a: object, b: object) -> np.ndarray:
    """IoU matrix (len(a), len(b)) with +1 widths; boxes overlap only when both sides of the
    intersection are > 0, as ``eval_detection.m`` and ``VOCevaldet.m`` test."""
    a, b = as_boxes(a), as_boxes(b)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def to_exclusive(boxes: object) -> np.ndarray:
    """Inclusive ``[x1, y1, x2, y2]`` -> torchvision's exclusive corners (``x2 + 1``, ``y2 + 1``)."""
    b = as_boxes(boxes).copy()
    b[:, 2:] += 1.0
    return b


def from_exclusive(boxes: object) -> np.ndarray:
    """torchvision's exclusive corners -> inclusive ``[x1, y1, x2, y2]``."""
    b = as_boxes(boxes).copy()
    b[:, 2:] -= 1.0
    return b


def to_continuous(boxes: object) -> np.ndarray:
    """Inclusive 1-based pixels -> continuous 0-based ``[x0, y0, x1, y1]``: pixels ``xmin..xmax``
    cover ``[xmin - 1, xmax]``. (:func:`to_exclusive` keeps the 1-based origin, which is right for
    IoU alone; a network reading pixels needs the origin.)"""
    b = as_boxes(boxes).copy()
    b[:, :2] -= 1.0
    return b


def from_continuous(boxes: object) -> np.ndarray:
    """The inverse of :func:`to_continuous`: continuous 0-based boxes -> inclusive 1-based pixels."""
    b = as_boxes(boxes).copy()
    b[:, :2] += 1.0
    return b


def to_coco(boxes: object) -> np.ndarray:
    """Inclusive ``[xmin, ymin, xmax, ymax]`` -> COCO's ``[x, y, w, h]`` with ``x = xmin - 1``,
    ``y = ymin - 1``, ``w = xmax - xmin + 1``, ``h = ymax - ymin + 1`` (detectron2's VOC loader)."""
    b = to_continuous(boxes)
    b[:, 2:] -= b[:, :2]
    return b


def from_coco(boxes: object) -> np.ndarray:
    """COCO's ``[x, y, w, h]`` -> inclusive ``[x + 1, y + 1, x + w, y + h]`` (:func:`to_coco`'s inverse)."""
    b = as_boxes(boxes).copy()
    b[:, 2:] += b[:, :2]
    return from_continuous(b)


def normalise_boxes(boxes: object, width: int, height: int) -> np.ndarray:
    """Inclusive 1-based pixel boxes of a ``width`` x ``height`` image -> ``[0, 1]`` corners (the
    continuous boxes of :func:`to_continuous` divided by the image's size)."""
    return to_continuous(boxes) / np.array([width, height, width, height], dtype=np.float64)


def denormalise_boxes(boxes01: object, width: int, height: int) -> np.ndarray:
    """``[0, 1]`` corners -> inclusive 1-based whole-pixel boxes inside the image.

    Corners are clipped to the image, put in order and rounded to pixel edges; each box keeps at
    least one pixel.
    """
    b = np.clip(as_boxes(boxes01), 0.0, 1.0)
    size = np.array([width, height], dtype=np.float64)
    edges = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    pixels = from_continuous(np.round(edges * np.tile(size, 2)))
    pixels[:, :2] = np.clip(pixels[:, :2], 1.0, size)
    pixels[:, 2:] = np.clip(np.maximum(pixels[:, 2:], pixels[:, :2]), 1.0, size)
    return pixels
