"""googlenet.detection.regions: R-CNN's warp with context padding, labelling, the 1/4-positive sampler."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from googlenet.detection.regions import (
    BACKGROUND,
    RegionBatchSampler,
    build_region_set,
    context_padding,
    dilated_boxes,
    label_regions,
    warp_regions,
)


def test_context_padding_is_rcnn_16_of_227() -> None:
    assert context_padding(227) == 16
    assert context_padding(224) == pytest.approx(16 * 224 / 227)


def test_dilated_window_leaves_padding_pixels_of_context() -> None:
    # A 1-based inclusive box [11, 21, 60, 40] is the continuous [10, 20) x [60, 40): 50 x 20.
    size, p = 64, 8.0
    ((x0, y0, x1, y1),) = dilated_boxes([[11, 21, 60, 40]], size, padding=p)
    # After the warp to 64 px, the box's own 50 px span size - 2p = 48 output pixels.
    assert (x1 - x0) * (size - 2 * p) / size == pytest.approx(50)
    assert (y1 - y0) * (size - 2 * p) / size == pytest.approx(20)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((35, 30))


def test_region_pixels_land_where_the_padding_rule_says() -> None:
    # Image 0 everywhere except the box (value 1): after the warp the box fills [p, S - p) exactly.
    h, w, size, p = 80, 120, 64, 8.0
    image = torch.zeros(3, h, w)
    box = [31, 21, 90, 60]  # inclusive, 1-based: columns 30..89, rows 20..59 (0-based)
    image[:, 20:60, 30:90] = 1.0
    out = warp_regions(image, [box], size, padding=p)[0, 0]
    assert out.shape == (size, size)
    inner = out[int(p) + 1 : size - int(p) - 1, int(p) + 1 : size - int(p) - 1]
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-5)
    border = torch.cat([out[: int(p) - 1].flatten(), out[size - int(p) + 1 :].flatten()])
    assert torch.allclose(border, torch.zeros_like(border), atol=1e-5)
    # The box edge is at p along each axis: the column profile crosses 0.5 there.
    profile = out[size // 2]
    crossing = int(torch.nonzero(profile > 0.5)[0])
    assert abs(crossing - p) <= 1


def test_outside_the_image_is_the_mean() -> None:
    # Normalised image of 5 everywhere: a box at the top-left corner dilates past the border, where the
    # warp must be 0 (the mean after normalisation), R-CNN's mean fill.
    image = torch.full((3, 50, 50), 5.0)
    out = warp_regions(image, [[1, 1, 20, 20]], 32)[0, 0]
    assert out[0, 0] == 0.0
    assert out[-1, -1] == pytest.approx(5.0)
    assert out[16, 16] == pytest.approx(5.0)


def test_warp_is_batched_per_image_and_keeps_order() -> None:
    image = torch.arange(3 * 40 * 60, dtype=torch.float32).view(3, 40, 60)
    boxes = [[1, 1, 30, 20], [20, 10, 59, 39], [5, 5, 10, 10]]
    batch = warp_regions(image, boxes, 16)
    assert batch.shape == (3, 3, 16, 16)
    for i, box in enumerate(boxes):
        assert torch.equal(batch[i], warp_regions(image, [box], 16)[0])
    assert warp_regions(image, np.zeros((0, 4)), 16).shape == (0, 3, 16, 16)


def test_labels_positive_at_iou_half_else_background() -> None:
    gt = [[1, 1, 100, 100], [201, 201, 300, 300]]
    gt_labels = [2, 0]
    boxes = [
        [1, 1, 100, 100],  # the first gt: IoU 1 -> class 2 -> label 3
        [1, 1, 100, 50],  # IoU exactly 0.5 with the first -> positive
        [1, 1, 100, 49],  # IoU 0.49 -> background
        [211, 211, 300, 300],  # IoU 0.81 with the second -> label 1
        [400, 400, 450, 450],  # nothing -> background
    ]
    labels, best = label_regions(boxes, gt, gt_labels)
    assert labels.tolist() == [3, 3, BACKGROUND, 1, BACKGROUND]
    assert best[1] == pytest.approx(0.5)


def test_region_set_puts_positives_first_and_includes_ground_truth() -> None:
    targets = [
        SimpleNamespace(image_id="a", boxes=np.array([[1, 1, 50, 50]], float), labels=np.array([0])),
        SimpleNamespace(image_id="b", boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64)),
    ]
    proposals = {"a": [[1, 1, 50, 50], [60, 60, 90, 90], [2, 2, 50, 50]], "b": [[1, 1, 10, 10]]}
    regions = build_region_set(targets, proposals)
    assert regions.positives == 3  # the gt itself + two proposals on it
    assert regions.labels[:3].tolist() == [1, 1, 1]
    assert regions.labels[3:].tolist() == [BACKGROUND, BACKGROUND]
    assert regions.image_index.tolist() == [0, 0, 0, 0, 1]
    without = build_region_set(targets, proposals, include_ground_truth=False)
    assert without.positives == 2


def test_sampler_batches_hold_a_quarter_positives_and_cover_every_positive_once() -> None:
    positives, backgrounds, batch = 40, 500, 8
    sampler = RegionBatchSampler(positives, backgrounds, batch, seed=3)
    batches = list(sampler)
    assert len(batches) == positives // 2  # 2 positives per batch of 8
    seen = []
    for b in batches:
        idx = [i for i, _ in b]
        pos = [i for i in idx if i < positives]
        assert len(idx) == batch and len(pos) == 2
        assert all(positives <= i < positives + backgrounds for i in idx if i >= positives)
        seen += pos
    assert sorted(seen) == list(range(positives))
    # A pure function of (seed, epoch): the same again, another epoch differs.
    assert [list(b) for b in RegionBatchSampler(positives, backgrounds, batch, seed=3)] == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_sampler_ranks_split_the_global_batch() -> None:
    one = RegionBatchSampler(40, 100, 8, seed=1, world_size=1)
    ranks = [RegionBatchSampler(40, 100, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        for b in r:
            assert sum(i < 40 for i, _ in b) == 1
    assert len(ranks[0]) == len(ranks[1]) == 20
    assert len(one) == 20


def test_sampler_refuses_too_few_positives() -> None:
    with pytest.raises(ValueError, match="too few"):
        RegionBatchSampler(1, 100, 8)
