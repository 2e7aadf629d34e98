"""googlenet.detection.scoring: softmax averaging over members, per-class NMS, the per-image cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from googlenet.detection.scoring import ScoringSettings, average_probabilities, detections_from_scores


def test_ensemble_scores_are_the_mean_of_member_softmaxes() -> None:
    a = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    b = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    got = average_probabilities([a, b])
    want = (a.softmax(1) + b.softmax(1)) / 2
    assert torch.allclose(got, want)
    assert torch.allclose(got.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        average_probabilities([a, b[:, :2]])


def _probs(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_nms_is_per_class_with_rcnn_threshold() -> None:
    boxes = [
        [1, 1, 100, 100],
        [11, 1, 110, 100],  # IoU 0.82 with the first (+1 widths): suppressed within its class
        [61, 1, 160, 100],  # IoU 40*100/(2*10000-4000)=0.25 with the first: kept (<= 0.3)
    ]
    # background, class A, class B
    probs = _probs([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0]])
    got = detections_from_scores(probs, boxes)
    assert got.labels.tolist() == [0, 0]
    assert got.scores.tolist() == pytest.approx([0.9, 0.7])
    assert got.boxes.tolist() == [boxes[0], boxes[2]]
    # The same overlapping box in another class is not suppressed by class A's winner.
    probs = _probs([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    got = detections_from_scores(probs, boxes)
    assert sorted(got.labels.tolist()) == [0, 1]


def test_background_column_never_becomes_a_detection_and_low_scores_drop() -> None:
    probs = _probs([[0.9995, 0.0005], [0.5, 0.5]])
    got = detections_from_scores(probs, [[1, 1, 10, 10], [50, 50, 60, 60]])
    assert got.labels.tolist() == [0] and got.scores.tolist() == [0.5]


def test_at_most_max_detections_best_first() -> None:
    rng = np.random.default_rng(0)
    xy = rng.integers(1, 1000, size=(300, 2))
    boxes = np.concatenate([xy, xy + 5], axis=1).astype(float)  # small, scattered: little overlap
    probs = torch.tensor(rng.dirichlet(np.ones(4), size=300), dtype=torch.float32)
    got = detections_from_scores(probs, boxes, ScoringSettings(max_detections=100))
    assert len(got) == 100
    assert np.all(np.diff(got.scores) <= 0)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="nms_iou"):
        ScoringSettings(nms_iou=0)
    with pytest.raises(ValueError, match="max_detections"):
        ScoringSettings(max_detections=0)
