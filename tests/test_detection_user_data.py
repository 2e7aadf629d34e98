"""Detection on a user's own VOC folder: unreadable images, one class list, a typo class, paths, disk.

The folder is hand-made as a user would make it (real JPEGs of discs and squares, XML annotations):
the train split holds a truncated JPEG, an empty ``.jpg`` and an object named ``sqaure``; the val
split has no square at all and an empty ``.jpg``. One tiny detector (1 member, 1 epoch, 64 px
regions) is trained on it once for the module, from a relative ``--data`` path.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest

from googlenet.detection.datasets import (
    class_warnings,
    drop_unreadable,
    open_detection_dataset,
    parse_classes,
)
from googlenet.detection.detector import read_manifest
from googlenet.errors import GoogLeNetError
from googlenet.runs import RunLayout

from .helpers import cli_in_process, write_voc

SIDE = 96
DISC, SQUARE = (12, 12, 44, 44), (52, 50, 86, 84)
TRAIN = {"t1": "square", "t2": "square", "t3": "sqaure", "t4": "square", "trunc": "square", "empty": "square"}
VAL = {"v1": None, "v2": None, "vempty": None}  # discs only: the val split has no square


def _image(seed: int) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    image = PIL.Image.fromarray(rng.integers(90, 140, (SIDE, SIDE, 3), dtype=np.uint8))
    draw = PIL.ImageDraw.Draw(image)
    draw.ellipse([DISC[0] - 1, DISC[1] - 1, DISC[2] - 1, DISC[3] - 1], fill=(220, 40, 40))
    draw.rectangle([SQUARE[0] - 1, SQUARE[1] - 1, SQUARE[2] - 1, SQUARE[3] - 1], fill=(30, 60, 210))
    return image


def make_voc(root: Path) -> Path:
    """``root`` as a VOC folder (no classes.txt, no per-class lists: the classes are the splits')."""
    for split, images in (("train", TRAIN), ("val", VAL)):
        pictures = {}
        for n, (image_id, second) in enumerate(images.items()):
            objects = [("disc", DISC, False)] + ([(second, SQUARE, False)] if second else [])
            pictures[image_id] = (_image(seed=n + 10 * (split == "val")), objects)
        write_voc(root, pictures, {split: list(images)}, quality=92)
    jpeg = (root / "JPEGImages" / "trunc.jpg").read_bytes()
    (root / "JPEGImages" / "trunc.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # cut mid-scan
    for name in ("empty", "vempty"):
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(b"")
    return root


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "mydata")


# --------------------------------------------------------------------------- the data alone


def test_one_class_list_for_every_split_and_a_warning_naming_the_typo(voc: Path) -> None:
    train, val = (open_detection_dataset(voc, split) for split in ("train", "val"))
    # The val split has no square, yet both splits have the one list: the names of both splits.
    assert train.class_names == val.class_names == ["disc", "sqaure", "square"]
    assert "splits train, val" in train.class_source
    lines = class_warnings({"train": train, "val": val})
    (typo,) = [line for line in lines if "'sqaure'" in line]
    assert (
        "only 1 object" in typo and "train split only" in typo and str(voc / "Annotations" / "t3.xml") in typo
    )
    (square,) = [line for line in lines if "'square'" in line]
    assert square.startswith("class 'square' has objects in the train split only (")  # 5: not rare
    assert not [line for line in lines if "'disc'" in line]


def test_per_class_lists_or_classes_fix_the_list_and_skip_the_typo(voc: Path) -> None:
    for name in ("disc", "square"):
        (voc / "ImageSets" / "Main" / f"{name}_train.txt").write_text("t1 1\n")
    train = open_detection_dataset(voc, "train")
    assert train.class_names == ["disc", "square"] and "per-class lists" in train.class_source
    (skipped,) = [what for what, why in train.skipped if "unknown class 'sqaure'" in why]
    assert skipped.startswith(str(voc / "Annotations" / "t3.xml"))
    with pytest.raises(GoogLeNetError, match=r"t3.xml: object 1 \(sqaure\): unknown class"):
        open_detection_dataset(voc, "train", strict=True)
    assert parse_classes("square, disc") == ["square", "disc"]
    listed = voc.parent / "names.txt"
    listed.write_text("disc\nsquare\n")
    assert parse_classes(str(listed)) == ["disc", "square"]
    for bad in ("a,,a", "missing.txt"):
        with pytest.raises(GoogLeNetError, match="--classes"):
            parse_classes(bad)


def test_unreadable_images_are_named_once_and_left_out(voc: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = open_detection_dataset(voc, "train")
    with caplog.at_level(logging.WARNING, logger="googlenet.detection"):
        readable = drop_unreadable(train)
    assert readable.image_ids == ["t1", "t2", "t3", "t4"]
    named = [path for path, _ in readable.unreadable]
    assert named == [str(voc / "JPEGImages" / "trunc.jpg"), str(voc / "JPEGImages" / "empty.jpg")]
    warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warned) == 2 and "truncated" in warned[0] and "empty.jpg" in warned[1]
    with pytest.raises(GoogLeNetError, match=r"unreadable image .*trunc.jpg .* and 1 more .*--strict-data"):
        drop_unreadable(train, strict=True)


def test_multibox_training_leaves_unreadable_images_out(voc: Path, tmp_path: Path) -> None:
    from googlenet.detection.multibox import MultiBoxOptions, multibox_task
    from googlenet.training.config import TrainConfig

    config = TrainConfig(
        data=str(voc), out=str(tmp_path / "mb"), model="googlenet_bn", image_size=64, workers=0
    )
    task = multibox_task(MultiBoxOptions(head="pool", num_priors=2))  # 2 box shapes: 2 priors
    data = task.build_data(config)
    assert data.train.dataset.image_ids == ["t1", "t2", "t3", "t4"] and data.val.dataset.image_ids == [
        "v1",
        "v2",
    ]
    assert [Path(p).name for p, _ in data.train.dataset.unreadable] == ["trunc.jpg", "empty.jpg"]
    with pytest.raises(GoogLeNetError, match=r"unreadable image .*trunc\.jpg"):
        task.build_data(TrainConfig(**{**config.to_dict(), "strict_data": True}))


# --------------------------------------------------------------------------- train-detector


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("userdata")
    make_voc(root / "mydata")
    args = ("train-detector", "--data", "mydata", "--out", "det", "--members", "1", "--epochs", "1",
            "--batch-size", "16", "--image-size", "64", "--model", "googlenet_bn", "--workers", "0",
            "--proposal-workers", "1", "--precision", "fp32", "--num-threads", "1",
            "--no-estimate")  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # --data and --out relative to where the user stands
        result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"root": root, "data": root / "mydata", "out": root / "det", "args": args, "stderr": result.stderr}


def test_train_detector_names_skipped_files_once_and_records_them(trained: dict) -> None:
    stderr, data = trained["stderr"], trained["data"]
    for name in ("trunc.jpg", "empty.jpg", "vempty.jpg"):
        assert stderr.count(f"skipped unreadable image {data / 'JPEGImages' / name}") == 1, stderr
    assert "3 classes (disc, sqaure, square) from the names of the objects in the splits train, val" in stderr
    assert "class 'sqaure' has only 1 object" in stderr and str(data / "Annotations" / "t3.xml") in stderr
    manifest = json.loads((trained["out"] / "detector.json").read_text())
    assert manifest["data"] == str(data)  # absolute: the detector works from any folder
    assert manifest["unreadable_images"] == {
        "train": [str(data / "JPEGImages" / "trunc.jpg"), str(data / "JPEGImages" / "empty.jpg")],
        "val": [str(data / "JPEGImages" / "vempty.jpg")],
    }
    index = json.loads((trained["out"] / "ensemble.json").read_text())
    assert index["kind"] == "detector" and index["class_names"] == manifest["class_names"]
    # A finished member keeps its weights, not its checkpoints (train-detector's --keep-checkpoints none).
    member = RunLayout(trained["out"] / "member_00")
    assert member.weights.is_file() and member.raw_weights.is_file()
    assert not member.checkpoints.exists() and not member.best_weights.exists()


def test_evaluation_scores_unreadable_images_as_misses_and_skips_absent_classes(
    trained: dict, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    result = cli_in_process("evaluate-detection", "--data", trained["data"], "--detector", trained["out"],
                            "--rule", "voc12", "--json", out, "--workers", "0", "--no-estimate")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (warned,) = [line for line in result.stderr.splitlines() if "vempty.jpg" in line]
    assert "scored as an image without detections" in warned
    record = json.loads(out.read_text())
    assert record["num_unreadable"] == 1 and record["unreadable"] == [
        str(trained["data"] / "JPEGImages" / "vempty.jpg")
    ]
    # vempty's disc counts as a miss: 3 discs in val, however many the detector finds.
    assert record["num_gt"] == {"disc": 3, "sqaure": 0, "square": 0}
    assert set(record["AP"]) == {"disc"}  # classes without ground truth here are not scored (devkits)
    assert record["not_scored"] == ["sqaure", "square"]
    assert "not scored (no ground truth in this split, as the devkits): sqaure, square" in result.stdout
    assert "1 unreadable image(s) scored without detections" in result.stdout
    strict = cli_in_process("evaluate-detection", "--data", trained["data"], "--detector", trained["out"],
                            "--rule", "voc12", "--strict-data", "--workers", "0",
                            "--no-estimate")  # fmt: skip
    assert strict.returncode == 2 and "vempty.jpg" in strict.stderr and "Traceback" not in strict.stderr


def test_report_and_detect_work_from_another_folder(
    trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not where train-detector ran: the manifest's data path is absolute
    report = cli_in_process("report", trained["out"], "--out", "report")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "index.md").is_file()
    image = trained["data"] / "JPEGImages" / "v1.jpg"
    found = cli_in_process("detect", image, "--detector", trained["out"], "--json", "dets.json")
    assert found.returncode == 0, found.stderr
    assert found.stdout == ""  # --json FILE instead of text on stdout
    assert json.loads((tmp_path / "dets.json").read_text())  # every detection, whatever the threshold


def test_proposals_leave_unreadable_images_out(
    trained: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "proposals.json"
    args = ("proposals", "--data", trained["data"], "--split", "train", "--method", "selective-search-2x",
            "--out", out, "--workers", "0", "--no-estimate")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="googlenet.detection"):  # stderr, outside pytest
        result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr
    assert "2 unreadable image(s) left out" in result.stdout
    warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert [m.split()[3].rsplit("/", 1)[-1] for m in warned] == ["trunc.jpg", "empty.jpg"]  # each once
    assert sorted(json.loads(out.read_text())) == ["t1", "t2", "t3", "t4"]
    strict = cli_in_process(*args, "--strict-data")
    assert strict.returncode == 2 and "trunc.jpg" in strict.stderr and "Traceback" not in strict.stderr


def test_a_rerun_with_another_recipe_names_the_field(trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(trained["root"])
    same = cli_in_process(*trained["args"])  # the same command: the relative --data is the same data
    assert same.returncode == 0 and "complete, skipped" in same.stderr, same.stderr[-2000:]
    again = cli_in_process(*trained["args"], "--lr", "0.002")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "--lr 0.01, not 0.002" in again.stderr


def test_a_failed_train_detector_leaves_nothing(trained: dict, tmp_path: Path) -> None:
    # googlenet_bn weights into a plain googlenet: refused when the model is built, before any write.
    out = tmp_path / "det"
    bad = cli_in_process("train-detector", "--data", trained["data"], "--out", out, "--model", "googlenet",
                         "--init-from", trained["out"] / "member_00", "--members", "1", "--epochs", "1",
                         "--image-size", "64", "--workers", "0", "--proposal-workers", "1",
                         "--no-estimate")  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert not out.exists()
    # strict data: the first unreadable image stops it, naming the file, before any write
    strict = cli_in_process("train-detector", "--data", trained["data"], "--out", out, "--strict-data")
    assert strict.returncode == 2 and "trunc.jpg" in strict.stderr and not out.exists()


def test_an_older_manifest_with_a_relative_data_path_still_reads(trained: dict, tmp_path: Path) -> None:
    older = tmp_path / "det"
    shutil.copytree(trained["out"], older)
    manifest = json.loads((older / "detector.json").read_text())
    (older / "detector.json").write_text(json.dumps({**manifest, "data": "mydata"}))  # as typed
    assert read_manifest(older).data == str(trained["data"])  # the member's config.yaml is absolute


def test_report_on_an_unfinished_detector_says_so(trained: dict, tmp_path: Path) -> None:
    unfinished = tmp_path / "det"
    unfinished.mkdir()
    (unfinished / "ensemble.json").write_text((trained["out"] / "ensemble.json").read_text())
    result = cli_in_process("report", unfinished, "--out", tmp_path / "report")
    assert result.returncode == 2, result.stderr
    assert "holds no detector.json: train-detector has not finished there" in result.stderr
