"""``googlenet evaluate-detection`` through its real ``main`` in this process, on a tiny PASCAL VOC folder
written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detections import read_detections
from googlenet.detection.metrics import DetectionEvaluation, evaluate_detections

from .helpers import cli_in_process, one_error_line, write_voc

CLASSES = ["cat", "dog"]
# image id -> [(class, [xmin, ymin, xmax, ymax] inclusive 1-based, difficult)]
OBJECTS = {
    "000001": [("cat", [10, 10, 60, 60], False), ("dog", [70, 20, 120, 90], False)],
    "000002": [("cat", [5, 5, 40, 40], False), ("dog", [50, 50, 100, 100], True)],
    "000003": [("dog", [20, 20, 90, 90], False)],
}
DETECTIONS = [
    {"image_id": "000001", "label": "cat", "bbox": [10, 10, 60, 60], "score": 0.9},  # TP
    {"image_id": "000003", "label": "cat", "bbox": [1, 1, 30, 30], "score": 0.8},  # FP: no cat there
    {"image_id": "000002", "label": "cat", "bbox": [5, 5, 40, 40], "score": 0.7},  # TP
    {"image_id": "000002", "label": "dog", "bbox": [50, 50, 100, 100], "score": 0.95},  # the difficult dog
    {"image_id": "000003", "label": "dog", "bbox": [21, 20, 90, 91], "score": 0.6},  # TP
]
# cat under every rule: TP FP TP over 2 -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
# dog, voc12: the difficult match is ignored, one TP of 2 positives -> 1/2; mAP (5/6 + 1/2) / 2.
# dog, ilsvrc: the difficult dog is ordinary ground truth: TP TP of 3 -> 2/3; mAP (5/6 + 2/3) / 2.
EXPECTED_MAP = {"voc12": (5 / 6 + 1 / 2) / 2, "ilsvrc": (5 / 6 + 2 / 3) / 2}


@pytest.fixture
def voc(tmp_path: Path) -> tuple[Path, Path]:
    picture = Image.new("RGB", (160, 120), (90, 120, 150))
    images = {image_id: (picture, objects) for image_id, objects in OBJECTS.items()}
    root = write_voc(tmp_path / "voc", images, {"val": list(OBJECTS)}, classes=CLASSES)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(DETECTIONS))
    return root, dets


def printed_map(stdout: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith("mAP ")]
    return line.split()[1]


@pytest.mark.parametrize("rule", ["voc12", "ilsvrc"])
def test_evaluate_detection_prints_and_writes_the_library_map(
    voc: tuple[Path, Path], tmp_path: Path, rule: str
) -> None:
    root, dets = voc
    out = tmp_path / "new" / "folder" / "eval.json"
    proc = cli_in_process(
        "evaluate-detection", "--data", root, "--detections", dets, "--rule", rule, "--json", out
    )
    assert proc.returncode == 0, proc.stderr
    dataset = open_detection_dataset(root, "val")
    library = evaluate_detections(
        read_detections(dets, dataset.class_names, dataset.image_ids),
        dataset.targets(),
        dataset.class_names,
        rule,
        blacklist=dataset.blacklist,
    )
    assert library.mAP == pytest.approx(EXPECTED_MAP[rule])
    assert printed_map(proc.stdout) == f"{100 * library.mAP:.2f}"
    record = json.loads(out.read_text())
    assert DetectionEvaluation.from_json(record) == library
    assert record["rule"] == rule and record["num_detections"] == 5 and record["num_images"] == 3
    assert record["num_gt"] == ({"cat": 2, "dog": 2} if rule == "voc12" else {"cat": 2, "dog": 3})
    assert record["detections"] == str(dets)


def test_a_bad_detections_file_is_one_line_exit_2_and_writes_nothing(
    voc: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = voc
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([DETECTIONS[0], {**DETECTIONS[1], "label": "bird"}]))
    out = tmp_path / "eval.json"
    proc = cli_in_process(
        "evaluate-detection", "--data", root, "--detections", bad, "--rule", "voc07", "--json", out
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(bad) in lines[0] and "entry 1" in lines[0] and "'bird'" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        (["--detections", "dets.json"], "--detector only"),
        (["--detector", "det", "--shard", "0/2"], "--shard"),
    ],
)
def test_detections_out_needs_a_whole_detector_run(tmp_path: Path, source: list[str], needle: str) -> None:
    # A detections file has nothing to write; a shard has no result (its part only): refused before any work.
    written = tmp_path / "written.json"
    proc = cli_in_process("evaluate-detection", "--data", tmp_path / "no-such-data", *source,
                          "--rule", "voc12", "--json", tmp_path / "eval.json", "--detections-out",
                          written)  # fmt: skip
    one_error_line(proc, "evaluate-detection", "--detections-out", needle)
    assert not written.exists()


@pytest.mark.parametrize("case", ["directory", "under_a_file"])
def test_an_unwritable_json_path_is_refused_before_any_work(tmp_path: Path, case: str) -> None:
    # --data does not exist: the --json error coming first shows the check runs before the work.
    if case == "directory":
        out = tmp_path / "out"
        out.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "eval.json"
    proc = cli_in_process(
        "evaluate-detection",
        "--data",
        tmp_path / "no-such-data",
        "--detections",
        tmp_path / "no-such.json",
        "--rule",
        "ilsvrc",
        "--json",
        out,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--json" in proc.stderr and str(out) in proc.stderr
    assert "no-such-data" not in proc.stderr


def test_strict_data_stops_at_a_bad_object_that_is_otherwise_skipped(voc: tuple[Path, Path]) -> None:
    root, dets = voc
    xml = root / "Annotations" / "000003.xml"
    bird = (
        "<object><name>bird</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
        "</bndbox></object>"
    )
    xml.write_text(xml.read_text().replace("</annotation>", bird + "</annotation>"))
    args = ("evaluate-detection", "--data", root, "--detections", dets, "--rule", "voc12")
    lenient = cli_in_process(*args)
    assert lenient.returncode == 0, lenient.stderr
    assert printed_map(lenient.stdout) == f"{100 * EXPECTED_MAP['voc12']:.2f}"
    assert "1 annotation files/objects" in lenient.stderr and "--strict-data" in lenient.stderr
    strict = cli_in_process(*args, "--strict-data")
    assert strict.returncode == 2
    assert strict.stderr.count("\n") == 1 and str(xml) in strict.stderr and "bird" in strict.stderr


def test_ilsvrc_blacklist_of_the_devkit_reaches_the_evaluation(tmp_path: Path) -> None:
    # The ILSVRC2014 tarball layout: images, XML, devkit class list, val list and blacklist.
    root = tmp_path / "ilsvrc"
    (root / "ILSVRC2014_DET_bbox_val").mkdir(parents=True)
    (root / "ILSVRC2014_DET_val").mkdir()
    devkit = root / "ILSVRC2014_devkit" / "data"
    (devkit / "det_lists").mkdir(parents=True)
    (devkit / "map_det.txt").write_text("n01443537 1 goldfish\nn01503061 2 bird\n")
    objects = {
        "ILSVRC2013_val_00000001": [("n01443537", [1, 1, 100, 100]), ("n01503061", [101, 1, 150, 100])],
        "ILSVRC2013_val_00000002": [("n01443537", [1, 1, 100, 100])],
    }
    for stem, objs in objects.items():
        Image.new("RGB", (160, 120), (20, 40, 60)).save(root / "ILSVRC2014_DET_val" / f"{stem}.JPEG", "JPEG")
        body = "".join(
            f"<object><name>{wnid}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
            f"<ymax>{b[3]}</ymax></bndbox></object>"
            for wnid, b in objs
        )
        (root / "ILSVRC2014_DET_bbox_val" / f"{stem}.xml").write_text(
            f"<annotation><size><width>160</width><height>120</height></size>{body}</annotation>"
        )
    (devkit / "det_lists" / "val.txt").write_text("ILSVRC2013_val_00000001 1\nILSVRC2013_val_00000002 2\n")
    (devkit / "ILSVRC2014_det_validation_blacklist.txt").write_text("1 n01443537\n")
    dets = tmp_path / "dets.json"
    dets.write_text(
        json.dumps(
            [
                # a goldfish FP on image 1: blacklisted (image 1, goldfish) -> not counted at all
                {
                    "image_id": "ILSVRC2013_val_00000001",
                    "label": "n01443537",
                    "bbox": [120, 1, 159, 119],
                    "score": 0.9,
                },
                {
                    "image_id": "ILSVRC2013_val_00000002",
                    "label": "n01443537",
                    "bbox": [1, 1, 100, 100],
                    "score": 0.5,
                },
                {
                    "image_id": "ILSVRC2013_val_00000001",
                    "label": "n01503061",
                    "bbox": [101, 1, 150, 100],
                    "score": 0.4,
                },
            ]
        )
    )
    out = tmp_path / "eval.json"
    proc = cli_in_process(
        "evaluate-detection", "--data", root, "--detections", dets, "--rule", "ilsvrc", "--json", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 blacklisted (image, class) pairs" in proc.stdout
    record = json.loads(out.read_text())
    # Without the blacklist goldfish would be FP, TP over 2 objects: AP 1/4, mAP 0.625.
    assert record["AP"] == {"n01443537": 1.0, "n01503061": 1.0}
    assert record["num_gt"] == {"n01443537": 1, "n01503061": 1}
    assert printed_map(proc.stdout) == "100.00"


def test_rule_all_scores_one_detections_file_under_every_rule_side_by_side(
    voc: tuple[Path, Path], tmp_path: Path
) -> None:
    root, dets = voc
    out = tmp_path / "all.json"
    proc = cli_in_process(
        "evaluate-detection", "--data", root, "--detections", dets, "--rule", "all", "--json", out
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["rule"] == "all" and record["rules"] == ["ilsvrc", "voc07", "voc12", "coco"]
    evaluations = record["evaluations"]
    # By hand (see DETECTIONS): cat is TP FP TP of 2 under every rule; dog TP TP of 3 under ilsvrc and
    # one TP of 2 (the difficult dog ignored) under the others. 11 points: cat 1 at t <= .5, 2/3 above;
    # COCO's 101 points: cat 1 at recall <= .5 (51 points), 2/3 above (50); dog 1 at the first 51 points.
    expected = {
        "ilsvrc": {"cat": 5 / 6, "dog": 2 / 3},
        "voc12": {"cat": 5 / 6, "dog": 1 / 2},
        "voc07": {"cat": (6 + 5 * 2 / 3) / 11, "dog": 6 / 11},
        "coco": {"cat": (51 + 50 * 2 / 3) / 101, "dog": 51 / 101},
    }
    for rule, ap in expected.items():
        assert evaluations[rule]["AP"] == pytest.approx(ap), rule
        assert evaluations[rule]["mAP"] == pytest.approx(sum(ap.values()) / 2), rule
    # Every box is exact: COCO's AP over IoU .50:.95 is its AP50 and AP75.
    summary = evaluations["coco"]["summary"]
    assert set(summary) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"}
    assert summary["AP"] == summary["AP50"] == summary["AP75"] == pytest.approx(evaluations["coco"]["mAP"])
    assert record["differences"]["voc12 - ilsvrc"] == pytest.approx(
        {"mAP": -1 / 12, "cat": 0.0, "dog": -1 / 6}
    )
    # The table: each class's AP under each rule and the differences in points.
    (dog,) = [line.split() for line in proc.stdout.splitlines() if line.startswith("dog ")]
    assert dog[:5] == ["dog", "3", "1", "66.67", "50.00"] and "-16.67" in dog
    assert "COCO summary (%): AP " in proc.stdout
