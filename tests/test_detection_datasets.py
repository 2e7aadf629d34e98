"""Detection data readers: VOC, ILSVRC DET and COCO folders written into tmp_path with real JPEGs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import scipy.io

from googlenet.detection.datasets import VOC_CLASSES, open_detection_dataset
from googlenet.errors import GoogLeNetError

from .helpers import write_jpeg, write_voc

W, H = 64, 48
GREY = PIL.Image.new("RGB", (W, H), 128)  # the picture of every VOC image here


def xml_object(name: str, box: tuple[object, ...], difficult: int = 0, skip: str = "") -> str:
    coords = "".join(
        f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True) if t != skip
    )
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>"


def annotation(*objects: str, size: tuple[int, int] | None = (W, H)) -> str:
    size_xml = (
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    )
    return f"<annotation><folder>x</folder>{size_xml}{''.join(objects)}</annotation>"


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit" / "VOC2007"
    files = {
        "000001": annotation(xml_object("dog", (10, 20, 50, 40)), xml_object("person", (1, 1, 64, 48), 1)),
        "000002": annotation(),  # no objects: kept, it counts for false positives
        "000003": annotation(xml_object("car", (5.5, 6, 7, 8))),
    }
    write_voc(
        root,
        {i: (GREY, xml) for i, xml in files.items()},
        {"val": ["000001", "000002", "000003"], "train": ["000003"]},
    )
    (root / "ImageSets" / "Main" / "aeroplane_val.txt").write_text("000001 -1\n")
    return root


def test_voc_boxes_labels_difficult_exactly(voc: Path) -> None:
    ds = open_detection_dataset(voc, "val", strict=True)
    assert (ds.layout, ds.split, ds.root) == ("voc", "val", voc)
    assert ds.class_names == list(VOC_CLASSES) == ds.class_descriptions
    assert ds.image_ids == ["000001", "000002", "000003"] and len(ds) == 3 and ds.skipped == []
    t = ds.target(0)
    assert t.image_id == "000001" and (t.width, t.height) == (W, H)
    assert t.boxes.dtype == np.float64 and t.labels.dtype == np.int64 and t.difficult.dtype == bool
    np.testing.assert_array_equal(t.boxes, [[10, 20, 50, 40], [1, 1, 64, 48]])
    np.testing.assert_array_equal(t.labels, [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")])
    np.testing.assert_array_equal(t.difficult, [False, True])
    assert ds.target(1).boxes.shape == (0, 4) and ds.target(1).labels.shape == (0,)
    np.testing.assert_array_equal(ds.target(2).boxes, [[5.5, 6, 7, 8]])
    assert ds.blacklist == frozenset()
    image, target = ds[0]
    assert image.mode == "RGB" and image.size == (W, H) and target is t
    assert ds.image_path(2) == voc / "JPEGImages" / "000003.jpg"
    assert [x.image_id for x in ds.targets()] == ds.image_ids


def test_voc_devkit_nesting(voc: Path) -> None:
    for root in (voc.parent, voc.parent.parent):  # VOCdevkit/, and the folder it was unpacked in
        ds = open_detection_dataset(root, "train")
        assert ds.root == voc and ds.image_ids == ["000003"]
    write_voc(voc.parent / "VOC2012", {"a": (GREY, annotation())}, {"val": ["a"]})
    with pytest.raises(GoogLeNetError, match=r"several VOC folders.*VOC2007, VOC2012"):
        open_detection_dataset(voc.parent)


def test_voc_missing_split_lists_the_splits(voc: Path) -> None:
    with pytest.raises(GoogLeNetError, match=r"test\.txt not found; available splits: train, val$"):
        open_detection_dataset(voc, "test")


def test_voc_grey_jpeg_is_returned_rgb(tmp_path: Path) -> None:
    root = write_voc(
        tmp_path / "VOC2012", {"g": (GREY, annotation(xml_object("cat", (2, 2, 9, 9))))}, {"val": ["g"]}
    )
    write_jpeg(root / "JPEGImages" / "g.jpg", size=(W, H), mode="L")
    image, _ = open_detection_dataset(root)[0]
    assert image.mode == "RGB" and image.size == (W, H)


def test_custom_voc_class_lists(tmp_path: Path) -> None:
    files = {
        "a": annotation(xml_object("square", (1, 1, 5, 5))),
        "b": annotation(xml_object("circle", (2, 2, 3, 3))),
    }
    root = write_voc(tmp_path / "shapes", {i: (GREY, xml) for i, xml in files.items()}, {"val": ["a", "b"]})
    ds = open_detection_dataset(root)
    assert ds.class_names == ["circle", "square"]  # not a VOC folder: the sorted names seen
    assert [t.labels.tolist() for t in ds.targets()] == [[1], [0]]
    (root / "classes.txt").write_text("square\ntriangle\ncircle\n")
    ds = open_detection_dataset(root)
    assert ds.class_names == ["square", "triangle", "circle"]
    assert [t.labels.tolist() for t in ds.targets()] == [[0], [2]]
    ds = open_detection_dataset(root, classes=["circle", "square"])  # the argument wins over the file
    assert [t.labels.tolist() for t in ds.targets()] == [[1], [0]]


def test_voc_names_seen_all_voc_give_the_20_classes(tmp_path: Path) -> None:
    root = write_voc(
        tmp_path / "mine", {"a": (GREY, annotation(xml_object("sheep", (1, 1, 5, 5))))}, {"val": ["a"]}
    )
    ds = open_detection_dataset(root)
    assert ds.class_names == list(VOC_CLASSES) and ds.target(0).labels.tolist() == [16]


GOOD = xml_object("cat", (3, 4, 20, 30))
DOG = "bad.xml: object 1 (dog)"


def with_bad(box: tuple[object, ...], name: str = "dog", skip: str = "") -> str:
    """The XML of "bad": a good object 0 and a bad object 1."""
    return annotation(GOOD, xml_object(name, box, skip=skip))


ENTITY = '<!DOCTYPE a [<!ENTITY x "cat">]>' + annotation(xml_object("&x;", (1, 1, 2, 2)))
# (case id, XML of "bad", what must be named, words in the reason).
BAD_CASES = [
    ("malformed", "<annotation><object><name>cat</name>", "bad.xml", "malformed XML"),
    ("doctype", ENTITY, "bad.xml", "DTD"),
    ("missing coord", with_bad((1, 1, 5, 5), skip="ymax"), DOG, "missing <bndbox><ymax>"),
    ("non-numeric", with_bad(("ten", 1, 5, 5)), DOG, "non-numeric <xmin> 'ten'"),
    ("outside right", with_bad((1, 1, W + 1, 5)), DOG, f"outside the {W}x{H} image"),
    ("outside zero", with_bad((0, 1, 5, 5)), DOG, "outside"),
    ("outside bottom", with_bad((1, 1, 5, H + 1)), DOG, "outside"),
    ("reversed", with_bad((40, 1, 30, 5)), DOG, "xmax < xmin"),
    ("unknown class", with_bad((1, 1, 5, 5), "zebra"), "bad.xml: object 1 (zebra)", "unknown class 'zebra'"),
    ("no name", with_bad((1, 1, 5, 5), ""), "bad.xml: object 1", "missing <name>"),
    ("wrong root", "<notes/>", "bad.xml", "expected <annotation>"),
    ("missing image", annotation(GOOD), "bad.xml", "image file missing"),
    ("missing annotation", None, "bad.xml", "annotation file missing"),
]


def write_bad_case(tmp_path: Path, case: str, xml: str | None) -> Path:
    root = write_voc(tmp_path / "data", {"good": (GREY, annotation(GOOD))}, {"val": ["good", "bad"]})
    (root / "classes.txt").write_text("cat\ndog\n")
    if xml is not None:
        (root / "Annotations" / "bad.xml").write_text(xml, encoding="utf-8")
    if case != "missing image":
        write_jpeg(root / "JPEGImages" / "bad.jpg", size=(W, H))
    return root


@pytest.mark.parametrize(("case", "xml", "what", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_annotation_strict_raises_one_line_naming_it(
    tmp_path: Path, case: str, xml: str | None, what: str, reason: str
) -> None:
    root = write_bad_case(tmp_path, case, xml)
    with pytest.raises(GoogLeNetError) as err:
        open_detection_dataset(root, strict=True)
    message = str(err.value)
    assert "\n" not in message and str(root / "Annotations" / what) in message and reason in message


@pytest.mark.parametrize(("case", "xml", "what", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_annotation_not_strict_is_skipped_and_recorded(
    tmp_path: Path, case: str, xml: str | None, what: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_bad_case(tmp_path, case, xml)
    with caplog.at_level(logging.WARNING, logger="googlenet.detection"):
        ds = open_detection_dataset(root)
    assert len(ds.skipped) == 1
    skipped_what, skipped_reason = ds.skipped[0]
    assert skipped_what.startswith(str(root / "Annotations" / what)) and reason in skipped_reason
    assert any(skipped_what in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    if "object" in what:  # the object is dropped, the image and its good object stay
        assert ds.image_ids == ["good", "bad"]
        np.testing.assert_array_equal(ds.target(1).boxes, [[3, 4, 20, 30]])
    else:  # the file is bad: the image goes
        assert ds.image_ids == ["good"]


def test_missing_size_is_read_from_the_jpeg_header(tmp_path: Path) -> None:
    files = {"a": annotation(xml_object("cat", (1, 1, W, H)), xml_object("cat", (1, 1, W + 1, H)), size=None)}
    root = write_voc(tmp_path / "VOC2007", {i: (GREY, xml) for i, xml in files.items()}, {"val": ["a"]})
    ds = open_detection_dataset(root)
    t = ds.target(0)
    assert (t.width, t.height) == (W, H) and t.boxes.tolist() == [[1, 1, W, H]]
    assert len(ds.skipped) == 1 and f"outside the {W}x{H} image" in ds.skipped[0][1]


def test_target_does_not_open_the_image(voc: Path) -> None:
    ds = open_detection_dataset(voc)
    for path in (voc / "JPEGImages").iterdir():
        path.unlink()
    np.testing.assert_array_equal(ds.target(0).boxes, [[10, 20, 50, 40], [1, 1, 64, 48]])
    assert len(ds.targets()) == 3
    with pytest.raises(GoogLeNetError, match=r"cannot decode image .*000001\.jpg"):
        ds[0]


def test_empty_split_is_an_error(voc: Path) -> None:
    (voc / "ImageSets" / "Main" / "empty.txt").write_text("\n")
    with pytest.raises(GoogLeNetError, match=r"empty\.txt is empty"):
        open_detection_dataset(voc, "empty")
    (voc / "ImageSets" / "Main" / "gone.txt").write_text("nothere\n")
    with pytest.raises(GoogLeNetError, match=r"no usable images.*annotation file missing"):
        open_detection_dataset(voc, "gone")


def test_no_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GoogLeNetError, match="no detection layout found"):
        open_detection_dataset(tmp_path)
    with pytest.raises(GoogLeNetError, match="does not exist"):
        open_detection_dataset(tmp_path / "nope")


# --------------------------------------------------------------------------- ILSVRC

# DET_ID order deliberately not the file order; 201 is a WordNet hierarchy node, not a class.
SYNSETS = [(2, "n02691156", "airplane"), (201, "n00001740", "entity"), (1, "n02672831", "accordion"),
           (3, "n02219486", "ant")]  # fmt: skip


def write_meta_det(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = [("DET_ID", "O"), ("WNID", "O"), ("name", "O"), ("description", "O")]
    synsets = np.array(
        [(det_id, wnid, name, f"{name}, a thing") for det_id, wnid, name in SYNSETS], dtype=dtype
    )
    scipy.io.savemat(str(path), {"synsets": synsets})


def write_ilsvrc_image(ann: Path, img: Path, stem: str, *objects: str) -> None:
    ann.mkdir(parents=True, exist_ok=True)
    (ann / f"{stem}.xml").write_text(annotation(*objects), encoding="utf-8")
    write_jpeg(img / f"{stem}.JPEG", size=(W, H))


@pytest.fixture
def ilsvrc(tmp_path: Path) -> Path:
    root = tmp_path / "ilsvrc2014"
    ann, img = root / "ILSVRC2013_DET_bbox_val", root / "ILSVRC2013_DET_val"
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000001", xml_object("n02691156", (1, 2, 30, 40)),
                       xml_object("n00001740", (1, 1, 2, 2)))  # fmt: skip
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000002", xml_object("n02219486", (5, 5, 9, 9)),
                       xml_object("n02672831", (10, 11, 12, 13)))  # fmt: skip
    write_ilsvrc_image(ann, img, "ILSVRC2013_val_00000003")
    data = root / "ILSVRC2014_devkit" / "data"
    write_meta_det(data / "meta_det.mat")
    (data / "det_lists").mkdir()
    # Listed out of name order so that the test sees the list (not a sort) give order and indices.
    (data / "det_lists" / "val.txt").write_text(
        "ILSVRC2012_val_00000002 1\nILSVRC2012_val_00000001 2\nILSVRC2013_val_00000003 3\n"
    )
    # "val_index WNID" as eval_detection.m reads it; "3 2" uses a 1-based DET_ID (2 = airplane).
    (data / "ILSVRC2014_det_validation_blacklist.txt").write_text("2 n02691156\n3 2\n1 n02219486\n")
    tr_ann, tr_img = (
        root / "ILSVRC2013_DET_bbox_train" / "n02219486",
        root / "ILSVRC2013_DET_train" / "n02219486",
    )
    write_ilsvrc_image(tr_ann, tr_img, "n02219486_7", xml_object("n02219486", (3, 3, 20, 20)))
    return root


def test_ilsvrc_val_reads_the_devkit(ilsvrc: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = open_detection_dataset(ilsvrc, "val")
    assert ds.layout == "ilsvrc" and ds.root == ilsvrc
    assert ds.class_names == ["n02672831", "n02691156", "n02219486"]  # DET_ID order, first 200 only
    assert ds.class_descriptions == ["accordion", "airplane", "ant"]
    assert ds.image_ids == ["ILSVRC2012_val_00000002", "ILSVRC2012_val_00000001", "ILSVRC2013_val_00000003"]
    t0, t1, t2 = ds.targets()
    np.testing.assert_array_equal(t0.boxes, [[5, 5, 9, 9], [10, 11, 12, 13]])
    assert t0.labels.tolist() == [2, 0] and t0.difficult.tolist() == [False, False]
    np.testing.assert_array_equal(t1.boxes, [[1, 2, 30, 40]])
    assert t1.labels.tolist() == [1] and t2.boxes.shape == (0, 4)
    # The hierarchy node n00001740 is not one of the 200 classes.
    assert len(ds.skipped) == 1 and "object 1 (n00001740)" in ds.skipped[0][0]
    assert "unknown class 'n00001740'" in ds.skipped[0][1]
    assert ds.blacklist == frozenset(
        {("ILSVRC2012_val_00000001", 1), ("ILSVRC2013_val_00000003", 1), ("ILSVRC2012_val_00000002", 2)}
    )
    assert ds.image_path(0) == ilsvrc / "ILSVRC2013_DET_val" / "ILSVRC2012_val_00000002.JPEG"
    with pytest.raises(GoogLeNetError, match=r"ILSVRC2012_val_00000001\.xml: object 1 \(n00001740\)"):
        open_detection_dataset(ilsvrc, "val", strict=True)


def test_ilsvrc_train_walks_the_annotation_folders(ilsvrc: Path) -> None:
    ds = open_detection_dataset(ilsvrc, "train", strict=True)
    assert ds.image_ids == ["n02219486_7"] and ds.blacklist == frozenset()
    assert ds.image_path(0) == ilsvrc / "ILSVRC2013_DET_train" / "n02219486" / "n02219486_7.JPEG"
    assert ds.target(0).labels.tolist() == [2]
    with pytest.raises(GoogLeNetError, match="available splits: train, val"):
        open_detection_dataset(ilsvrc, "test")


def test_ilsvrc_blacklist_errors_name_the_line(ilsvrc: Path) -> None:
    blacklist = ilsvrc / "ILSVRC2014_devkit" / "data" / "ILSVRC2014_det_validation_blacklist.txt"
    blacklist.write_text("1 n02219486\n9 n02219486\n")
    with pytest.raises(GoogLeNetError, match=r"blacklist.txt:2: image index 9 is not in the split list"):
        open_detection_dataset(ilsvrc)
    blacklist.write_text("1 n09999999\n")
    with pytest.raises(GoogLeNetError, match=r"blacklist.txt:1: unknown class 'n09999999'"):
        open_detection_dataset(ilsvrc)


def test_ilsvrc_without_class_list_is_an_error(ilsvrc: Path) -> None:
    (ilsvrc / "ILSVRC2014_devkit" / "data" / "meta_det.mat").unlink()
    with pytest.raises(GoogLeNetError, match="no ILSVRC DET class list"):
        open_detection_dataset(ilsvrc)
    (ilsvrc / "det_synsets.txt").write_text("n02219486 1 ant\nn02672831 2 accordion\nn02691156 3 airplane\n")
    ds = open_detection_dataset(ilsvrc)
    assert ds.class_names == ["n02219486", "n02672831", "n02691156"] and ds.target(0).labels.tolist() == [
        0,
        1,
    ]


def test_ilsvrc2015_tree_with_map_det(tmp_path: Path) -> None:
    base = tmp_path / "kaggle" / "ILSVRC"
    ann, img = base / "Annotations" / "DET" / "val", base / "Data" / "DET" / "val"
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000001", xml_object("n02219486", (2, 3, 4, 5)))
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000009")
    (base / "ImageSets" / "DET").mkdir(parents=True)
    (base / "ImageSets" / "DET" / "val.txt").write_text(
        "ILSVRC2012_val_00000001 1\nILSVRC2012_val_00000009 2\n"
    )
    (base / "devkit" / "data").mkdir(parents=True)
    (base / "devkit" / "data" / "map_det.txt").write_text("n02672831 1 accordion\nn02219486 2 ant\n")
    (base / "devkit" / "data" / "ILSVRC2015_det_validation_blacklist.txt").write_text("2 n02672831\n")
    ds = open_detection_dataset(tmp_path / "kaggle", strict=True)
    assert ds.class_names == ["n02672831", "n02219486"] and ds.class_descriptions == ["accordion", "ant"]
    assert ds.image_ids == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000009"]
    np.testing.assert_array_equal(ds.target(0).boxes, [[2, 3, 4, 5]])
    assert ds.target(0).labels.tolist() == [1]
    assert ds.blacklist == frozenset({("ILSVRC2012_val_00000009", 0)})


# --------------------------------------------------------------------------- COCO


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    instances = {
        "info": {},
        "licenses": [],
        # Listed out of id order: class indices follow sorted category ids (person 1, car 3, dog 18).
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "images": [
            {"id": 5, "file_name": "000000000005.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "000000000002.jpg", "width": W, "height": H},
            {"id": 9, "file_name": "000000000009.jpg", "width": W, "height": H},  # no file on disk
        ],
        "annotations": [
            {
                "id": 11,
                "image_id": 5,
                "category_id": 1,
                "bbox": [10.5, 20.25, 30, 15.5],
                "iscrowd": 0,
                "area": 1,
            },
            {"id": 12, "image_id": 5, "category_id": 18, "bbox": [0, 0, W, H], "iscrowd": 1, "area": 1},
            {"id": 13, "image_id": 5, "category_id": 3, "bbox": [60, 10, 10, 10], "iscrowd": 0, "area": 1},
            {"id": 14, "image_id": 5, "category_id": 3, "bbox": [2, 3, 4, 5], "iscrowd": 0, "area": 1},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    for name in ("000000000005.jpg", "000000000002.jpg"):
        write_jpeg(root / "val2017" / name, size=(W, H))
    return root


def test_coco_conversion_and_skips(coco: Path, capsys: pytest.CaptureFixture) -> None:
    ds = open_detection_dataset(coco, "val")  # "val" resolves to the only val file, val2017
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are swallowed
    assert (ds.layout, ds.split) == ("coco", "val2017")
    assert ds.class_names == ["person", "car", "dog"] == ds.class_descriptions
    assert ds.image_ids == ["000000000002", "000000000005"]  # sorted image ids; 9 has no file
    assert ds.target(0).boxes.shape == (0, 4)
    t = ds.target(1)
    np.testing.assert_array_equal(t.boxes, [[11.5, 21.25, 40.5, 35.75], [1, 1, W, H], [3, 4, 6, 8]])
    widths, heights = t.boxes[:, 2] - t.boxes[:, 0] + 1, t.boxes[:, 3] - t.boxes[:, 1] + 1
    np.testing.assert_array_equal(widths, [30, W, 4])  # w == xmax - xmin + 1
    np.testing.assert_array_equal(heights, [15.5, H, 5])
    assert t.labels.tolist() == [0, 2, 1] and t.difficult.tolist() == [False, True, False]  # crowd: difficult
    assert [what.split(": ", 1)[1] for what, _ in ds.skipped] == [
        "image 000000000005.jpg: object 2 (id 13, car)",
        "image 000000000009.jpg",
    ]
    assert "outside the 64x48 image" in ds.skipped[0][1] and "image file missing" in ds.skipped[1][1]
    assert ds.image_path(1) == coco / "val2017" / "000000000005.jpg"
    with pytest.raises(
        GoogLeNetError, match=r"instances_val2017.json: image 000000000005.jpg: object 2 \(id 13"
    ):
        open_detection_dataset(coco, "val2017", strict=True)


def test_coco_classes_argument_and_split_errors(coco: Path) -> None:
    ds = open_detection_dataset(coco, classes=["dog", "person"])
    assert ds.target(1).labels.tolist() == [1, 0]
    assert sum("unknown class 'car'" in reason for _, reason in ds.skipped) == 1
    with pytest.raises(GoogLeNetError, match="available splits: val2017"):
        open_detection_dataset(coco, "train")
    (coco / "annotations" / "instances_val2014.json").write_text("{}")
    with pytest.raises(GoogLeNetError, match=r"\(ambiguous\); available splits: val2014, val2017"):
        open_detection_dataset(coco, "val")


def test_ilsvrc_accepts_boxes_at_zero(ilsvrc: Path) -> None:
    # ImageNet's XMLs may write a box touching the left/top edge as 0 (datasets.ILSVRC_LOWEST): kept as
    # written, not dropped. VOC's are 1-based: there 0 is outside the image (BAD_CASES "outside zero").
    ann, img = ilsvrc / "ILSVRC2013_DET_bbox_val", ilsvrc / "ILSVRC2013_DET_val"
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000001", xml_object("n02691156", (0, 0, 30, 40)))
    t1 = open_detection_dataset(ilsvrc, "val", strict=True).targets()[1]
    np.testing.assert_array_equal(t1.boxes, [[0, 0, 30, 40]])
    write_ilsvrc_image(ann, img, "ILSVRC2012_val_00000001", xml_object("n02691156", (-1, 0, 30, 40)))
    with pytest.raises(GoogLeNetError, match=r"ILSVRC2012_val_00000001\.xml: object 0.*outside .*\(0 <= x"):
        open_detection_dataset(ilsvrc, "val", strict=True)
