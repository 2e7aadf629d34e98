"""Detections files (googlenet.detection.detections) and box conventions: what detect --json writes,
the former detect --json list still read, COCO's results format by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from googlenet.detection.boxes import from_coco, from_continuous, to_coco, to_continuous
from googlenet.detection.detections import Detection, format_detections, read_detections, write_detections
from googlenet.errors import GoogLeNetError

CLASSES = ["cat", "dog"]
IDS = ["000001", "2008_000002"]


def test_coco_boxes_by_hand() -> None:
    # Pixels 1..10 across (10 wide) and 5..5 down (1 high): x = xmin - 1, w = xmax - xmin + 1.
    box = np.array([[1.0, 5.0, 10.0, 5.0]])
    np.testing.assert_array_equal(to_coco(box), [[0.0, 4.0, 10.0, 1.0]])
    np.testing.assert_array_equal(from_coco(to_coco(box)), box)
    np.testing.assert_array_equal(to_continuous(box), [[0.0, 4.0, 10.0, 5.0]])
    np.testing.assert_array_equal(from_continuous(to_continuous(box)), box)
    assert to_coco(np.zeros((0, 4))).shape == (0, 4)


def test_written_file_reads_back(tmp_path: Path) -> None:
    found = [
        Detection("000001", 1, 0.25, np.array([1, 2, 30, 40])),
        Detection("2008_000002", 0, 0.5, [3, 3, 9, 9]),
    ]
    path = write_detections(tmp_path / "d.json", found, CLASSES)
    back = read_detections(path, CLASSES, IDS)
    assert [(d.image_id, d.label, d.score, d.bbox.tolist()) for d in back] == [
        (d.image_id, d.label, d.score, np.asarray(d.bbox, float).tolist()) for d in found
    ]
    coco = json.loads(format_detections(found, CLASSES, format="coco"))
    assert coco == [
        {"image_id": 1, "category_id": 2, "bbox": [0.0, 1.0, 30.0, 39.0], "score": 0.25},
        {"image_id": "2008_000002", "category_id": 1, "bbox": [2.0, 2.0, 7.0, 7.0], "score": 0.5},
    ]
    named = json.loads(format_detections(found, CLASSES, format="coco", category_ids={"cat": 17, "dog": 18}))
    assert [e["category_id"] for e in named] == [18, 17]
    with pytest.raises(GoogLeNetError, match="unknown detections format"):
        format_detections(found, CLASSES, format="voc")


def test_the_former_detect_json_list_still_reads(tmp_path: Path) -> None:
    old = [
        {
            "image": "/some/where/000001.jpg",
            "detections": [{"label": "dog", "score": 0.9, "bbox": [1, 2, 3, 4]}],
        },
        {"image": "2008_000002.png", "detections": []},
    ]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    (d,) = read_detections(path, CLASSES, IDS)
    assert (d.image_id, d.label, d.score, d.bbox.tolist()) == ("000001", 1, 0.9, [1.0, 2.0, 3.0, 4.0])
    old[0]["detections"][0]["label"] = "bird"
    path.write_text(json.dumps(old))
    with pytest.raises(GoogLeNetError, match=r"entry 0.*'bird'"):
        read_detections(path, CLASSES, IDS)
