"""The paired bootstrap over images of detection mAP differences (googlenet.detection.bootstrap).

A draw's weighted AP (each image counted as often as it was drawn, the matching done once) is the AP
of the explicitly resampled set; the intervals' arithmetic on cases known by hand; the intervals in
evaluate-detection's table and JSON and in the detector's report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from googlenet.detection.bootstrap import (
    bootstrap_maps,
    image_multiplicities,
    paired_map_interval,
    result_intervals,
)
from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detections import Detection
from googlenet.detection.detector import read_manifest
from googlenet.detection.metrics import evaluate_detections, match_detections, precision_recall

from .helpers import check_report_page, cli_in_process, one_error_line, write_random_detector


@dataclass
class Target:
    image_id: str
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.difficult is None:
            self.difficult = np.zeros(len(self.labels), dtype=bool)


def random_set(seed: int, images: int = 9, classes: int = 3) -> tuple[list[Target], list[Detection]]:
    """Ground truth and detections near it (some on target, some off, some duplicates), distinct scores."""
    rng = np.random.default_rng(seed)
    targets, detections = [], []
    for i in range(images):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 200, (n, 2))
        boxes = np.c_[xy, xy + rng.uniform(8, 80, (n, 2))]
        labels = rng.integers(0, classes, n)
        targets.append(Target(f"im{i}", boxes, labels, difficult=rng.random(n) < 0.2))
        for box, label in zip(boxes, labels, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # jittered copies: TPs, duplicates, misses
                jitter = box + rng.normal(0, 0.15 * (box[2] - box[0]), 4)
                detections.append(Detection(f"im{i}", int(label), float(rng.random()), jitter))
        for _ in range(int(rng.integers(0, 3))):  # background detections
            xy = rng.uniform(0, 200, 2)
            box = np.r_[xy, xy + rng.uniform(8, 60, 2)]
            detections.append(Detection(f"im{i}", int(rng.integers(0, classes)), float(rng.random()), box))
    return targets, detections


def resampled(
    targets: list[Target], detections: list[Detection], counts: np.ndarray
) -> tuple[list[Target], list[Detection]]:
    """The set with image i repeated counts[i] times, each copy an image of its own, in the images' order."""
    out_t, out_d = [], []
    for target, k in zip(targets, counts, strict=True):
        for copy in range(int(k)):
            name = f"{target.image_id}#{copy}"
            out_t.append(replace(target, image_id=name))
            out_d += [replace(d, image_id=name) for d in detections if d.image_id == target.image_id]
    return out_t, out_d


@pytest.mark.parametrize("rule", ["ilsvrc", "voc07", "voc12"])
def test_a_draws_weighted_ap_is_the_ap_of_the_resampled_images(rule: str) -> None:
    names = ["a", "b", "c"]
    targets, detections = random_set(1)
    blacklist = {("im2", 1)} if rule == "ilsvrc" else set()
    matched = match_detections(detections, targets, names, rule, blacklist)
    # Counted once each, the matched detections give evaluate_detections' own numbers.
    plain = evaluate_detections(detections, targets, names, rule, blacklist)
    assert matched.evaluation() == plain
    checked = 0
    for counts in image_multiplicities(len(targets), 6, seed=3):
        rt, rd = resampled(targets, detections, counts)
        copies = {(f"{i}#{k}", c) for i, c in blacklist for k in range(len(targets))}
        explicit = evaluate_detections(rd, rt, names, rule, copies)
        weighted = matched.evaluation(counts)
        assert weighted.num_gt == explicit.num_gt
        assert weighted.num_detections == explicit.num_detections
        assert weighted.ap.keys() == explicit.ap.keys()
        for name, ap in explicit.ap.items():
            assert weighted.ap[name] == pytest.approx(ap, abs=1e-12)
        assert matched.mean_ap(counts) == pytest.approx(explicit.mAP, abs=1e-12)
        checked += len(explicit.ap)
    assert checked >= 12  # the draws had classes to score


def test_weighted_precision_recall_is_the_repeated_list() -> None:
    scores, tp = np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False])
    weights = np.array([2, 0, 1, 3])
    repeated = np.repeat(np.arange(4), weights)
    recall, precision = precision_recall(scores, tp, ~tp, 5, weights=weights)
    full_r, full_p = precision_recall(scores[repeated], tp[repeated], ~tp[repeated], 5)
    # The collapsed curve is the repeated one at the last copy of each detection.
    last = np.cumsum(weights[weights > 0]) - 1
    assert recall == pytest.approx(full_r[last]) and precision == pytest.approx(full_p[last])


def one_class_run(found: list[int], n: int) -> tuple[list[Target], list[Detection]]:
    """n images with one object each; a detection exactly on it in the images ``found`` (no FP)."""
    box = [10.0, 10.0, 59.0, 59.0]
    targets = [Target(f"im{i}", [box], [0]) for i in range(n)]
    detections = [Detection(f"im{i}", 0, 1.0 - i / 100, np.asarray(box)) for i in found]
    return targets, detections


def test_identical_runs_differ_by_exactly_zero() -> None:
    targets, detections = random_set(2)
    a = match_detections(detections, targets, ["a", "b", "c"], "ilsvrc")
    b = match_detections(list(detections), targets, ["a", "b", "c"], "ilsvrc")
    x = paired_map_interval(a, b, draws=200, seed=0)
    assert (x.point, x.low, x.high) == (0.0, 0.0, 0.0) and not x.excludes_zero


def test_one_more_object_found_in_one_image_of_n() -> None:
    # Without false positives the AP is the recall: finding one more object (in image 7) adds
    # w_7 / n to a draw's mAP, w_7 ~ Binomial(n, 1/n) the times image 7 was drawn. n = 20:
    # P(w_7 = 0) = 0.95^20 = 0.36 (so the 2.5th percentile is 0); P(w_7 <= 2) = 0.925 and
    # P(w_7 <= 3) = 0.984, so the 97.5th percentile is 3 / n.
    n = 20
    targets, base = one_class_run(list(range(10)), n)
    _, more = one_class_run([*range(10), 17], n)
    a = match_detections(more, targets, ["obj"], "voc12")
    b = match_detections(base, targets, ["obj"], "voc12")
    assert a.mean_ap() == pytest.approx(11 / n) and b.mean_ap() == pytest.approx(10 / n)
    weights = image_multiplicities(n, 2000, seed=0)
    maps = bootstrap_maps([a, b], weights)
    assert maps[:, 0] - maps[:, 1] == pytest.approx(weights[:, 17] / n)
    x = paired_map_interval(a, b, draws=2000, seed=0)
    assert x.point == pytest.approx(1 / n)
    assert x.low == 0.0 and x.high == pytest.approx(3 / n)
    assert not x.excludes_zero and x.draws == 2000 and x.images == n


def test_draws_are_seeded_resamples_of_every_image() -> None:
    w = image_multiplicities(7, 50, seed=4)
    assert w.shape == (50, 7) and (w.sum(1) == 7).all() and (w >= 0).all()
    assert (w == image_multiplicities(7, 50, seed=4)).all()
    assert not (w == image_multiplicities(7, 50, seed=5)).all()


# --------------------------------------------------------------------------- a detector's runs

SIZE = 64


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """3 random (untrained) members on 3 val images of a 2-class built-in detection set."""
    root = tmp_path_factory.mktemp("det-bootstrap")
    data = make_builtin_detection(root / "data", classes=2, train_images=1, val_images=3, image_size=64,
                                  workers=1)  # fmt: skip
    out = write_random_detector(root / "detector", data, 3, size=SIZE)
    return out, data


def ap_section(index: Path) -> str:
    """The "Average precision per class" section of a report's index.md."""
    text = index.read_text()
    start = text.index("## Average precision per class")
    return text[start : text.index("\n## ", start + 1)]


def test_evaluate_detection_tabulates_and_reports_the_intervals(
    detector: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, data = detector
    evaluation, detections = out.parent / "eval.json", out.parent / "detections.json"
    scored = cli_in_process("evaluate-detection", "--data", data, "--detector", out, "--members", "1", "2",
                            "3", "--each-member", "--rule", "voc12", "--bootstrap", "300", "--json",
                            evaluation, "--workers", "0", "--detections-out", detections,
                            "--no-estimate")  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    record = json.loads(evaluation.read_text())
    maps = {tuple(r["member_indices"]): r["mAP"] for r in record["runs"]}
    assert set(maps) == {(0,), (1,), (2,), (0, 1), (0, 1, 2)}
    got = {(tuple(x["members"]), x["reference"]): x for x in record["intervals"]}
    assert set(got) == {
        (m, ref) for m in ((0, 1), (0, 1, 2)) for ref in ("member 0", "mean member", "best member")
    }
    singles = [maps[(i,)] for i in range(3)]
    for members in ((0, 1), (0, 1, 2)):
        alone = singles[: len(members)]
        want = {"member 0": alone[0], "mean member": float(np.mean(alone)), "best member": max(alone)}
        for reference, value in want.items():
            x = got[(members, reference)]
            assert x["point"] == pytest.approx(maps[members] - value)
            assert x["low"] <= x["high"] and x["draws"] == 300 and x["images"] == 3 and x["rule"] == "voc12"
    # The table shows each comparison in points, and says the best member is an optimistic reference.
    x = got[((0, 1, 2), "best member")]
    assert f"{x['what']}" in scored.stdout and f"{100 * x['point']:+7.2f}" in scored.stdout
    assert "optimistic" in scored.stdout
    # The report renders them from the JSON.
    report = out.parent / "report"
    made = cli_in_process("report", out, "--out", report, "--evaluation", evaluation, "--rule", "voc12")
    assert made.returncode == 0, made.stderr[-3000:]
    index = (report / "index.md").read_text()
    assert x["what"] in index and f"{100 * x['low']:+.2f}" in index and "optimistic" in index

    # --detections-out: the full run's detections (all 3 members), which score to its mAP exactly.
    full = {
        "path": str(detections),
        "members": 3,
        "member_indices": [0, 1, 2],
        "proposals": "selective-search-2x",
    }
    assert record["detections_file"] == full
    again = cli_in_process("evaluate-detection", "--data", data, "--detections", detections,
                           "--rule", "voc12", "--json", out.parent / "again.json")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out.parent / "again.json").read_text())["mAP"] == maps[(0, 1, 2)]
    # The report from that file: the same AP table, without loading the detector; the seconds are
    # those evaluate-detection measured for that run.
    from googlenet.detection.detector import Detector

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report loaded the detector")

    monkeypatch.setattr(Detector, "load", refuse)
    from_file = out.parent / "report-from-file"
    made = cli_in_process("report", out, "--out", from_file, "--evaluation", evaluation, "--rule", "voc12",
                          "--detections", detections)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    assert ap_section(from_file / "index.md") == ap_section(report / "index.md")
    for picture in ("detections.png", "pr_curves.png"):  # the same boxes drawn, the same curves
        assert (from_file / picture).read_bytes() == (report / picture).read_bytes()
    run = next(r for r in record["runs"] if r["member_indices"] == [0, 1, 2])
    assert f"network {run['seconds_per_image']['network']:.3f}" in (from_file / "index.md").read_text()
    check_report_page(from_file, "GoogLeNet detector report")


@pytest.mark.parametrize("entry", [{"image_id": "not-an-image-here"}, {"label": "zebra"}])
def test_a_detections_file_of_other_images_or_classes_is_one_line(
    detector: tuple[Path, Path], tmp_path: Path, entry: dict[str, str]
) -> None:
    out, data = detector
    image_id = open_detection_dataset(data, "val").image_ids[0]
    bad = tmp_path / "detections.json"
    good = {
        "image_id": image_id,
        "label": read_manifest(out).class_names[0],
        "bbox": [1, 1, 9, 9],
        "score": 0.5,
    }
    bad.write_text(json.dumps([{**good, **entry}]))
    made = cli_in_process("report", out, "--out", tmp_path / "report", "--detections", bad)
    one_error_line(made, "report", str(bad), next(iter(entry.values())))
    assert not (tmp_path / "report").exists()


def test_result_intervals_are_the_runs_arithmetic(detector: tuple[Path, Path]) -> None:
    from googlenet.detection import evaluate_detector

    out, data = detector
    result = evaluate_detector(out, data, members=[2], each_member=True, proposals=["selective-search-2x"],
                               workers=0, rule="all", bootstrap=0)  # fmt: skip
    assert result.intervals == []  # bootstrap=0: none
    intervals = result_intervals(result, draws=100, seed=1)
    assert [x.reference for x in intervals] == ["member 0", "mean member", "best member"]
    assert {x.rule for x in intervals} == {"ilsvrc"}  # rule "all": under ILSVRC's
    again = result_intervals(result, draws=100, seed=1)
    assert intervals == again  # seeded
