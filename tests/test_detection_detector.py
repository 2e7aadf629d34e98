"""googlenet.detection.detector: the manifest, and the pipeline proposals -> warp -> members -> NMS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import googlenet
from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detector import (
    Detector,
    DetectorManifest,
    read_manifest,
    write_manifest,
)
from googlenet.detection.proposals import proposal_method
from googlenet.detection.scoring import average_probabilities, detections_from_scores
from googlenet.errors import GoogLeNetError
from googlenet.runs import RunLayout

SIZE = 64


def _member(seed: int, classes: int) -> googlenet.GoogLeNet:
    torch.manual_seed(seed)
    model = googlenet.create_model("googlenet_bn", num_classes=classes + 1, aux_logits=False)
    model.meta.input_size = (3, SIZE, SIZE)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("det") / "builtin"
    return make_builtin_detection(root, classes=3, train_images=4, val_images=3, image_size=96, workers=1)


def test_manifest_round_trip_and_errors(tmp_path: Path) -> None:
    method = proposal_method("selective-search-2x")
    manifest = DetectorManifest(["a", "b"], ["member_00"], method.settings(), image_size=SIZE)
    write_manifest(tmp_path, manifest)
    back = read_manifest(tmp_path)
    assert back == manifest
    assert back.proposal_method() == method
    (tmp_path / "member_00").mkdir()
    with pytest.raises(GoogLeNetError, match="not a detector"):
        read_manifest(tmp_path / "member_00")
    (tmp_path / "detector.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(GoogLeNetError, match="not a googlenet detector manifest"):
        read_manifest(tmp_path)
    with pytest.raises(GoogLeNetError, match="is missing"):
        read_manifest(tmp_path / "nope")


def test_detector_scores_equal_the_hand_pipeline(tiny_set: Path) -> None:
    dataset = open_detection_dataset(tiny_set, "val")
    members = [_member(0, 3), _member(1, 3)]
    method = proposal_method("selective-search-2x")
    det = Detector(members, dataset.class_names, method, image_size=SIZE, backend="torch", precision="fp32")
    image, _ = dataset[0]
    boxes = np.array([[1, 1, 40, 40], [20, 20, 90, 90], [5, 30, 60, 95]], dtype=float)
    got = det.detect(image, boxes)
    assert det.times.images == 1 and det.times.regions == 3
    _, warped = det.regions(image, boxes)
    with torch.no_grad():
        want = detections_from_scores(average_probabilities([m(warped) for m in members]), boxes)
    assert got.labels.tolist() == want.labels.tolist()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4)
    assert (det.times.images == 2 and det.times.regions == 3 + 0) or det.times.regions >= 3


def test_detect_dataset_is_the_same_with_workers(tiny_set: Path) -> None:
    dataset = open_detection_dataset(tiny_set, "val")
    det = Detector([_member(0, 3)], dataset.class_names, proposal_method("selective-search-2x"),
                   image_size=SIZE, backend="torch", precision="fp32")  # fmt: skip
    rng = np.random.default_rng(0)
    proposals = {}
    for image_id in dataset.image_ids:
        xy = rng.integers(1, 50, size=(20, 2))
        proposals[image_id] = np.concatenate([xy, xy + rng.integers(10, 40, size=(20, 2))], axis=1).astype(
            float
        )
    one = det.detect_dataset(dataset, proposals, workers=0)
    two = det.detect_dataset(dataset, proposals, workers=2)
    assert list(one) == dataset.image_ids
    for key in one:
        np.testing.assert_allclose(one[key].scores, two[key].scores, rtol=1e-5)
        assert one[key].labels.tolist() == two[key].labels.tolist()
    assert det.times.network > 0 and det.times.overhead_ratio() > 0


def test_detector_refuses_members_of_the_wrong_class_count(tiny_set: Path, tmp_path: Path) -> None:
    with pytest.raises(GoogLeNetError, match="3 classes needs 4"):
        Detector([_member(0, 5)], ["a", "b", "c"], proposal_method("selective-search"), image_size=SIZE)
    # Loading: a member listed in the manifest without weights is named.
    write_manifest(tmp_path, DetectorManifest(["a", "b", "c"], ["member_00"], {"name": "x", "ks": [1]}))
    with pytest.raises(GoogLeNetError, match="member_00 has no weights"):
        Detector.load(tmp_path)
    googlenet.save(_member(0, 3), RunLayout(tmp_path / "member_00").weights)
    with pytest.raises(GoogLeNetError, match="--members 2"):
        Detector.load(tmp_path, members=2)
