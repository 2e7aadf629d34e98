"""The detector end to end as a user runs it: train-detector -> evaluate-detection --detector -> detect.

One tiny detector (1 member, 1 epoch, 64 px regions of a 6-image built-in detection set) is trained
once for the module; every command runs through the real ``googlenet.cli.main`` in this process
(``python -m googlenet`` itself is tested in test_cli_contract.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from googlenet.detection.detector import read_manifest

from .helpers import check_report_page, cli_in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detector")
    data = root / "data"
    made = cli_in_process("data", "make-builtin-detection", data, "--classes", "2", "--train-images", "4",
               "--val-images", "2", "--image-size", "96", "--workers", "1")  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = root / "det"
    args = ("train-detector", "--data", data, "--out", out, "--members", "1", "--epochs", "1",
            "--batch-size", "16", "--image-size", "64", "--model", "googlenet_bn", "--workers", "0",
            "--proposal-workers", "1", "--precision", "fp32")  # fmt: skip
    result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    # The cost is said first (to stderr, with the log): its regions extrapolated from a few images'
    # proposals, then, once every image's are computed, counted, at the steps' times measured first.
    err = result.stderr
    assert err.count("estimate: about") == 2, err
    first, second = err.index("positive regions extrapolated by objects"), err.index("counted on every image")
    assert first < err.index("to count the regions") < second
    return {"root": root, "data": data, "out": out, "args": args, "stdout": result.stdout}


def test_train_detector_writes_a_manifest_and_resumes(trained: dict[str, Path]) -> None:
    manifest = read_manifest(trained["out"])
    assert manifest.members == ["member_00"]
    assert manifest.proposals["name"] == "selective-search-2x"
    assert manifest.image_size == 64 and len(manifest.class_names) == 2
    # Re-running the same command continues (here: nothing left to do) and keeps the manifest.
    again = cli_in_process(*trained["args"])
    assert again.returncode == 0, again.stderr
    assert "complete, skipped" in again.stderr
    assert read_manifest(trained["out"]) == manifest


def test_evaluate_detection_runs_the_detector(trained: dict[str, Path]) -> None:
    out = trained["root"] / "eval.json"
    result = cli_in_process("evaluate-detection", "--data", trained["data"], "--detector", trained["out"],
                 "--rule", "ilsvrc", "--json", out, "--workers", "1", "--no-estimate")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "estimate" not in result.stderr  # --no-estimate: the work starts at once
    assert "mAP" in result.stdout and "selective-search-2x" in result.stdout
    record = json.loads(out.read_text())
    (run,) = record["runs"]
    assert run["members"] == 1 and 0.0 <= run["mAP"] <= 1.0
    assert run["proposals_per_image"] > 0 and 0.0 <= run["coverage"] <= 1.0
    assert record["mAP"] == run["mAP"]


def test_detect_names_bad_files_and_processes_the_rest(trained: dict[str, Path], tmp_path: Path) -> None:
    good = sorted((trained["data"] / "JPEGImages").glob("val_*.jpg"))[0]
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    drawn = tmp_path / "drawn"
    result = cli_in_process("detect", good, text, empty, truncated, tmp_path / "missing.jpg", "--detector",
                 trained["out"], "--json", "-", "--draw", drawn, "--score-threshold", "0")  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("googlenet detect: error:")]
    assert len(errors) == 4, result.stderr
    for name in ("notes.jpg", "empty.jpg", "cut.jpg", "missing.jpg"):
        assert sum(name in line for line in errors) == 1
    assert "Traceback" not in result.stderr
    # --json is a detections file: every detection of the one readable image, named by its stem.
    for det in json.loads(result.stdout):
        assert det["image_id"] == good.stem
        assert (
            set(det) == {"image_id", "label", "score", "bbox"}
            and det["label"] in read_manifest(trained["out"]).class_names
        )
    assert (drawn / f"{good.stem}.png").is_file()


def test_detect_json_is_what_evaluate_detection_scores(trained: dict[str, Path], tmp_path: Path) -> None:
    # detect --json on the val images of the built-in detection set, then evaluate-detection
    # --detections on that file: the same scores as evaluate-detection --detector on the split.
    images = sorted((trained["data"] / "JPEGImages").glob("val_*.jpg"))
    dets = tmp_path / "dets.json"
    found = cli_in_process("detect", *images, "--detector", trained["out"], "--json", dets,
                           "--score-threshold", "0.9")  # fmt: skip
    assert found.returncode == 0, found.stderr
    scored = tmp_path / "file.json"
    by_file = cli_in_process("evaluate-detection", "--data", trained["data"], "--detections", dets,
                             "--rule", "ilsvrc", "--json", scored)  # fmt: skip
    assert by_file.returncode == 0, by_file.stderr
    direct = tmp_path / "run.json"
    run = ("evaluate-detection", "--data", trained["data"], "--detector", trained["out"], "--rule", "ilsvrc")
    by_detector = cli_in_process(*run, "--json", direct, "--workers", "0", "--no-estimate")
    assert by_detector.returncode == 0, by_detector.stderr
    file_record, detector_record = json.loads(scored.read_text()), json.loads(direct.read_text())
    # Every detection is in the file, not only those above --score-threshold (printing and drawing).
    assert file_record["num_detections"] == detector_record["num_detections"] > 0
    assert file_record["mAP"] == pytest.approx(detector_record["mAP"], abs=1e-9)
    assert file_record["AP"] == pytest.approx(detector_record["AP"], abs=1e-9)
    # The COCO results format of the same detections: category ids and [x, y, w, h] boxes.
    coco = tmp_path / "coco.json"
    assert cli_in_process("detect", *images, "--detector", trained["out"], "--json", coco, "--format",
                          "coco").returncode == 0  # fmt: skip
    ours, theirs = json.loads(dets.read_text()), json.loads(coco.read_text())
    names = read_manifest(trained["out"]).class_names
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        x1, y1, x2, y2 = a["bbox"]
        assert b["bbox"] == pytest.approx([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])
        assert b["category_id"] == names.index(a["label"]) + 1 and b["image_id"] == a["image_id"]


def test_bad_detector_input_is_one_line(trained: dict[str, Path], tmp_path: Path) -> None:
    for args, words in (
        (("detect", trained["data"] / "classes.txt", "--detector", tmp_path), "not a detector"),
        (
            (
                "evaluate-detection",
                "--data",
                trained["data"],
                "--detector",
                trained["out"],
                "--rule",
                "voc12",
                "--members",
                "3",
            ),
            "--members 3",
        ),
        (
            ("train-detector", "--data", trained["data"], "--out", tmp_path / "x", "--members", "0"),
            "--members",
        ),
    ):
        result = cli_in_process(*args)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "x").exists()
    # Only say the cost, or skip saying it: not both (argparse's usage error).
    both = cli_in_process("proposals", "--data", trained["data"], "--dry-run", "--no-estimate")
    assert both.returncode == 2 and "--no-estimate: not allowed with argument --dry-run" in both.stderr


def test_report_renders_a_detector(trained: dict[str, Path]) -> None:
    out = trained["root"] / "report"
    result = cli_in_process("report", trained["out"], "--out", out)
    assert result.returncode == 0, result.stderr
    index = (out / "index.md").read_text()
    assert "Average precision per class" in index and "mAP" in index
    for picture in ("pr_curves.png", "detections.png"):
        assert (out / picture).stat().st_size > 1000
    # index.html: the report's title, the AP table as an HTML table, every picture present
    check_report_page(out, "GoogLeNet detector report")
    assert "| mean (mAP) |" in index
    # An evaluation of another detector is refused, naming it; the earlier report stays whole.
    other = trained["root"] / "other.json"
    other.write_text('{"detector": "/elsewhere", "runs": [{"members": 1}]}')
    bad = cli_in_process("report", trained["out"], "--out", out, "--evaluation", other)
    assert bad.returncode == 2 and "/elsewhere" in bad.stderr and "Traceback" not in bad.stderr
    assert (out / "index.md").read_text() == index


def test_members_may_start_from_their_own_initial_weights(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # train-detector hands --same-init / --no-same-init to train_ensemble (whose member_config test
    # covers what it does with it); the default is the paper's shared initialisation.
    import googlenet.training.ensemble as ensemble

    seen = []
    monkeypatch.setattr(ensemble, "train_ensemble", lambda *a, same_init, **k: seen.append(same_init))
    base = ("train-detector", "--data", trained["data"], "--members", "2", "--epochs", "1", "--model",
            "googlenet_bn", "--proposal-workers", "1", "--image-size", "64",
            "--batch-size", "16", "--no-estimate")  # fmt: skip
    for extra, out in (((), "shared"), (("--no-same-init",), "own")):
        result = cli_in_process(*base, *extra, "--out", tmp_path / out)
        assert result.returncode == 0, result.stderr[-2000:]
    assert seen == [True, False]


def test_report_shows_every_rule_and_the_recall_of_the_evaluated_proposals(trained: dict[str, Path]) -> None:
    evaluation = trained["root"] / "all.json"
    scored = cli_in_process("evaluate-detection", "--data", trained["data"], "--detector", trained["out"],
                            "--rule", "all", "--proposals", "selective-search",
                            "--json", evaluation, "--workers", "1", "--no-estimate")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    out = trained["root"] / "report-all"
    result = cli_in_process("report", trained["out"], "--out", out, "--evaluation", evaluation)
    assert result.returncode == 0, result.stderr
    index = (out / "index.md").read_text()
    record = json.loads(evaluation.read_text())
    first = record["runs"][0]["evaluations"]
    assert f"ilsvrc {100 * first['ilsvrc']['mAP']:.2f}% / voc07" in index
    # The recall section: the detector's own proposals (selective-search-2x) and the method the
    # evaluation computed (so its proposals are in the cache).
    section = index[index.index("Proposals: recall against their number") :]
    assert "| selective-search-2x | selective-search |" in section and "AR, 100 proposals" in section
    assert (out / "proposal_recall.png").stat().st_size > 1000
