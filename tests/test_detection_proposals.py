"""Region proposals (paper section 8): Selective Search as R-CNN's fast mode, the cache, files, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest

from googlenet.detection.boxes import box_iou
from googlenet.detection.proposal_recall import coverage
from googlenet.detection.proposals import (
    cached_proposals,
    compute_proposals,
    proposal_method,
    proposals_cache_path,
    propose,
    read_proposals,
    selective_search,
    write_proposals,
)
from googlenet.errors import GoogLeNetError

from .helpers import QUADRANT_CLASSES, Target, cli_in_process, quadrants_scene, write_scene_voc


class FolderDataset:
    """The part of DetectionDataset that proposals use: ids, paths, targets, root, split."""

    def __init__(self, root: Path, n: int, suffix: str = ".png") -> None:
        self.root, self.split = root, "val"
        self.image_ids = [f"img{i:02d}" for i in range(n)]
        self._targets = []
        for i, image_id in enumerate(self.image_ids):
            pixels, boxes = quadrants_scene(i)
            PIL.Image.fromarray(pixels).save(root / f"{image_id}{suffix}")
            self._targets.append(Target(image_id, boxes))
        self.suffix = suffix

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, i: int) -> Path:
        return self.root / f"{self.image_ids[i]}{self.suffix}"

    def targets(self) -> list[Target]:
        return list(self._targets)


# --------------------------------------------------------------------------- Selective Search


def test_boxes_are_inclusive_inside_large_enough_and_unique() -> None:
    image, _ = quadrants_scene(0, size=180)
    image = image[:, :170]  # not square: x and y must not be swapped
    boxes = selective_search(image, ks=(50, 100))
    assert boxes.dtype == np.float64 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 50
    assert np.array_equal(boxes, np.round(boxes))
    x1, y1, x2, y2 = boxes.T
    assert x1.min() >= 1 and y1.min() >= 1 and x2.max() <= 170 and y2.max() <= 180
    assert (x2 - x1 + 1).min() >= 20 and (y2 - y1 + 1).min() >= 20  # R-CNN's minBoxWidth, inclusive
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    # The whole image is a region of every hierarchy: its box in the inclusive convention.
    assert [1, 1, 170, 180] in boxes.tolist()


def test_min_box_filter_and_order_are_reproducible() -> None:
    image, _ = quadrants_scene(1, size=160)
    a = selective_search(image, ks=(50, 100))
    b = selective_search(image, ks=(50, 100))
    assert np.array_equal(a, b)  # the rank order too, not only the set
    small = selective_search(image, ks=(50, 100), min_box=5)
    assert len(small) > len(a) and (small[:, 2] - small[:, 0] + 1).min() < 20
    # Filtering then keeps the boxes of the unfiltered list, in the same order.
    sides = np.minimum(small[:, 2] - small[:, 0], small[:, 3] - small[:, 1]) + 1
    assert np.array_equal(small[sides >= 20], a)


def test_doubled_superpixels_give_about_half_the_proposals() -> None:
    counts = {}
    for name in ("selective-search", "selective-search-2x"):
        counts[name] = sum(len(propose(quadrants_scene(s)[0], proposal_method(name))) for s in range(2))
    ratio = counts["selective-search-2x"] / counts["selective-search"]
    assert 0.25 < ratio < 0.7, counts  # the paper: "this halves the proposals"


def test_flat_objects_are_all_covered() -> None:
    method = proposal_method("selective-search")
    proposals, targets = {}, []
    for seed in range(3):
        image, gt = quadrants_scene(seed)
        proposals[f"s{seed}"] = propose(image, method)
        targets.append(Target(f"s{seed}", gt))
    assert coverage(proposals, targets) == 1.0
    best = [box_iou(t.boxes, proposals[t.image_id]).max(axis=1) for t in targets]
    assert np.concatenate(best).min() > 0.9


def test_resized_width_scales_boxes_back() -> None:
    image, gt = quadrants_scene(2, size=200)
    boxes = selective_search(image, ks=(50, 100), im_width=100)
    assert len(boxes) > 10
    assert boxes[:, :2].min() >= 1 and boxes[:, 2:].max() <= 200
    # R-CNN's (b - 1) * scale + 1 with scale 2: every coordinate odd (pixel 100 of 100 -> 199).
    assert np.all((boxes - 1) % 2 == 0) and boxes.max() == 199
    assert box_iou(gt, boxes).max(axis=1).min() > 0.7  # objects still found, at the original scale


def test_bad_image_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        selective_search(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        selective_search(np.zeros((50, 50, 3), np.float32))


# --------------------------------------------------------------------------- methods, coverage


def test_methods_and_their_settings(tmp_path: Path) -> None:
    ss = proposal_method("selective-search")
    assert (ss.ks, ss.sigma, ss.min_box, ss.im_width, ss.multibox_top) == ((50, 100), 0.8, 20, None, 0)
    assert proposal_method("selective-search-2x").ks == (100, 200)
    paper = proposal_method("paper", multibox=tmp_path)
    assert (paper.ks, paper.multibox_top, paper.multibox_dir) == ((100, 200), 200, str(tmp_path.resolve()))
    assert json.loads(json.dumps(paper.settings())) == paper.settings()
    assert proposal_method("selective-search", im_width=500).settings()["im_width"] == 500
    with pytest.raises(GoogLeNetError, match="unknown proposal method 'edge-boxes'"):
        proposal_method("edge-boxes")
    with pytest.raises(GoogLeNetError, match="needs a trained MultiBox model"):
        proposal_method("multibox")
    with pytest.raises(GoogLeNetError, match="does not exist"):
        proposal_method("paper", multibox=tmp_path / "missing")
    with pytest.raises(GoogLeNetError, match="unknown setting"):
        proposal_method("selective-search", colour_spaces=3)


def test_paper_method_appends_the_given_proposers_new_boxes(tmp_path: Path) -> None:
    image, _ = quadrants_scene(4)
    method = proposal_method("paper", multibox=tmp_path, multibox_top=3)
    ss = selective_search(image, method.ks)
    calls: list[int] = []

    def proposer(rgb: np.ndarray, top: int) -> np.ndarray:
        calls.append(top)
        # One box Selective Search also gave, two new ones and one past ``top``.
        return np.array([ss[0], [1, 1, 7, 9], [2, 3, 40, 50], [5, 5, 6, 6]], dtype=np.float64)

    boxes = propose(image, method, multibox=proposer)
    assert calls == [3]
    assert np.array_equal(boxes, np.concatenate([ss, [[1, 1, 7, 9], [2, 3, 40, 50]]]))


def test_coverage_by_hand() -> None:
    gt = np.array([[1, 1, 10, 10], [21, 21, 30, 30], [41, 41, 50, 50]], dtype=float)
    proposals = {
        # IoU 1 with the first; [21, 21, 30, 35] has IoU 100 / 160 = 0.625 with the second.
        "a": np.array([[1, 1, 10, 10], [21, 21, 30, 35]], dtype=float),
        # [1, 1, 10, 20] has IoU 100 / 200 = 0.5 exactly: counted (>= 0.5).
        "b": np.array([[1, 1, 10, 20]], dtype=float),
        "c": np.zeros((0, 4)),
    }
    targets = [Target("a", gt), Target("b", gt[:1]), Target("c", gt[:2]), Target("d", np.zeros((0, 4)))]
    assert coverage(proposals, targets) == pytest.approx(3 / 6)
    assert coverage(proposals, targets, iou=0.6) == pytest.approx(2 / 6)
    with pytest.raises(GoogLeNetError, match="no proposals for image 'e'"):
        coverage(proposals, [Target("e", gt)])


# --------------------------------------------------------------------------- dataset, cache, pool


def test_cache_hit_is_identical_and_keyed_by_method(tmp_path: Path) -> None:
    dataset = FolderDataset(tmp_path, 3)
    method = proposal_method("selective-search-2x")
    path = proposals_cache_path(dataset, method)
    assert not path.exists()
    t0 = time.perf_counter()
    first = cached_proposals(dataset, method)
    computed = time.perf_counter() - t0
    assert path.is_file()
    t0 = time.perf_counter()
    ticks: list[int] = []
    second = cached_proposals(dataset, method, progress=ticks.append)
    read = time.perf_counter() - t0
    assert list(second) == dataset.image_ids == list(first)
    assert all(np.array_equal(first[i], second[i]) and second[i].dtype == np.float64 for i in first)
    assert read < computed / 3 and sum(ticks) == 3
    assert proposals_cache_path(dataset, proposal_method("selective-search")) != path
    assert proposals_cache_path(dataset, proposal_method("selective-search-2x", min_box=10)) != path
    # Changed pixels change the key; a damaged entry is recomputed, not trusted.
    PIL.Image.fromarray(quadrants_scene(7)[0]).save(dataset.image_path(0))
    assert proposals_cache_path(dataset, method) != path
    new_path = proposals_cache_path(dataset, method)
    new_path.parent.mkdir(parents=True, exist_ok=True)
    new_path.write_bytes(b"not an npz")
    again = cached_proposals(dataset, method)
    assert not np.array_equal(again["img00"], first["img00"]) and np.array_equal(
        again["img01"], first["img01"]
    )
    assert np.load(new_path)["counts"].tolist() == [len(again[i]) for i in dataset.image_ids]


def test_worker_processes_give_the_same_proposals(tmp_path: Path) -> None:
    dataset = FolderDataset(tmp_path, 4, suffix=".jpg")
    method = proposal_method("selective-search-2x")
    ticks: list[int] = []
    serial = compute_proposals(dataset, method, workers=0)
    pooled = compute_proposals(dataset, method, workers=2, progress=ticks.append)
    assert list(pooled) == list(serial) and sum(ticks) == 4
    assert all(np.array_equal(serial[i], pooled[i]) for i in serial)


def test_undecodable_image_has_no_proposals(tmp_path: Path) -> None:
    # The commands name such files (datasets.drop_unreadable) or stop at them (--strict-data); the
    # proposals of the others are computed and cached as usual.
    dataset = FolderDataset(tmp_path, 2)
    dataset.image_path(0).write_bytes(b"not a png")
    found = compute_proposals(dataset, proposal_method("selective-search"))
    assert found[dataset.image_ids[0]].shape == (0, 4) and len(found[dataset.image_ids[1]]) > 0


# --------------------------------------------------------------------------- files


def test_proposals_file_round_trip(tmp_path: Path) -> None:
    proposals = {
        "000001": np.array([[1, 1, 20, 30], [5, 6, 100, 80]], dtype=float),
        "dir/000002": np.array([[1.5, 2.25, 40.0, 41.0]]),
        "000003": np.zeros((0, 4)),
    }
    path = write_proposals(tmp_path / "p.json", proposals)
    data = json.loads(path.read_text())
    assert data["000001"] == [[1, 1, 20, 30], [5, 6, 100, 80]] and data["000003"] == []
    back = read_proposals(path)
    assert list(back) == list(proposals)
    assert all(np.array_equal(back[k], proposals[k]) and back[k].shape[1] == 4 for k in proposals)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not valid JSON"),
        ("[[1, 1, 2, 2]]", "expected an object"),
        ('{"a": [[1, 1, 2]]}', "image 'a': expected a list of"),
        ('{"a": [[1, 1, 2, "3"]]}', "image 'a': expected a list of"),
        ('{"a": [[1, 1, 2, 2]], "b": [[5, 1, 2, 2]]}', r"image 'b': box 0 \[5, 1, 2, 2\]"),
        ('{"a": [[1, 1, 2, NaN]]}', "image 'a': box 0"),
    ],
)
def test_bad_proposals_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GoogLeNetError, match=message) as info:
        read_proposals(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(GoogLeNetError, match="cannot read proposals file"):
        read_proposals(tmp_path / "missing.json")


# --------------------------------------------------------------------------- CLI


def test_cli_writes_proposals_and_reports_coverage(tmp_path: Path) -> None:
    voc = write_scene_voc(tmp_path / "voc", quadrants_scene, range(3), "val", QUADRANT_CLASSES)
    out = tmp_path / "out" / "ss.json"
    args = ["proposals", "--data", voc, "--method", "selective-search", "--out", out, "--workers", "1"]
    result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr
    assert "estimate: about" in result.stderr  # the cost said first, to stderr
    proposals = read_proposals(out)
    assert list(proposals) == ["000000", "000001", "000002"]
    assert all(len(b) > 50 for b in proposals.values())
    mean = sum(len(b) for b in proposals.values()) / 3
    assert "3 images" in result.stdout and f"mean proposals per image: {mean:.1f}" in result.stdout
    assert "IoU >= 0.5): 100.0%" in result.stdout
    assert "seconds per image:" in result.stdout and "per core" in result.stdout
    # Second run: the cache, the same file.
    out.unlink()
    again = cli_in_process(*args)
    assert again.returncode == 0, again.stderr
    assert "read from cache" in again.stdout
    assert read_proposals(out).keys() == proposals.keys()
    assert all(np.array_equal(read_proposals(out)[k], proposals[k]) for k in proposals)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    voc = write_scene_voc(tmp_path / "voc", quadrants_scene, range(1), "val", QUADRANT_CLASSES)
    model = tmp_path / "model"
    model.mkdir()
    out = tmp_path / "p.json"
    multibox = cli_in_process(
        "proposals", "--data", voc, "--method", "paper", "--multibox", model, "--out", out
    )
    assert multibox.returncode == 2
    lines = multibox.stderr.strip().splitlines()
    # The MultiBox loader refuses the empty folder, naming it.
    assert len(lines) == 1 and ("needs a trained MultiBox model" in lines[0] or str(model) in lines[0])
    assert not out.exists()
    directory = cli_in_process("proposals", "--data", voc, "--method", "selective-search", "--out", tmp_path)
    assert directory.returncode == 2
    assert directory.stderr.strip().splitlines() == [
        f"googlenet proposals: error: --out {tmp_path} is a directory; give a file name such as "
        f"{tmp_path / 'proposals.json'}"
    ]
