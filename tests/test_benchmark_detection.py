"""benchmarks/detection.py runs end to end and writes what it promises (its format, never its numbers).

The script runs as a real subprocess in ``--tiny`` mode (1 epoch, 64 px regions, images at their own
size) on a built-in detection set of 4 train / 2 val images made here; both detectors are trained and
evaluated with the ILSVRC and VOC2012 rules, and the checks are on its JSON and its table.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "detection.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    tmp = tmp_path_factory.mktemp("bench-detection")
    data = tmp / "data"
    made = run_cli("data", "make-builtin-detection", data, "--classes", "2", "--train-images", "4",
                   "--val-images", "2", "--image-size", "96", "--workers", "1")  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp / "result.json"
    env = {**os.environ, "GOOGLENET_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": "2"}
    command = [
        sys.executable,
        str(SCRIPT),
        "--tiny",
        "--data",
        str(data),
        "--threads",
        "2",
        "--json",
        str(out),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_json_has_both_contenders_scored_by_our_metric(tiny) -> None:
    _, report = tiny
    assert report["format"] == "googlenet-benchmark-detection"
    assert report["settings"]["train_images"] == 4 and report["settings"]["val_images"] == 2
    assert set(report["contenders"]) == {"ours", "peer"}
    for c in report["contenders"].values():
        assert set(c["mAP"]) == {"ilsvrc", "voc12"}
        for rule, value in c["mAP"].items():
            assert 0.0 <= value <= 1.0
            assert value == pytest.approx(sum(c["AP"][rule].values()) / len(c["AP"][rule]))
        assert c["images_per_s"] > 0 and math.isfinite(c["images_per_s"])
        assert c["seconds_per_image"] == pytest.approx(1 / c["images_per_s"])
        assert c["training"]["seconds"] > 0 and c["training"]["epochs"] == pytest.approx(1.0)


def test_ratios_are_ours_over_the_peer(tiny) -> None:
    _, report = tiny
    ours, peer, ratios = report["contenders"]["ours"], report["contenders"]["peer"], report["ratios"]
    assert ratios["images_per_s"] == pytest.approx(ours["images_per_s"] / peer["images_per_s"])
    assert ratios["training_seconds"] == pytest.approx(
        ours["training"]["seconds"] / peer["training"]["seconds"]
    )
    for rule in ("ilsvrc", "voc12"):
        expected = ours["mAP"][rule] / peer["mAP"][rule] if peer["mAP"][rule] > 0 else None
        assert ratios[f"mAP_{rule}"] == (pytest.approx(expected) if expected is not None else None)


def test_each_side_is_the_design_it_names(tiny) -> None:
    _, report = tiny
    ours, peer = report["contenders"]["ours"], report["contenders"]["peer"]
    # Ours classifies every proposal: the per-image stages add up to no more than the whole.
    stages = ours["stage_seconds_per_image"]
    assert ours["regions_per_image"] > 0 and all(v >= 0 for v in stages.values())
    assert sum(stages.values()) <= ours["seconds_per_image"] * 1.05
    # The peer: one feature map, anchors in powers of two, images at their own size in --tiny.
    arch = peer["architecture"]
    assert arch["min_size"] == 96 and len(arch["aspect_ratios"]) == 3
    assert all(math.log2(s).is_integer() for s in arch["anchor_sizes"])
    assert peer["training"]["steps"] == 2  # 4 images at torchvision's 2 per batch, 1 epoch


def test_table_shows_both_and_the_ratio_column(tiny) -> None:
    proc, _ = tiny
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert "ours (R-CNN)" in table[0] and "peer (Faster R-CNN)" in table[0] and "ours / peer" in table[0]
    names = [line.split("|")[1].strip() for line in table[2:]]
    assert names == [
        "mAP, ILSVRC rule (%)",
        "mAP, VOC2012 rule (%)",
        "images/s (inference)",
        "training s",
        "training epochs",
    ]


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "missing"), "--epochs", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "missing" in proc.stderr and "Traceback" not in proc.stderr
