"""Detection mAP (ILSVRC eval_detection.m, PASCAL VOCevaldet.m) on hand-worked cases, a cross-check of
the matching against pycocotools, and the detections file reader/writer."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from googlenet.detection.boxes import box_iou
from googlenet.detection.detections import Detection, read_detections, write_detections
from googlenet.detection.metrics import (
    DetectionEvaluation,
    average_precision,
    evaluate_detections,
    ilsvrc_iou_thresholds,
    match_ilsvrc,
    match_voc,
    precision_recall,
)
from googlenet.errors import GoogLeNetError

from .helpers import Target, det

# Two 100 x 100 boxes side by side, overlapping by half (IoU 1/3), and a detection lying across both:
# IoU 0.68 with A (85 x 100 / 12500) and 0.556 with B (75 x 100 / 13500).
GT_A = [0, 0, 99, 99]
GT_B = [50, 0, 149, 99]
ACROSS = [15, 0, 124, 99]
SMALL_GT = [10, 10, 21, 21]  # 12 x 12 px: ILSVRC threshold 144 / 22^2 = 0.2975
SMALL_DET = [10, 10, 21, 39]  # 12 x 30 px over it: IoU 144 / 360 = 0.4


def test_boxes_of_the_hand_worked_cases_have_the_stated_iou() -> None:
    assert box_iou([ACROSS], [GT_A, GT_B])[0] == pytest.approx([0.68, 7500 / 13500])
    assert box_iou([SMALL_DET], [SMALL_GT])[0, 0] == pytest.approx(0.4)
    assert ilsvrc_iou_thresholds([SMALL_GT, GT_A]) == pytest.approx([144 / 484, 0.5])


@pytest.mark.parametrize(("rule", "ap"), [("ilsvrc", 1.0), ("voc07", 0.0), ("voc12", 0.0)])
def test_a_small_object_found_at_iou_0_4_counts_under_ilsvrc_only(rule: str, ap: float) -> None:
    targets = [Target("a", [SMALL_GT], [0])]
    result = evaluate_detections([det("a", 0, 0.9, SMALL_DET)], targets, ["obj"], rule)
    assert result.ap == {"obj": ap}
    assert match_ilsvrc([SMALL_DET], [0.9], [SMALL_GT])[0].tolist() == [True]
    assert match_voc([SMALL_DET], [0.9], [SMALL_GT])[1].tolist() == [True]


@pytest.mark.parametrize("match", ["ilsvrc", "voc"])
def test_a_duplicate_detection_is_a_false_positive_under_both_rules(match: str) -> None:
    # The lower-scoring copy comes first in the input: flags are in input order, matching in score order.
    boxes, scores = [GT_A, GT_A], [0.8, 0.9]
    tp, fp = match_ilsvrc(boxes, scores, [GT_A]) if match == "ilsvrc" else match_voc(boxes, scores, [GT_A])
    assert tp.tolist() == [False, True]
    assert fp.tolist() == [True, False]


def test_when_the_best_ground_truth_is_taken_ilsvrc_takes_the_next_and_voc_counts_a_duplicate() -> None:
    boxes, scores, gts = [GT_A, ACROSS], [0.9, 0.8], [GT_A, GT_B]
    assert match_ilsvrc(boxes, scores, gts)[0].tolist() == [True, True]
    tp, fp = match_voc(boxes, scores, gts)
    assert (tp.tolist(), fp.tolist()) == ([True, False], [False, True])
    targets = [Target("a", gts, [0, 0])]
    dets = [det("a", 0, s, b) for b, s in zip(boxes, scores, strict=True)]
    # ilsvrc: recall 1/2, 1 at precision 1 -> 1. voc: TP, FP: recall 1/2 at precision 1, then nothing:
    # all points 0.5; 11 points: t = 0 .. 0.5 at 1, t = 0.6 .. 1 at 0 -> 6/11.
    assert evaluate_detections(dets, targets, ["obj"], "ilsvrc").mAP == 1.0
    assert evaluate_detections(dets, targets, ["obj"], "voc12").mAP == 0.5
    assert evaluate_detections(dets, targets, ["obj"], "voc07").mAP == pytest.approx(6 / 11)


def test_a_difficult_object_is_ignored_by_voc_and_ordinary_ground_truth_for_ilsvrc() -> None:
    targets = [
        Target("a", [GT_A], [0], difficult=[True]),
        Target("b", [GT_A], [0]),
    ]
    dets = [det("a", 0, 0.9, GT_A), det("b", 0, 0.7, [300, 300, 399, 399]), det("b", 0, 0.5, GT_A)]
    voc = evaluate_detections(dets, targets, ["obj"], "voc12")
    ilsvrc = evaluate_detections(dets, targets, ["obj"], "ilsvrc")
    # voc: the 0.9 detection is neither TP nor FP and the difficult box is no positive: FP, TP over
    # one positive -> precision 1/2 at recall 1 -> AP 0.5 (an FP there would give 1/3, a TP more).
    assert voc.num_gt == {"obj": 1}
    assert voc.ap["obj"] == pytest.approx(0.5)
    tp, fp = match_voc([GT_A], [0.9], [GT_A], [True])
    assert (tp.tolist(), fp.tolist()) == ([False], [False])
    # ilsvrc: TP, FP, TP over two positives: envelope 1 on [0, 1/2], 2/3 on [1/2, 1] -> 5/6.
    assert ilsvrc.num_gt == {"obj": 2}
    assert ilsvrc.ap["obj"] == pytest.approx(5 / 6)


@pytest.mark.parametrize("rule", ["ilsvrc", "voc12"])
def test_a_blacklisted_image_class_pair_drops_its_detections_and_ground_truth(rule: str) -> None:
    targets = [Target("a", [GT_A, GT_B], [0, 1]), Target("b", [GT_A], [0])]
    far = [300, 300, 399, 399]
    dets = [det("a", 0, 0.9, far), det("b", 0, 0.5, GT_A), det("a", 1, 0.4, GT_B)]
    # Without the blacklist: class 0 has FP then TP over 2 positives -> precision 1/2 on [0, 1/2].
    plain = evaluate_detections(dets, targets, ["x", "y"], rule)
    assert plain.ap == {"x": pytest.approx(0.25), "y": 1.0}
    assert plain.num_gt == {"x": 2, "y": 1}
    dropped = evaluate_detections(dets, targets, ["x", "y"], rule, blacklist=frozenset({("a", 0)}))
    assert dropped.ap == {"x": 1.0, "y": 1.0}  # only (a, x) is dropped; (a, y) still counts
    assert dropped.num_gt == {"x": 1, "y": 1}


def test_all_points_and_11_point_ap_by_hand() -> None:
    # 5 detections over 4 positives, in score order TP FP TP FP TP.
    rec, prec = precision_recall([5, 4, 3, 2, 1], [1, 0, 1, 0, 1], [0, 1, 0, 1, 0], num_gt=4)
    assert rec == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.75])
    assert prec == pytest.approx([1, 0.5, 2 / 3, 0.5, 0.6])
    # Envelope 1, 2/3, 0.6, 0 on the four recall steps of 1/4.
    assert average_precision(rec, prec, "all") == pytest.approx((1 + 2 / 3 + 0.6 + 0) / 4)
    # t = 0, .1, .2 -> 1; t = .3, .4, .5 -> 2/3; t = .6, .7 -> 0.6; t = .8, .9, 1 -> 0.
    assert average_precision(rec, prec, "11point") == pytest.approx((3 + 2 + 1.2) / 11)
    # FP, TP, TP over 2: precision 0, 1/2, 2/3 -> the envelope lifts the first step to 2/3.
    assert average_precision([0, 0.5, 1], [0, 0.5, 2 / 3], "all") == pytest.approx(2 / 3)
    assert average_precision([], [], "all") == 0.0
    assert average_precision([], [], "11point") == 0.0
    with pytest.raises(ValueError, match="mode"):
        average_precision(rec, prec, "area")


def test_11_point_thresholds_are_exact_tenths() -> None:
    # A recall of exactly 3/10 reaches t = 0.3 (np.arange(0, 1.1, 0.1)[3] is 0.30000000000000004).
    rec, prec = precision_recall([3, 2, 1], [1, 1, 1], [0, 0, 0], num_gt=10)
    assert average_precision(rec, prec, "11point") == pytest.approx(4 / 11)


def test_ties_in_score_keep_file_order_for_voc_and_image_order_for_ilsvrc() -> None:
    # Targets list b0..b19 before a; the file lists 20 false positives on a before the 20 true
    # positives on b*, all at one score. Low-scoring false positives between them (after every tie, so
    # no AP changes) make the sort move entries: an unstable sort would then scramble the ties.
    targets = [*(Target(f"b{i}", [GT_A], [0]) for i in range(20)), Target("a", [], [])]
    ties = [det("a", 0, 0.5, GT_A) for _ in range(20)] + [det(f"b{i}", 0, 0.5, GT_A) for i in range(20)]
    dets = [d for tie in ties for d in (tie, det(tie.image_id, 0, 0.1, [300, 300, 399, 399]))]
    # voc: 20 FPs then 20 TPs -> precision k / (20 + k) at recall k / 20: envelope 1/2 -> AP 0.5.
    assert evaluate_detections(dets, targets, ["obj"], "voc12").mAP == pytest.approx(0.5)
    # ilsvrc: image by image in targets order -> the TPs first -> AP 1.
    assert evaluate_detections(dets, targets, ["obj"], "ilsvrc").mAP == 1.0


def test_ties_in_iou_go_to_the_first_ground_truth() -> None:
    # D1 has IoU 9000 / 11000 with both boxes; D2 meets only the first (0.538 against 0.333). D1 takes
    # the first box, so D2 is a false positive under both rules (it would be a TP had D1 taken the second).
    gts = [[0, 0, 99, 99], [20, 0, 119, 99]]
    d1, d2 = [10, 0, 109, 99], [-30, 0, 69, 99]
    assert box_iou([d1, d2], gts) == pytest.approx(np.array([[9 / 11, 9 / 11], [7 / 13, 1 / 3]]))
    assert match_ilsvrc([d1, d2], [0.9, 0.8], gts)[0].tolist() == [True, False]
    assert match_voc([d1, d2], [0.9, 0.8], gts)[0].tolist() == [True, False]


def test_map_is_the_mean_over_classes_with_ground_truth() -> None:
    targets = [Target("a", [GT_A, GT_B], [0, 1]), Target("b", [GT_A], [1])]
    dets = [
        det("a", 0, 0.9, GT_A),  # class x: AP 1
        det("a", 1, 0.8, [300, 300, 399, 399]),  # class y: FP, TP, of 2 -> 1/4
        det("b", 1, 0.7, GT_A),
        det("b", 2, 0.95, GT_A),  # class z: no ground truth anywhere -> no AP, not in the mean
    ]
    result = evaluate_detections(dets, targets, ["x", "y", "z"], "voc12")
    assert result.ap == {"x": 1.0, "y": pytest.approx(0.25)}
    assert result.num_gt == {"x": 1, "y": 2, "z": 0}
    assert result.mAP == pytest.approx(0.625)
    assert result.num_detections == 4
    again = DetectionEvaluation.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result
    assert set(result.to_json()) == {"rule", "mAP", "AP", "num_gt", "num_detections", "not_scored"}
    assert result.not_scored == ["z"] and result.to_json()["not_scored"] == ["z"]  # said, not scored
    assert "not scored (no ground truth in this split, as the devkits): z" in result.format_table()
    table = result.format_table()
    assert "62.50" in table and "25.00" in table and "100.00" in table
    assert [line.split()[0] for line in table.splitlines()[3:6]] == ["x", "y", "z"]


def test_evaluation_refuses_detections_outside_the_targets() -> None:
    targets = [Target("a", [GT_A], [0])]
    with pytest.raises(GoogLeNetError, match="detection 0 is on image 'zz'"):
        evaluate_detections([det("zz", 0, 0.5, GT_A)], targets, ["obj"], "ilsvrc")
    with pytest.raises(GoogLeNetError, match="detection 0 has label 3"):
        evaluate_detections([det("a", 3, 0.5, GT_A)], targets, ["obj"], "ilsvrc")
    with pytest.raises(GoogLeNetError, match="no class has a ground-truth"):
        evaluate_detections([], [Target("a", [GT_A], [0], [True])], ["obj"], "voc07")
    with pytest.raises(GoogLeNetError, match="unknown detection rule"):
        evaluate_detections([], targets, ["obj"], "voc10")


def _random_scene(rng: np.random.Generator) -> tuple[list[Target], list[Detection]]:
    """Large boxes (>= 60 px a side: every ILSVRC threshold is 0.5) and detections near them."""
    targets, dets = [], []
    for i in range(30):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 300, size=(n, 2))
        wh = rng.uniform(60, 200, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh - 1], axis=1)
        labels = rng.integers(0, 3, size=n)
        targets.append(Target(f"im{i}", boxes, labels))
        for box, label in zip(boxes, labels, strict=True):
            for _ in range(int(rng.integers(0, 4))):  # 0-3 detections per object: misses and duplicates
                jitter = rng.normal(0, 0.15, size=4) * np.concatenate([wh[0], wh[0]])
                x1, y1, x2, y2 = box + jitter
                dets.append(
                    det(f"im{i}", int(label), float(rng.uniform()), [x1, y1, max(x1, x2), max(y1, y2)])
                )
        for _ in range(int(rng.integers(0, 3))):  # background false positives
            x1, y1 = rng.uniform(0, 300, size=2)
            dets.append(
                det(f"im{i}", int(rng.integers(0, 3)), float(rng.uniform()), [x1, y1, x1 + 80, y1 + 80])
            )
    return targets, dets


def test_ilsvrc_matching_of_large_boxes_equals_pycocotools_at_iou_0_5() -> None:
    """Where the rules coincide (every threshold 0.5, one IoU threshold, all areas, no detection
    limit) the TP/FP flags of eval_detection.m's matching equal COCOeval's ``dtMatches``. The APs are
    not compared: COCO's is a 101-point interpolation, VOCap's the exact area."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    targets, dets = _random_scene(np.random.default_rng(0))
    images = [{"id": i, "width": 500, "height": 500} for i in range(len(targets))]
    index = {t.image_id: i for i, t in enumerate(targets)}

    def xywh(b: np.ndarray) -> list[float]:  # inclusive corners -> COCO's x, y, w, h (w = x2 - x1 + 1)
        return [float(b[0]), float(b[1]), float(b[2] - b[0] + 1), float(b[3] - b[1] + 1)]

    anns = []
    for i, t in enumerate(targets):
        for b, lab in zip(t.boxes, t.labels, strict=True):
            x, y, w, h = xywh(b)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(lab) + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(3)]}
    results = [
        {"image_id": index[d.image_id], "category_id": d.label + 1, "bbox": xywh(d.bbox), "score": d.score}
        for d in dets
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        coco = COCOeval(gt, gt.loadRes(results), "bbox")
        coco.params.iouThrs = np.array([0.5])
        coco.params.areaRng, coco.params.areaRngLbl = [[0, 1e10]], ["all"]
        coco.params.maxDets = [10_000]
        coco.evaluate()
    coco_tp = np.zeros(len(dets), dtype=bool)
    for e in coco.evalImgs:
        if e is not None:
            for dt_id, m in zip(e["dtIds"], e["dtMatches"][0], strict=True):
                coco_tp[dt_id - 1] = m > 0  # loadRes numbers results 1, 2, ... in order

    ours = np.zeros(len(dets), dtype=bool)
    for t in targets:
        for c in range(3):
            idx = [i for i, d in enumerate(dets) if d.image_id == t.image_id and d.label == c]
            tp, fp = match_ilsvrc(
                [dets[i].bbox for i in idx], [dets[i].score for i in idx], t.boxes[t.labels == c]
            )
            assert np.all(tp ^ fp)
            ours[idx] = tp
    assert len(dets) > 50 and 20 < ours.sum() < len(dets) - 20  # a scene with TPs and FPs both
    np.testing.assert_array_equal(ours, coco_tp)


# ------------------------------------------------------------------------------------------------
# Detections files

CLASSES = ["cat", "dog"]
IMAGE_IDS = ["000001", "000002"]


def test_detections_file_round_trips(tmp_path: Path) -> None:
    dets = [det("000001", 1, 0.25, [1.5, 2, 30, 40]), det("000002", 0, 1e-9, [0, 0, 0, 0])]
    path = write_detections(tmp_path / "sub" / "dets.json", dets, CLASSES)
    entries = json.loads(path.read_text())
    assert entries[0] == {"image_id": "000001", "label": "dog", "bbox": [1.5, 2.0, 30.0, 40.0], "score": 0.25}
    back = read_detections(path, CLASSES, IMAGE_IDS)
    assert [(d.image_id, d.label, d.score, d.bbox.tolist()) for d in back] == [
        (d.image_id, d.label, d.score, d.bbox.tolist()) for d in dets
    ]
    assert read_detections(write_detections(tmp_path / "empty.json", [], CLASSES), CLASSES, IMAGE_IDS) == []


GOOD = {"image_id": "000001", "label": "cat", "bbox": [0, 0, 10, 10], "score": 0.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "is not JSON"),
        ('{"image_id": "000001"}', "holds a dict; expected a list"),
        (json.dumps([GOOD, "cat"]), "entry 1: is a str"),
        (
            json.dumps([GOOD, {k: v for k, v in GOOD.items() if k != "score"}]),
            "entry 1: lacks the key(s) score",
        ),
        (json.dumps([{**GOOD, "image_id": "000009"}]), "entry 0: image_id '000009' is not an image"),
        (json.dumps([GOOD, GOOD, {**GOOD, "label": "bird"}]), "entry 2: label 'bird' is not a class"),
        (json.dumps([{**GOOD, "label": 0}]), "entry 0: label 0 is not a class"),
        (
            '[{"image_id": "000001", "label": "cat", "bbox": [0, 0, 10, 10], "score": NaN}]',
            "entry 0: score nan",
        ),
        (json.dumps([{**GOOD, "score": "high"}]), "entry 0: score 'high' is not a finite number"),
        (json.dumps([{**GOOD, "bbox": [0, 0, 10]}]), "entry 0: bbox [0, 0, 10] is not a list of 4"),
        (json.dumps([{**GOOD, "bbox": [0, "0", 10, 10]}]), "entry 0: bbox [0, '0', 10, 10] is not a list"),
        (json.dumps([{**GOOD, "bbox": [0, 0, True, 10]}]), "is not a list of 4 numbers"),
        ('[{"image_id": "000001", "label": "cat", "bbox": [0, 0, Infinity, 1], "score": 1}]', "non-finite"),
        (json.dumps([{**GOOD, "bbox": [10, 0, 9, 10]}]), "entry 0: bbox [10, 0, 9, 10] has xmax < xmin"),
        (json.dumps([{**GOOD, "bbox": [0, 5, 10, 4]}]), "has xmax < xmin or ymax < ymin"),
    ],
)
def test_bad_detections_files_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "dets.json"
    path.write_text(text)
    with pytest.raises(GoogLeNetError) as info:
        read_detections(path, CLASSES, IMAGE_IDS)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_detections_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GoogLeNetError, match=r"cannot read detections file .*nope\.json"):
        read_detections(tmp_path / "nope.json", CLASSES, IMAGE_IDS)
