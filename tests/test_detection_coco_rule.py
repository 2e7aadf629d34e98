"""The COCO rule (pycocotools' COCOeval on the dataset's targets) on cases whose answer is known by hand,
and every rule side by side (RuleComparison)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from googlenet.detection.boxes import box_iou, from_coco, to_coco
from googlenet.detection.coco_rule import COCO_STATS
from googlenet.detection.metrics import DetectionEvaluation, evaluate_detections, match_detections
from googlenet.detection.rule_comparison import RuleComparison, compare_rules
from googlenet.errors import GoogLeNetError

from .helpers import Target, det

BOX = [1, 1, 100, 100]  # 100 x 100 px: a large object (COCO: area over 96^2)


def coco(
    dets: list, targets: list, names: tuple[str, ...] = ("obj",), **kwargs: object
) -> DetectionEvaluation:
    return evaluate_detections(dets, targets, list(names), "coco", **kwargs)


def test_coco_boxes_are_the_inclusive_pixels_and_give_the_devkits_iou() -> None:
    from pycocotools import mask

    assert to_coco([[1, 1, 100, 50]]).tolist() == [[0, 0, 100, 50]]  # x = xmin - 1, w = xmax - xmin + 1
    rng = np.random.default_rng(0)
    corners = rng.integers(1, 200, size=(40, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(float)[:, [0, 1, 2, 3]]
    a, b = boxes[:20], boxes[20:]
    np.testing.assert_allclose(mask.iou(to_coco(a).tolist(), to_coco(b).tolist(), [0] * 20), box_iou(a, b))
    np.testing.assert_array_equal(from_coco(to_coco(boxes)), boxes)


def test_a_perfect_detection_scores_1_everywhere_coco_defines_a_value() -> None:
    result = coco([det("a", 0, 0.9, BOX)], [Target("a", [BOX], [0])])
    assert list(result.summary) == list(COCO_STATS)
    defined = {k: v for k, v in result.summary.items() if v is not None}
    assert defined == pytest.approx(
        dict.fromkeys(["AP", "AP50", "AP75", "APl", "AR1", "AR10", "AR100", "ARl"], 1.0)
    )
    # No small or medium object: COCO has no value there (its -1), not a zero.
    assert result.summary["APs"] is None and result.summary["APm"] is None
    assert result.mAP == pytest.approx(1.0) and result.ap == {"obj": pytest.approx(1.0)}


@pytest.mark.parametrize(
    ("xmax", "iou", "ap"),
    [
        (60, 0.60, 0.3),  # meets IoU .50, .55 and .60 (IoU >= threshold counts) of the 10
        (58, 0.58, 0.2),  # meets .50 and .55 only
        (49, 0.49, 0.0),  # meets none
    ],
)
def test_one_box_counts_at_the_iou_thresholds_it_meets(xmax: int, iou: float, ap: float) -> None:
    box = [1, 1, xmax, 100]
    assert box_iou([box], [BOX])[0, 0] == pytest.approx(iou)
    result = coco([det("a", 0, 0.9, box)], [Target("a", [BOX], [0])])
    # A true positive at a threshold is precision 1 at every one of the 101 recall points: AP = share met.
    assert result.mAP == pytest.approx(ap)
    assert result.summary["AP"] == pytest.approx(ap)
    assert result.per_class == {"AP50": {"obj": pytest.approx(float(iou >= 0.5))}, "AP75": {"obj": 0.0}}
    assert result.summary["AR100"] == pytest.approx(ap)  # recall 1 at the same thresholds, 0 elsewhere


def test_small_medium_and_large_objects_fall_in_their_area_buckets() -> None:
    # 20 x 20 = 400 px (small: under 32^2), 50 x 50 = 2500 (medium), 120 x 120 = 14400 (large: over 96^2).
    small, medium, large = [1, 1, 20, 20], [101, 101, 150, 150], [201, 1, 320, 120]
    targets = [Target("a", [small, medium, large], [0, 0, 0])]
    result = coco([det("a", 0, 0.9, small), det("a", 0, 0.8, large)], targets)
    s = result.summary
    assert (s["APs"], s["APm"], s["APl"]) == (pytest.approx(1.0), 0.0, pytest.approx(1.0))
    assert (s["ARs"], s["ARm"], s["ARl"]) == (1.0, 0.0, 1.0)
    # All areas: precision 1 up to recall 2/3, then nothing: the recall points 0, .01, ..., .66 -> 67 of 101.
    assert s["AP"] == pytest.approx(67 / 101) and result.mAP == pytest.approx(67 / 101)
    assert (s["AR1"], s["AR10"], s["AR100"]) == (
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
    )


def test_a_difficult_object_is_a_crowd_neither_counted_nor_penalised() -> None:
    inside = [30, 30, 49, 49]  # 20 x 20 inside the 100 x 100 difficult box: IoU 0.04, all of it inside
    targets = [Target("a", [BOX, [201, 1, 300, 100]], [0, 0], difficult=[True, False])]
    found = [det("a", 0, 0.9, BOX), det("a", 0, 0.8, inside), det("a", 0, 0.7, [201, 1, 300, 100])]
    result = coco(found, targets)
    assert result.num_gt == {"obj": 1}
    # Both detections on the crowd are ignored (overlap with a crowd = intersection / detection area):
    # the one regular object is found by the third, at precision 1 -> AP 1.
    assert result.mAP == pytest.approx(1.0)
    # VOC ignores the exact match on the difficult box but counts the small one inside it (IoU 0.04) as FP.
    assert evaluate_detections(found, targets, ["obj"], "voc12").mAP == pytest.approx(0.5)


def test_a_blacklisted_pair_is_dropped_from_both_sides() -> None:
    targets = [Target("a", [BOX, [201, 1, 300, 100]], [0, 1]), Target("b", [BOX], [0])]
    dets = [
        det("a", 0, 0.9, [301, 301, 400, 400]),
        det("b", 0, 0.5, BOX),
        det("a", 1, 0.4, [201, 1, 300, 100]),
    ]
    plain = coco(dets, targets, ("x", "y"))
    # x: a false positive, then 1 of 2 found -> precision 1/2 on the recall points 0..0.5 (51 of 101).
    assert plain.ap == {"x": pytest.approx(0.5 * 51 / 101), "y": pytest.approx(1.0)}
    dropped = coco(dets, targets, ("x", "y"), blacklist=frozenset({("a", 0)}))
    assert dropped.ap == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}
    assert dropped.num_gt == {"x": 1, "y": 1}


def test_map_is_cocoeval_ap_and_the_result_round_trips_json() -> None:
    rng = np.random.default_rng(3)
    targets, dets = [], []
    for i in range(6):
        corners = rng.integers(1, 300, size=(4, 2, 2))
        gt = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 8], axis=1).astype(float)
        labels = rng.integers(0, 3, size=4)
        targets.append(Target(f"i{i}", gt, labels, difficult=rng.random(4) < 0.2))
        for box, label in zip(gt, labels, strict=True):
            jitter = rng.integers(-6, 7, size=4)
            dets.append(det(f"i{i}", int(label), float(rng.random()), (box + jitter).tolist()))
        dets.append(det(f"i{i}", int(rng.integers(0, 3)), float(rng.random()), [5, 5, 60, 60]))
    result = coco(dets, targets, ("x", "y", "z"))
    assert result.mAP == pytest.approx(result.summary["AP"])  # COCOeval's own mean over the classes
    assert np.mean(list(result.per_class["AP50"].values())) == pytest.approx(result.summary["AP50"])
    again = DetectionEvaluation.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result
    assert set(result.to_json()["summary"]) == set(COCO_STATS)
    table = result.format_table()
    assert "AP50" in table and "AR100" in table and f"{100 * result.mAP:.2f}" in table


def test_empty_detections_score_zero() -> None:
    result = coco([], [Target("a", [BOX], [0])])
    assert result.mAP == 0.0 and result.summary["AR100"] == 0.0


def test_compare_rules_gives_each_rule_and_the_chain_of_differences() -> None:
    # A 12 x 12 object found with a 12 x 30 box (IoU 0.4): ILSVRC's threshold for it is 144 / 22^2 =
    # 0.30, so only ilsvrc counts it; a large object found at IoU 0.68.
    small, small_det = [10, 10, 21, 21], [10, 10, 21, 39]
    targets = [Target("a", [small], [0]), Target("b", [BOX], [1])]
    found = [det("a", 0, 0.9, small_det), det("b", 1, 0.8, [1, 1, 68, 100])]
    comparison = compare_rules(found, targets, ["small", "large"])
    for rule, evaluation in comparison.evaluations.items():
        assert evaluation == evaluate_detections(found, targets, ["small", "large"], rule)
    # A matching made already (evaluate_detector keeps one for the bootstrap) gives the same scores.
    for rule in ("ilsvrc", "voc07"):
        matched = match_detections(found, targets, ["small", "large"], rule)
        assert compare_rules(found, targets, ["small", "large"], matched=matched) == comparison
    assert comparison.column("ilsvrc") == {"small": 1.0, "large": 1.0}
    assert comparison.column("voc12") == {"small": 0.0, "large": 1.0}
    assert comparison.column("coco AP") == {"small": 0.0, "large": pytest.approx(0.4)}  # .50 ... .65
    d = comparison.differences()
    assert d["voc12 - ilsvrc"] == {"mAP": -0.5, "small": -1.0, "large": 0.0}
    assert d["AP - AP50"]["large"] == pytest.approx(-0.6)
    table = comparison.format_table()
    assert "-100.00" in table and "-60.00" in table and "Quote ilsvrc" in table
    again = RuleComparison.from_json(json.loads(json.dumps(comparison.to_json())))
    assert again == comparison
    with pytest.raises(GoogLeNetError, match="compare_rules"):
        evaluate_detections(found, targets, ["small", "large"], "all")
    with pytest.raises(GoogLeNetError, match="missing coco"):
        RuleComparison({r: e for r, e in comparison.evaluations.items() if r != "coco"})
