"""googlenet.detection.evaluate_detector: members x proposal methods from one pass of the networks.

A 2-member detector with random members on a tiny built-in detection set: every ensemble the result
holds is what a Detector of just those members gives, and the summary rows are the runs' arithmetic.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

import googlenet
from googlenet.detection import Detector, evaluate_detector
from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detections import detections_of
from googlenet.detection.evaluation import DetectionResult, paired_difference
from googlenet.detection.metrics import evaluate_detections
from googlenet.detection.proposals import cached_proposals, proposal_method
from googlenet.errors import GoogLeNetError
from googlenet.runs import RunLayout

from .helpers import write_random_detector

SIZE = 64
METHODS = ["selective-search-2x", "selective-search"]


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("det-eval")
    data = make_builtin_detection(
        root / "data", classes=3, train_images=2, val_images=2, image_size=64, workers=1
    )
    out = write_random_detector(root / "detector", data, 2, size=SIZE, method=METHODS[0])
    return out, data


@pytest.fixture(scope="module")
def result(detector: tuple[Path, Path]) -> DetectionResult:
    out, data = detector
    return evaluate_detector(out, data, members=[1, 2], each_member=True, proposals=METHODS, workers=0)


def test_every_ensemble_is_the_detector_of_those_members(
    detector: tuple[Path, Path], result: DetectionResult
) -> None:
    out, data = detector
    # Per method: member 0 alone (= the first 1), member 1 alone, the first 2.
    assert [(r.proposals, r.members) for r in result.runs] == [
        (m, c) for m in METHODS for c in ((0,), (1,), (0, 1))
    ]
    dataset = open_detection_dataset(data, "val")
    for run in result.runs:
        method = proposal_method(run.proposals)
        proposals = cached_proposals(dataset, method)
        if run.first_k:
            alone = Detector.load(out, members=len(run.members), backend="torch", precision="fp32")
        else:  # member 1 alone: a detector whose only member is member_01
            (index,) = run.members
            member = googlenet.load(RunLayout(out / f"member_{index:02d}").weights)
            alone = Detector([member], dataset.class_names, method, image_size=SIZE, backend="torch",
                             precision="fp32")  # fmt: skip
        want = alone.detect_dataset(dataset, proposals)
        assert list(run.detections) == dataset.image_ids
        for image_id, found in want.items():
            got = run.detections[image_id]
            assert got.labels.tolist() == found.labels.tolist()
            np.testing.assert_array_equal(got.scores, found.scores)
            np.testing.assert_array_equal(got.boxes, found.boxes)
        ev = evaluate_detections(detections_of(want), dataset.targets(), dataset.class_names, "ilsvrc",
                                 blacklist=dataset.blacklist)  # fmt: skip
        assert run.evaluation == ev
        # The matching the score came from is kept for the bootstrap (not matched twice).
        assert run.matched is not None and run.matched.evaluation() == ev
        assert run.proposals_per_image == pytest.approx(np.mean([len(v) for v in proposals.values()]))
        # The ensemble's network time is its members'; warping is shared by a method's ensembles.
        assert run.times.images == len(dataset) and run.times.network > 0
    a, b = result.run(METHODS[0], [0]), result.run(METHODS[0], 2)
    assert b.times.network == pytest.approx(a.times.network + result.run(METHODS[0], [1]).times.network)
    assert a.times.warp == b.times.warp


def test_the_result_tabulates_and_serialises_its_runs(
    detector: tuple[Path, Path], result: DetectionResult
) -> None:
    out, data = detector
    (first, second) = result.member_summary()
    for row in (first, second):
        singles = [result.run(row.proposals, [i]).mAP for i in range(2)]
        assert row.single == singles and row.single_mean == pytest.approx(statistics.fmean(singles))
        assert row.single_sd == pytest.approx(statistics.stdev(singles))
        assert row.ensembles == {2: result.run(row.proposals, 2).mAP}
    (diff,) = result.paired_differences()
    assert diff.what == f"{METHODS[1]} - {METHODS[0]}"
    assert diff.diffs == pytest.approx([x - y for x, y in zip(second.single, first.single, strict=True)])
    record = json.loads(json.dumps(result.to_dict()))
    assert record["format"] == "googlenet-evaluate-detection" and record["detector"] == str(out)
    assert record["mAP"] == result.runs[-1].mAP and record["num_images"] == 2
    assert [(r["members"], r["member_indices"]) for r in record["runs"][:3]] == [
        (1, [0]),
        (1, [1]),
        (2, [0, 1]),
    ]
    assert set(record["runs"][0]["seconds_per_image"]) == {"warp", "network", "nms"}
    # A run's detections and the result's targets score it again (what a resample of the images needs).
    last = result.runs[-1]
    found = detections_of(last.detections)
    again = evaluate_detections(
        found, result.targets, result.class_names, result.rule, blacklist=result.blacklist
    )
    assert again == last.evaluation
    table = result.format_table()
    assert "[1]" in table and table.splitlines()[0] == result.header()
    with pytest.raises(GoogLeNetError, match="--members 3"):
        evaluate_detector(out, data, members=[3])
    with pytest.raises(GoogLeNetError, match="Got 1 and 2"):
        paired_difference("x", [0.1], [0.2, 0.3])


def test_rule_all_scores_every_run_under_every_rule(detector: tuple[Path, Path]) -> None:
    out, data = detector
    result = evaluate_detector(out, data, members=[1], proposals=METHODS[:1], rule="all", workers=0)
    (run,) = result.runs
    assert result.rule == "all" and run.comparison is not None and result.comparison is run.comparison
    found = detections_of(run.detections)
    for rule, evaluation in run.comparison.evaluations.items():
        assert evaluation == evaluate_detections(found, result.targets, result.class_names, rule)
    assert run.evaluation == run.comparison.evaluations["ilsvrc"]
    record = json.loads(json.dumps(result.to_dict()))
    assert record["rule"] == "all" and set(record["evaluations"]) == {"ilsvrc", "voc07", "voc12", "coco"}
    assert record["runs"][0]["evaluations"]["coco"]["summary"]["AP"] == run.comparison.evaluations["coco"].mAP
    header = result.comparison_table().splitlines()[0]
    assert "mAP ilsvrc" in header and "mAP coco AP" in header
    with pytest.raises(GoogLeNetError, match="unknown detection rule 'voc10'"):
        evaluate_detector(out, data, rule="voc10")
