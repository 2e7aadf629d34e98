"""The built-in detection set: VOC layout, exact visible boxes, determinism, scale range, cache, CLI."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from googlenet.data.scenes import BUILTIN_CLASSES, render_scene
from googlenet.detection.builtin import (
    BUILTIN_DETECTION_VERSION,
    DIFFICULT_BELOW,
    check_detection_params,
    detection_contact_sheet,
    ensure_builtin_detection,
    image_seed,
    is_complete,
    make_builtin_detection,
    resolve_detection_data,
)
from googlenet.errors import GoogLeNetError

from .helpers import cli_in_process, tree_bytes

SMALL = dict(classes=4, train_images=12, val_images=4, image_size=128)


def read_objects(xml_path: Path) -> tuple[tuple[int, int], list[dict]]:
    root = ET.parse(xml_path).getroot()
    size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
    objects = [
        {
            "name": o.findtext("name"),
            "difficult": o.findtext("difficult"),
            "box": tuple(int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")),
        }
        for o in root.iter("object")
    ]
    return size, objects


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_builtin_detection(tmp_path_factory.mktemp("det") / "set", workers=1, **SMALL)


def test_voc_layout_and_boxes_inside_the_image(small: Path) -> None:
    names = (small / "classes.txt").read_text().splitlines()
    assert names == list(BUILTIN_CLASSES[:4])
    ids = {s: (small / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in ("train", "val")}
    assert len(ids["train"]) == 12 and len(ids["val"]) == 4 and not set(ids["train"]) & set(ids["val"])
    info = json.loads((small / "builtin_detection.json").read_text())
    assert info["version"] == BUILTIN_DETECTION_VERSION and info["params"] == {**SMALL, "seed": 0}
    n_objects = 0
    for image_id in ids["train"] + ids["val"]:
        (width, height), objects = read_objects(small / "Annotations" / f"{image_id}.xml")
        with Image.open(small / "JPEGImages" / f"{image_id}.jpg") as im:
            assert im.format == "JPEG" and im.size == (width, height) and min(im.size) == 128
        for obj in objects:
            x1, y1, x2, y2 = obj["box"]
            assert 1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height  # inclusive, 1-based
            assert obj["name"] in names and obj["difficult"] in ("0", "1")
        n_objects += len(objects)
    assert n_objects == info["statistics"]["train"]["objects"] + info["statistics"]["val"]["objects"]
    assert n_objects >= 16 * 2  # several objects per image (1-6 drawn)


def test_the_voc_reader_serves_it(small: Path) -> None:
    from googlenet.detection.datasets import open_detection_dataset

    ds = open_detection_dataset(small, "val", strict=True)
    assert len(ds) == 4 and list(ds.class_names) == list(BUILTIN_CLASSES[:4])


def test_deterministic_whatever_the_workers_and_seeded(small: Path, tmp_path: Path) -> None:
    again = make_builtin_detection(tmp_path / "two_workers", workers=2, **SMALL)
    assert tree_bytes(again) == tree_bytes(small)
    other = tree_bytes(make_builtin_detection(tmp_path / "seed1", workers=1, seed=1, **SMALL))
    first = tree_bytes(small)
    files = [k for k in first if k.endswith((".jpg", ".xml"))]
    assert len(files) == 32 and set(other) == set(first)
    assert all(first[k] != other[k] for k in files)


def test_boxes_are_the_tight_boxes_of_the_visible_masks(small: Path) -> None:
    occluded = difficult = 0
    for index in range(12):  # the training images of the set: re-rendered from their seeds
        scene = render_scene(np.random.default_rng(image_seed(0, "train", index)), 128, classes=4)
        with Image.open(small / "JPEGImages" / f"train_{index:06d}.jpg") as im:
            assert scene.image.size == im.size
        _, written = read_objects(small / "Annotations" / f"train_{index:06d}.xml")
        assert [o["box"] for o in written] == [tuple(v + 1 for v in o.box) for o in scene.objects]
        assert [o["name"] for o in written] == [BUILTIN_CLASSES[o.class_index] for o in scene.objects]
        for obj, w in zip(scene.objects, written, strict=True):
            ys, xs = np.nonzero(obj.mask)
            assert obj.box == (xs.min(), ys.min(), xs.max(), ys.max())
            assert w["difficult"] == ("1" if obj.visible < DIFFICULT_BELOW else "0")
            occluded += obj.occluded
            difficult += w["difficult"] == "1"
        # An occluded part belongs to the object drawn over it: no pixel is visible in two objects.
        stack = np.stack([o.mask for o in scene.objects]) if scene.objects else np.zeros((1, 1, 1), bool)
        assert stack.sum(axis=0).max() <= 1
    assert occluded >= 1


def test_occluded_object_box_shrinks_to_what_is_left() -> None:
    # Among a few scenes some object is hidden in part by later ones: its visible mask is strictly
    # smaller than its full shape, and its box still encloses exactly that mask.
    shrunk = 0
    for seed in range(30):
        scene = render_scene(np.random.default_rng(seed), 96, classes=6)
        for obj in scene.objects:
            if obj.occluded and not obj.truncated:
                assert obj.visible < 1.0
                shrunk += 1
    assert shrunk >= 1


def test_scales_from_small_to_large_at_the_default_size(tmp_path: Path) -> None:
    root = make_builtin_detection(tmp_path / "d", train_images=24, val_images=2, workers=1)
    sides = []
    for path in (root / "Annotations").glob("*.xml"):
        (width, height), objects = read_objects(path)
        assert min(width, height) == 256  # the default shorter side
        sides += [math.sqrt((x2 - x1 + 1) * (y2 - y1 + 1)) for x1, y1, x2, y2 in (o["box"] for o in objects)]
    assert min(sides) < 32 and max(sides) > 96  # COCO's small and large both occur
    stats = json.loads((root / "builtin_detection.json").read_text())["statistics"]["train"]
    assert stats["sizes"]["small"] > 0 and stats["sizes"]["large"] > 0


def test_cache_reuses_the_set(tmp_path: Path) -> None:
    root = ensure_builtin_detection(cache_dir=tmp_path / "cache", **SMALL)
    assert root.parent == tmp_path / "cache" and root.name.startswith("builtin-detection-")
    stamp = (root / "builtin_detection.json").stat().st_mtime_ns
    assert ensure_builtin_detection(cache_dir=tmp_path / "cache", **SMALL) == root
    assert (root / "builtin_detection.json").stat().st_mtime_ns == stamp  # not regenerated
    assert is_complete(root, SMALL) and not is_complete(root, {**SMALL, "seed": 2})
    assert ensure_builtin_detection(cache_dir=tmp_path / "cache", **{**SMALL, "seed": 2}) != root


def test_resolve_detection_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: Path) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "env-cache"))
    root = resolve_detection_data("builtin", **SMALL)
    assert root.parent == tmp_path / "env-cache" and is_complete(root, SMALL)
    assert resolve_detection_data(str(small)) == small
    with pytest.raises(GoogLeNetError, match="no_such_folder"):
        resolve_detection_data(tmp_path / "no_such_folder")


def test_foreign_or_other_set_is_refused(small: Path, tmp_path: Path) -> None:
    with pytest.raises(GoogLeNetError, match="other parameters"):
        make_builtin_detection(small, **{**SMALL, "seed": 4})
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(GoogLeNetError, match="not empty"):
        make_builtin_detection(user, **SMALL)
    assert (user / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("key", "value"), [("classes", 0), ("classes", 99), ("image_size", 63), ("val_images", 0), ("seed", -1)]
)
def test_bad_parameters_name_the_value(key: str, value: int) -> None:
    with pytest.raises(GoogLeNetError, match=rf"^--{key.replace('_', '-')} {value}: "):
        check_detection_params({key: value}, names={key: f"--{key.replace('_', '-')}"})


def test_contact_sheet_is_a_png(small: Path, tmp_path: Path) -> None:
    out = detection_contact_sheet(small, tmp_path / "sheet.png", n=4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 256


FLAGS = ["--classes", "4", "--train-images", "12", "--val-images", "4", "--image-size", "128"]


def test_cli_make_builtin_detection(tmp_path: Path) -> None:
    out = tmp_path / "data"
    res = cli_in_process("data", "make-builtin-detection", out, *FLAGS, "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1 and str(out) in res.stdout and "12 train / 4 val" in res.stdout
    assert res.stdout.startswith("wrote") and is_complete(out, SMALL)


def test_cli_reuses_the_same_set(small: Path) -> None:
    stamp = (small / "builtin_detection.json").stat().st_mtime_ns
    res = cli_in_process("data", "make-builtin-detection", small, *FLAGS)
    assert res.returncode == 0 and res.stdout.startswith("reused"), res.stderr
    assert (small / "builtin_detection.json").stat().st_mtime_ns == stamp


def test_cli_refuses_a_foreign_directory_in_one_line(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "photo.jpg").write_bytes(b"not ours")
    res = cli_in_process("data", "make-builtin-detection", foreign, *FLAGS)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "not empty" in lines[0] and str(foreign) in lines[0]
    assert [p.name for p in foreign.iterdir()] == ["photo.jpg"]
