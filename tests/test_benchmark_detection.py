"""benchmarks/detection.py runs end to end and writes what it promises (its format, never its numbers).

The script's ``main`` runs in this process in ``--tiny`` mode (1 epoch, 64 px regions, images at
their own 64 px) on the built-in detection set of 4 train / 2 val images that ``--tiny`` makes (in
the suite's cache); both detectors are trained and evaluated with the ILSVRC and VOC2012 rules, and
the checks are on its JSON and its table.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from .helpers import REPO, threads_kept

SCRIPT = REPO / "benchmarks" / "detection.py"
sys.path.insert(0, str(SCRIPT.parent))  # the script imports benchmarks/common.py


def _load_script():
    spec = importlib.util.spec_from_file_location("benchmark_detection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_script()


# The suite's torch threads (conftest.py sets them).
THREADS = str(torch.get_num_threads())


def shared_cache(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "googlenet-cache"  # conftest's: the tiny set is made once


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    tmp = tmp_path_factory.mktemp("bench-detection")
    out = tmp / "result.json"
    stdout = io.StringIO()
    # The script sets both libraries' threads; the rest of the suite keeps its own.
    with threads_kept(), pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setenv("GOOGLENET_CACHE", str(shared_cache(tmp_path_factory)))
        code = bench.main(["--tiny", "--data", "builtin", "--threads", THREADS, "--json", str(out)])
    assert code == 0
    return stdout.getvalue(), json.loads(out.read_text())


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
    assert arch["min_size"] == 64 and len(arch["aspect_ratios"]) == 3 and arch["init"] is None
    assert all(math.log2(s).is_integer() for s in arch["anchor_sizes"])
    assert peer["training"]["steps"] == 2  # 4 images at torchvision's 2 per batch, 1 epoch


def test_table_shows_both_and_the_ratio_column(tiny) -> None:
    stdout, report = tiny
    json_out = report["settings"]["json"]
    assert report["command"].endswith(f"--tiny --data builtin --threads {THREADS} --json {json_out}")
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert "ours (R-CNN)" in table[0] and "peer (Faster R-CNN)" in table[0] and "ours / peer" in table[0]
    names = [line.split("|")[1].strip() for line in table[2:]]
    assert names == [
        "mAP, ILSVRC rule (%)",
        "mAP, VOC2012 rule (%)",
        "images/s (inference)",
        "training s",
        "training epochs",
    ]


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--data", str(tmp_path / "missing"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchmarks/detection.py: error:") and "missing" in err and err.count("\n") == 1


def test_init_from_weights_of_another_variant_stops_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The peer's backbone is loaded by load_pretrained (ours' init_from) before ours trains: a paper
    # GoogLeNet's weights do not fit googlenet_bn, and the message says which --model they need.
    import googlenet
    from googlenet.weights.store import save_weights

    weights = tmp_path / "paper.safetensors"
    save_weights(googlenet.create_model("googlenet", num_classes=3), weights)
    assert bench.main(["--tiny", "--data", "builtin", "--init-from", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "--init-from" in err and "--model googlenet" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def untrained_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-member detector of the tiny set with random members (the cost, not the accuracy, is tested)."""
    import googlenet
    from googlenet.detection.builtin import ensure_builtin_detection
    from googlenet.detection.datasets import open_detection_dataset
    from googlenet.detection.detector import DetectorManifest, write_manifest
    from googlenet.detection.proposals import proposal_method
    from googlenet.detection.training import member_dirs
    from googlenet.runs import RunLayout
    from googlenet.weights.store import save_weights

    data = ensure_builtin_detection(shared_cache(tmp_path_factory), **bench.TINY_DATA, workers=1)
    classes = list(open_detection_dataset(data, "train").class_names)
    out = tmp_path_factory.mktemp("untrained-detector")
    names = member_dirs(out, 2)
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        model = googlenet.create_model("googlenet_bn", num_classes=len(classes) + 1)
        model.meta.input_size = (3, 64, 64)
        layout = RunLayout(out / name)
        layout.weights.parent.mkdir(parents=True, exist_ok=True)
        save_weights(model, layout.weights)
    method = proposal_method(bench.PROPOSALS)
    write_manifest(
        out, DetectorManifest(classes, names, method.settings(), image_size=64, variant="googlenet_bn")
    )
    return out


def test_stage_costs_per_backend_and_members(
    untrained_detector: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "costs.json"
    # torch only: onnxruntime and OpenVINO are the Predictor's, tested with it (an export costs ~10 s).
    argv = ["--tiny", "--data", "builtin", "--stage-costs", str(untrained_detector), "--images", "2",
            "--backends", "torch", "--members", "1", "2", "--threads", "1", "--json", str(out)]  # fmt: skip
    with threads_kept():
        assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["format"] == "googlenet-benchmark-detection-stages"
    rows = report["rows"]
    assert [(r["members"], r["backend"]) for r in rows] == [(1, "torch/fp32"), (2, "torch/fp32")]
    # Every setting ran on the same boxes: one proposal cost, one region count.
    assert len({r["seconds_per_image"]["proposals"] for r in rows}) == 1
    assert len({r["regions_per_image"] for r in rows}) == 1 and rows[0]["regions_per_image"] > 0
    for r in rows:
        t = r["seconds_per_image"]
        assert set(t) == {"proposals", "warp", "network", "nms"} and min(t.values()) >= 0
        assert r["total_seconds_per_image"] == pytest.approx(sum(t.values()))
        assert r["overhead_ratio"] == pytest.approx((t["warp"] + t["nms"]) / t["network"])
        assert 0.0 <= r["mAP_ilsvrc"] <= 1.0
    assert report["settings"]["val_images"] == 2 and report["environment"]["torch_threads"] == 1
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows) and "| 2 | torch/fp32 |" in table[-1]


# --------------------------------------------------------------------------- --budget plateau


def test_early_stopping_rule_by_hand() -> None:
    # A later epoch must be strictly better to become the best; patience counts the epochs after it.
    assert bench.best_epoch([]) == 0
    assert bench.best_epoch([0.1, 0.3, 0.3, 0.2]) == 2
    assert bench.stop_reason([], patience=2, max_epochs=5) is None
    assert bench.stop_reason([0.1, 0.3, 0.3], patience=2, max_epochs=5) is None
    assert bench.stop_reason([0.1, 0.3, 0.3, 0.2], patience=2, max_epochs=5) == "patience"
    assert bench.stop_reason([0.1, 0.2, 0.3, 0.4, 0.5], patience=2, max_epochs=5) == "max_epochs"
    assert bench.stop_reason([0.0, 0.0], patience=1, max_epochs=5) == "patience"  # equal is no gain
    # A time limit stops a side still climbing (the run's minutes, checked after each epoch).
    assert bench.stop_reason([0.1, 0.2], 2, 5, minutes=59.0, max_minutes=60.0) is None
    assert bench.stop_reason([0.1, 0.2], 2, 5, minutes=60.0, max_minutes=60.0) == "max_minutes"
    assert bench.stop_reason([0.1, 0.2], 2, 5, minutes=1e9) is None  # no limit by default


@pytest.fixture(scope="module")
def tiny_plateau(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    tmp = tmp_path_factory.mktemp("bench-detection-plateau")
    out, png, docs = tmp / "result.json", tmp / "curves.png", tmp / "doc.md"
    stdout = io.StringIO()
    argv = ["--tiny", "--data", "builtin", "--budget", "plateau", "--max-epochs", "2", "--patience", "2",
            "--threads", THREADS, "--json", str(out), "--plot", str(png), "--docs", str(docs)]  # fmt: skip
    with threads_kept(), pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setenv("GOOGLENET_CACHE", str(shared_cache(tmp_path_factory)))
        code = bench.main(argv)
    assert code == 0
    return stdout.getvalue(), json.loads(out.read_text()), tmp


def test_plateau_result_follows_its_schema_and_renders(tiny_plateau) -> None:
    stdout, result, tmp = tiny_plateau
    bench.C.check_result(result, bench.NAME, bench.SCHEMA_VERSION, bench.SCHEMA)
    assert bench.render(result) in stdout  # what was printed is the result's rendering ...
    assert bench.render(result) in (tmp / "doc.md").read_text()  # ... and its section of --docs
    assert (tmp / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    broken = {**result, "contenders": {**result["contenders"], "peer": {"name": "peer"}}}
    with pytest.raises(bench.C.SchemaError, match=r"result\.contenders\.peer: missing key"):
        bench.render(broken)


def test_plateau_curves_stop_by_the_rule_and_keep_the_best_epoch(tiny_plateau) -> None:
    _, result, _ = tiny_plateau
    assert result["settings"]["max_epochs"] == 2 and result["settings"]["patience"] == 2
    for c in result["contenders"].values():
        curve = c["curve"]
        values = [p["mAP"]["ilsvrc"] for p in curve]
        # Every epoch trained is scored, under every rule; the side stopped where the rule says.
        assert [p["epoch"] for p in curve] == list(range(1, len(curve) + 1)) and c["epochs"] == len(curve)
        assert all(set(p["mAP"]) == {"ilsvrc", "voc07", "voc12", "coco"} for p in curve)
        assert all(p["mAP"]["coco"] == pytest.approx(p["coco"]["AP"]) for p in curve)
        assert bench.stop_reason(values, 2, 2) == c["stopped_by"]
        assert bench.stop_reason(values[:-1], 2, 2) is None
        assert c["best_epoch"] == bench.best_epoch(values)
        # Seconds accumulate; the seconds to the plateau are those of its best epoch.
        seconds = [p["training_seconds"] for p in curve]
        assert seconds == sorted(seconds) and seconds[0] > 0 and c["training_seconds"] == seconds[-1]
        assert c["seconds_to_best"] == seconds[c["best_epoch"] - 1]
        assert c["final"]["images_per_s"] == pytest.approx(1 / c["final"]["seconds_per_image"])
    # The final scores are the best epoch's weights again, from the raw image: the peer's exactly,
    # ours' through Selective Search afresh (the same boxes as the cached ones it was scored on).
    peer, ours = result["contenders"]["peer"], result["contenders"]["ours"]
    assert peer["final"]["mAP"] == peer["curve"][peer["best_epoch"] - 1]["mAP"]
    best = ours["curve"][ours["best_epoch"] - 1]["mAP"]
    assert ours["final"]["mAP"] == pytest.approx(best, abs=1e-3)
    # Ours' second epoch continued the first (fit resumed on the member), not a new run.
    assert ours["training"]["epochs"] == 2 and ours["curve"][1]["train_loss"] < ours["curve"][0]["train_loss"]
    assert peer["training"]["steps"] == 4  # 2 epochs of 4 images at 2 per batch
    ratios = result["ratios"]
    assert ratios["seconds_to_best"] == pytest.approx(ours["seconds_to_best"] / peer["seconds_to_best"])
    if peer["final"]["mAP"]["ilsvrc"] > 0:
        assert ratios["mAP_ilsvrc"] == pytest.approx(
            ours["final"]["mAP"]["ilsvrc"] / peer["final"]["mAP"]["ilsvrc"]
        )
