"""Detection datasets (paper section 8): PASCAL VOC, ILSVRC2013/2014 DET and COCO behind one API.

:func:`open_detection_dataset` finds the layout under a folder and returns a
:class:`DetectionDataset` of ``(RGB image, DetectionTarget)`` pairs. Every annotation is parsed and
checked when the dataset is opened; images are decoded only in ``__getitem__``, so
:meth:`DetectionDataset.target` and :meth:`DetectionDataset.targets` never touch the pixels.

Boxes are ``[xmin, ymin, xmax, ymax]`` in the inclusive, 1-based pixel indices of the VOC and
ILSVRC XML files (widths ``xmax - xmin + 1``, see :mod:`.boxes`). COCO's continuous ``[x, y, w, h]``
becomes ``[x + 1, y + 1, x + w, y + h]``. ``docs/detection_data.md`` lists every file looked for.

Sources for the layouts: the PASCAL VOC devkit (``VOCdevkit/VOC2007/{Annotations, JPEGImages,
ImageSets/Main}``); the ILSVRC2014 devkit readme and ``evaluation/eval_detection.m``
(``data/meta_det.mat``, ``data/det_lists/val.txt``, the validation blacklist read as
``'%d %s'`` = val.txt index and WNID); the ILSVRC2015 devkit readme for the
``Annotations/DET``, ``Data/DET``, ``ImageSets/DET`` layout; COCO's ``instances_*.json`` read with
pycocotools.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch.utils.data

from ..errors import GoogLeNetError
from .boxes import from_coco

__all__ = [
    "CLASSES_FILE",
    "RARE_CLASS_OBJECTS",
    "VOC_CLASSES",
    "DetectionDataset",
    "DetectionTarget",
    "class_warnings",
    "drop_unreadable",
    "open_detection_dataset",
    "parse_classes",
]

logger = logging.getLogger("googlenet.detection")

CLASSES_FILE = "classes.txt"
# The 20 PASCAL VOC classes in the devkit's order (VOCinit.m), which is also alphabetical.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
# The ILSVRC DET challenge scores the first 200 DET_IDs; meta_det.mat may hold hierarchy nodes after them.
ILSVRC_DET_CLASSES = 200
# ImageNet's XML boxes are not reliably 1-based: a box touching the left or top edge may read 0.
# Refusing such boxes would drop real objects, so 0 is accepted for ILSVRC and kept as written; the
# evaluation keeps the devkit's +1 widths (eval_detection.m shifts nothing either).
ILSVRC_LOWEST = 0
# Looked for in this order beside each image stem (VOC: .jpg; ILSVRC: .JPEG).
IMAGE_SUFFIXES = (".jpg", ".JPEG", ".jpeg", ".JPG", ".png", ".PNG")
# Past this many, skipped items are summed up in one warning instead of one warning each.
MAX_SKIP_WARNINGS = 20
# A class with fewer objects than this over every split is named in a warning: with so few
# examples it is more likely a typo in a <name> (``sqaure``) than a class worth a detector output.
RARE_CLASS_OBJECTS = 5
# Annotation files a class warning names, at most.
NAMED_FILES = 3

_WNID = re.compile(r"^n\d{8}$")
_VOC_FOLDER = re.compile(r"^VOC\d{4}$")
_COORDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True, eq=False)
class DetectionTarget:
    """The ground truth of one image. ``eq=False``: numpy arrays have no single truth value.

    Attributes:
        image_id: the annotation file stem (VOC, ILSVRC) or the COCO ``file_name`` stem.
        boxes: (N, 4) float64 ``[xmin, ymin, xmax, ymax]``, inclusive 1-based pixel indices.
        labels: (N,) int64 indices into ``DetectionDataset.class_names``.
        difficult: (N,) bool; VOC ``<difficult>1``, COCO ``iscrowd``; always False for ILSVRC.
        width, height: the image size in pixels.
    """

    image_id: str
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    width: int
    height: int


class DetectionDataset(torch.utils.data.Dataset):
    """Annotated images, checked when opened; ``__getitem__`` decodes one image.

    Attributes:
        root: the folder the layout was found in (for VOC the ``VOC20xx`` folder).
        split: the split read (COCO: the resolved name, e.g. ``val2017``).
        layout: ``"voc"``, ``"ilsvrc"`` or ``"coco"``.
        class_names: VOC: names as in the XML; ILSVRC: WNIDs in DET_ID order; COCO: category names
            in category-id order. ``labels`` index this list.
        class_descriptions: human-readable names (ILSVRC devkit ``name``, COCO names), else the
            class names.
        image_ids: one per image, in the split's order.
        blacklist: ``(image_id, class index)`` pairs the ILSVRC evaluation ignores; empty elsewhere.
        skipped: ``(what, reason)`` for every file or object left out (only when not strict).
        class_source: where ``class_names`` came from (the ``classes`` argument, a file, the
            per-class lists, the names seen in every split, ...), for the log.
        unreadable: ``(image path, reason)`` of the images :func:`drop_unreadable` left out.
    """

    def __init__(
        self,
        *,
        root: Path,
        split: str,
        layout: str,
        class_names: Sequence[str],
        class_descriptions: Sequence[str],
        images: Sequence[tuple[Path, DetectionTarget]],
        blacklist: frozenset[tuple[str, int]] = frozenset(),
        skipped: Sequence[tuple[str, str]] = (),
        class_source: str = "",
        annotation_files: Sequence[Path] = (),
        unreadable: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.layout = layout
        self.class_names = list(class_names)
        self.class_descriptions = list(class_descriptions)
        self._paths = [path for path, _ in images]
        self._targets = [target for _, target in images]
        self.image_ids = [t.image_id for t in self._targets]
        self.blacklist = frozenset(blacklist)
        self.skipped = list(skipped)
        self.class_source = class_source
        # The file each image's objects were read from (what a warning about an object names).
        self._annotation_files = list(annotation_files) or [self.root] * len(self._targets)
        self.unreadable = list(unreadable)

    def __len__(self) -> int:
        return len(self._targets)

    def __getitem__(self, i: int) -> tuple[PIL.Image.Image, DetectionTarget]:
        path = self._paths[i]
        try:
            with PIL.Image.open(path) as image:
                # No EXIF transpose: VOC, ILSVRC and COCO boxes index the stored pixels (as
                # torchvision's VOCDetection and CocoDetection read them).
                rgb = image.convert("RGB")
        except Exception as exc:  # PIL signals corrupt data with assorted exception types
            raise GoogLeNetError(f"cannot decode image {path}: {type(exc).__name__}: {exc}") from exc
        return rgb, self._targets[i]

    def target(self, i: int) -> DetectionTarget:
        """The annotation of image ``i``, without decoding the image."""
        return self._targets[i]

    def targets(self) -> list[DetectionTarget]:
        """Every image's annotation, in dataset order."""
        return list(self._targets)

    def image_path(self, i: int) -> Path:
        return self._paths[i]

    def annotation_file(self, i: int) -> Path:
        """The annotation file image ``i``'s objects were read from (COCO: the split's json)."""
        return self._annotation_files[i]

    def subset(self, indices: Sequence[int]) -> DetectionDataset:
        """The images at ``indices`` (in that order), same classes and blacklist."""
        return DetectionDataset(
            root=self.root,
            split=self.split,
            layout=self.layout,
            class_names=self.class_names,
            class_descriptions=self.class_descriptions,
            images=[(self._paths[i], self._targets[i]) for i in indices],
            blacklist=self.blacklist,
            skipped=self.skipped,
            class_source=self.class_source,
            annotation_files=[self._annotation_files[i] for i in indices],
            unreadable=self.unreadable,
        )

    def __repr__(self) -> str:
        return (
            f"DetectionDataset(layout={self.layout!r}, split={self.split!r}, root='{self.root}', "
            f"images={len(self)}, classes={len(self.class_names)}, skipped={len(self.skipped)})"
        )


def open_detection_dataset(
    data: str | Path,
    split: str = "val",
    *,
    strict: bool = False,
    classes: Sequence[str] | None = None,
) -> DetectionDataset:
    """Open the detection split ``split`` of the VOC, ILSVRC DET or COCO layout found under ``data``.

    ``data == "builtin"`` resolves the package's built-in detection set first. ``classes`` fixes the
    class list (and so the label order; ILSVRC: WNIDs, COCO: category names); objects of other
    classes are unknown. With ``strict`` the first bad file or object raises a one-line
    :class:`GoogLeNetError` naming it; otherwise it is left out, recorded in ``skipped`` and logged.
    """
    if str(data) == "builtin":
        # Imported here: the built-in set's module generates data and is not needed otherwise.
        from .builtin import resolve_detection_data

        data = resolve_detection_data("builtin")
    root = Path(data).expanduser()
    if not root.is_dir():
        raise GoogLeNetError(f"detection data folder {root} does not exist")
    problems = _Problems(strict)
    classes = _check_class_list(classes, "classes argument") if classes is not None else None
    if (root / "annotations").is_dir() and any((root / "annotations").glob("instances_*.json")):
        dataset = _open_coco(root, split, classes, problems)
    elif (ilsvrc := _find_ilsvrc(root)) is not None:
        dataset = _open_ilsvrc(root, ilsvrc, split, classes, problems)
    elif (voc := _find_voc(root)) is not None:
        dataset = _open_voc(voc, split, classes, problems)
    else:
        raise GoogLeNetError(
            f"no detection layout found in {root}: expected annotations/instances_<split>.json (COCO), "
            "ILSVRC201[34]_DET_bbox_<split>/ or [ILSVRC/]Annotations/DET/<split>/ (ILSVRC DET), or "
            "Annotations/ + ImageSets/Main/ [inside VOCdevkit/VOC20xx] (PASCAL VOC)"
        )
    problems.summarise(dataset)
    if len(dataset) == 0:
        # Nothing to skip: an empty split would only fail later, far from its cause.
        raise GoogLeNetError(
            f"split {split!r} of {dataset.root} has no usable images "
            f"({len(dataset.skipped)} skipped; first: {dataset.skipped[:1]})"
        )
    return dataset


# --------------------------------------------------------------------------- shared checks


@dataclass
class _Problems:
    """Strict: raise on the first problem. Otherwise: record it, warn, and let the caller skip."""

    strict: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)
    quiet: bool = False  # record only (files read for their class names, not as the split's)

    def __call__(self, what: str, reason: str) -> None:
        if self.strict:
            raise GoogLeNetError(f"{what}: {reason}")
        self.skipped.append((what, reason))
        if len(self.skipped) <= MAX_SKIP_WARNINGS and not self.quiet:
            logger.warning("skipped %s: %s", what, reason)

    def summarise(self, dataset: DetectionDataset) -> None:
        dataset.skipped = list(self.skipped)
        if len(self.skipped) > MAX_SKIP_WARNINGS:
            logger.warning(
                "%d more files/objects skipped in %s (see DetectionDataset.skipped)",
                len(self.skipped) - MAX_SKIP_WARNINGS,
                dataset.root,
            )


def _box_problem(box: Sequence[float], width: int, height: int, lowest: int = 1) -> str | None:
    """Why ``box`` (inclusive, 1-based) is not a box inside a ``width`` x ``height`` image, or None.

    ``lowest`` is the smallest coordinate accepted: 1 for VOC, 0 for ILSVRC (see ILSVRC_LOWEST)."""
    x1, y1, x2, y2 = box
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if x2 < x1 or y2 < y1:
        return f"box {shown} has xmax < xmin or ymax < ymin"
    if x1 < lowest or y1 < lowest or x2 > width or y2 > height:
        return (
            f"box {shown} is outside the {width}x{height} image "
            f"({lowest} <= x <= width, {lowest} <= y <= height)"
        )
    return None


def _header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header; PIL's open reads no pixel data."""
    with PIL.Image.open(path) as image:
        return image.size


def _find_image(stem: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = stem.with_name(stem.name + suffix)
        if path.is_file():
            return path
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"cannot read {path}: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _check_class_list(names: Sequence[str], source: object) -> list[str]:
    names = [str(n).strip() for n in names]
    if not names or any(not n for n in names):
        raise GoogLeNetError(f"{source}: class names must be non-empty. Got {names[:5]}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GoogLeNetError(f"{source} lists a class twice: {', '.join(duplicates)}")
    return names


def _read_classes_file(path: Path) -> list[str]:
    return _check_class_list(_read_lines(path), path)


def _make_target(
    image_id: str, objects: Sequence[tuple[Sequence[float], int, bool]], width: int, height: int
) -> DetectionTarget:
    boxes = np.array([o[0] for o in objects], dtype=np.float64).reshape(-1, 4)
    labels = np.array([o[1] for o in objects], dtype=np.int64)
    difficult = np.array([o[2] for o in objects], dtype=bool)
    for arr in (boxes, labels, difficult):
        arr.setflags(write=False)  # the target is frozen; so are its arrays
    return DetectionTarget(image_id, boxes, labels, difficult, int(width), int(height))


# --------------------------------------------------------------------------- VOC-style XML


@dataclass
class _XmlAnnotation:
    """One parsed XML file, boxes checked, class names not yet mapped to labels."""

    xml_path: Path
    image_path: Path
    image_id: str
    width: int
    height: int
    objects: list[tuple[int, str, tuple[float, float, float, float], bool]]  # (k, name, box, difficult)


def _parse_xml_file(path: Path, problems: _Problems) -> ET.Element | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems(str(path), f"cannot read annotation: {exc}")
        return None
    # ElementTree expands internal entities ("billion laughs"); annotation files never need a DTD,
    # so any file declaring one is refused rather than parsed (defusedxml is not a dependency).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        problems(str(path), "refused: the XML declares a DTD or entities")
        return None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        problems(str(path), f"malformed XML: {exc}")
        return None
    if root.tag != "annotation":
        problems(str(path), f"malformed annotation: root element <{root.tag}>, expected <annotation>")
        return None
    return root


def _xml_size(root: ET.Element) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        width, height = (int(float(size.findtext(tag) or "")) for tag in ("width", "height"))
    except ValueError:
        return None
    # Some tools write <width>0</width> when they did not know the size; the image header does.
    return (width, height) if width > 0 and height > 0 else None


def _read_xml_annotation(
    xml_path: Path, image_id: str, image_stem: Path, problems: _Problems, lowest: int = 1
) -> _XmlAnnotation | None:
    """Parse one VOC/ILSVRC XML file; file-level problems give None, bad objects are left out."""
    if not xml_path.is_file():
        problems(str(xml_path), "annotation file missing")
        return None
    image_path = _find_image(image_stem)
    if image_path is None:
        problems(str(xml_path), f"image file missing: {image_stem}{IMAGE_SUFFIXES[0]} (or another suffix)")
        return None
    root = _parse_xml_file(xml_path, problems)
    if root is None:
        return None
    size = _xml_size(root)
    if size is None:
        try:
            size = _header_size(image_path)
        except Exception as exc:  # PIL raises assorted errors on a damaged header
            problems(str(xml_path), f"no <size> and cannot read the size of {image_path}: {exc}")
            return None
    width, height = size
    objects = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        what = f"{xml_path}: object {k}" + (f" ({name})" if name else "")
        if not name:
            problems(what, "missing <name>")
            continue
        box = _xml_box(obj)
        if isinstance(box, str):
            problems(what, box)
            continue
        if (reason := _box_problem(box, width, height, lowest)) is not None:
            problems(what, reason)
            continue
        difficult = (obj.findtext("difficult") or "0").strip().lower() in ("1", "true")
        objects.append((k, name, box, difficult))
    return _XmlAnnotation(xml_path, image_path, image_id, width, height, objects)


def _xml_box(obj: ET.Element) -> tuple[float, float, float, float] | str:
    """The ``<bndbox>`` coordinates, or why they cannot be read."""
    bndbox = obj.find("bndbox")
    if bndbox is None:
        return "missing <bndbox>"
    values = []
    for tag in _COORDS:
        text = bndbox.findtext(tag)
        if text is None or not text.strip():
            return f"missing <bndbox><{tag}>"
        try:
            value = float(text)
        except ValueError:
            return f"non-numeric <{tag}> {text.strip()!r}"
        if not math.isfinite(value):
            return f"non-numeric <{tag}> {text.strip()!r}"
        values.append(value)
    return tuple(values)  # type: ignore[return-value]


def _label_xml_annotations(
    annotations: Sequence[_XmlAnnotation], class_names: Sequence[str], source: str, problems: _Problems
) -> list[tuple[Path, DetectionTarget]]:
    index = {name: i for i, name in enumerate(class_names)}
    images = []
    for ann in annotations:
        objects = []
        for k, name, box, difficult in ann.objects:
            if name not in index:
                problems(f"{ann.xml_path}: object {k} ({name})", f"unknown class {name!r} (not in {source})")
                continue
            objects.append((box, index[name], difficult))
        images.append((ann.image_path, _make_target(ann.image_id, objects, ann.width, ann.height)))
    return images


# --------------------------------------------------------------------------- PASCAL VOC


def _find_voc(root: Path) -> Path | None:
    """The ``VOC20xx`` folder: ``root`` itself, or the one inside ``root`` or ``root/VOCdevkit``."""
    if (root / "Annotations").is_dir():
        return root
    for base in (root, root / "VOCdevkit"):
        years = sorted(p for p in base.glob("VOC*") if (p / "Annotations").is_dir())
        if len(years) > 1:
            names = ", ".join(p.name for p in years)
            raise GoogLeNetError(f"{base} holds several VOC folders ({names}); pass one of them")
        if years:
            return years[0]
    return None


def _open_voc(root: Path, split: str, classes: list[str] | None, problems: _Problems) -> DetectionDataset:
    sets = root / "ImageSets" / "Main"
    split_file = sets / f"{split}.txt"
    if not split_file.is_file():
        # ImageSets/Main also holds per-class lists (aeroplane_train.txt); the splits have no "_".
        available = sorted(p.stem for p in sets.glob("*.txt") if "_" not in p.stem) if sets.is_dir() else []
        raise GoogLeNetError(
            f"split file {split_file} not found; available splits: {', '.join(available) or 'none'}"
        )
    image_ids = [line.split()[0] for line in _read_lines(split_file)]
    if not image_ids:
        raise GoogLeNetError(f"split file {split_file} is empty")
    annotations = []
    for image_id in image_ids:
        ann = _read_xml_annotation(
            root / "Annotations" / f"{image_id}.xml", image_id, root / "JPEGImages" / image_id, problems
        )
        if ann is not None:
            annotations.append(ann)
    class_names, source = _voc_class_list(root, split, annotations, classes)
    images = _label_xml_annotations(annotations, class_names, source, problems)
    return DetectionDataset(
        root=root, split=split, layout="voc", class_names=class_names, class_descriptions=class_names,
        images=images, class_source=source, annotation_files=[a.xml_path for a in annotations],
    )  # fmt: skip


def _voc_splits(sets: Path) -> list[str]:
    """The split lists of ``ImageSets/Main``: ``<split>.txt`` (per-class lists have a ``_``)."""
    return sorted(p.stem for p in sets.glob("*.txt") if "_" not in p.stem) if sets.is_dir() else []


def _voc_class_list(
    root: Path, split: str, annotations: Sequence[_XmlAnnotation], classes: list[str] | None
) -> tuple[list[str], str]:
    """One class list for every split of a VOC folder, and where it came from: ``classes``; then
    ``classes.txt``; the 20 VOC classes for a folder named ``VOC`` + 4 digits; the per-class lists
    ``ImageSets/Main/<class>_<split>.txt`` (the devkit's layout); else the names of every split's
    objects (the 20 VOC classes when each is one of them), so that no split has a list of its own."""
    sets = root / "ImageSets" / "Main"
    if classes is not None:
        return classes, "the classes argument"
    if (root / CLASSES_FILE).is_file():
        return _read_classes_file(root / CLASSES_FILE), str(root / CLASSES_FILE)
    if _VOC_FOLDER.match(root.name):
        return list(VOC_CLASSES), f"the 20 PASCAL VOC classes ({root.name} is a VOC folder)"
    splits = _voc_splits(sets)
    per_class = sorted(
        {p.stem[: -len(s) - 1] for s in splits for p in sets.glob(f"*_{s}.txt") if len(p.stem) > len(s) + 1}
    )
    if per_class:
        return per_class, f"the per-class lists <class>_<split>.txt in {sets}"
    seen = {name for ann in annotations for _, name, _, _ in ann.objects}
    others = [s for s in splits if s != split]
    ids = {line.split()[0] for s in others for line in _read_lines(sets / f"{s}.txt")}
    ids -= {ann.image_id for ann in annotations}
    quiet = _Problems(strict=False, quiet=True)  # the other splits' problems are theirs to report
    for image_id in sorted(ids):
        xml = _parse_xml_file(root / "Annotations" / f"{image_id}.xml", quiet)
        if xml is not None:
            seen |= {name for obj in xml.findall("object") if (name := (obj.findtext("name") or "").strip())}
    where = f"the splits {', '.join(sorted({split, *others}))}"
    if seen and seen <= set(VOC_CLASSES):
        return list(VOC_CLASSES), f"the 20 PASCAL VOC classes (every name in {where} is one)"
    return sorted(seen), f"the names of the objects in {where}"


# --------------------------------------------------------------------------- ILSVRC DET


@dataclass
class _IlsvrcLayout:
    """Where one ILSVRC DET layout keeps its folders (``kind``: "2014" tarballs, "2015" tree)."""

    kind: str
    base: Path  # the folder holding the annotation/image folders
    devkit: list[Path]  # candidate devkit ``data`` folders, first existing first

    def split_dirs(self, split: str) -> tuple[Path, Path, Path | None, list[str]]:
        """(annotation folder, image folder, split list file or None, available splits)."""
        if self.kind == "2015":
            available = sorted(p.name for p in (self.base / "Annotations" / "DET").iterdir() if p.is_dir())
            lists = self.base / "ImageSets" / "DET" / f"{split}.txt"
            return (
                self.base / "Annotations" / "DET" / split,
                self.base / "Data" / "DET" / split,
                lists if lists.is_file() else None,
                available,
            )
        available = sorted({p.name.split("_bbox_", 1)[1] for p in self.base.glob("ILSVRC201[34]_DET_bbox_*")})
        # The 2014 release re-packs 2013's folders under 2014 names; the newer one wins.
        ann = next((p for y in ("2014", "2013") if (p := self.base / f"ILSVRC{y}_DET_bbox_{split}").is_dir()),
                   self.base / f"ILSVRC2014_DET_bbox_{split}")  # fmt: skip
        img = next((p for y in ("2014", "2013") if (p := self.base / f"ILSVRC{y}_DET_{split}").is_dir()),
                   self.base / f"ILSVRC2014_DET_{split}")  # fmt: skip
        lists = next((p for d in self.devkit if (p := d / "det_lists" / f"{split}.txt").is_file()), None)
        return ann, img, lists, available


def _find_ilsvrc(root: Path) -> _IlsvrcLayout | None:
    if any(p.is_dir() for p in root.glob("ILSVRC201[34]_DET_bbox_*")):
        return _IlsvrcLayout("2014", root, _devkit_dirs([root, root.parent]))
    for base in (root, root / "ILSVRC"):
        if (base / "Annotations" / "DET").is_dir():
            return _IlsvrcLayout("2015", base, _devkit_dirs(list(dict.fromkeys([base, root, root.parent]))))
    return None


def _devkit_dirs(bases: Sequence[Path]) -> list[Path]:
    """Devkit ``data`` folders as the tarballs unpack (``ILSVRC2014_devkit/data``,
    ``ILSVRC2015/devkit/data``), newest year first."""
    found = []
    for base in bases:
        found += [base / "devkit" / "data"]
        found += sorted(base.glob("ILSVRC20*_devkit/data"), reverse=True)
        found += sorted(base.glob("ILSVRC20*_devkit/devkit/data"), reverse=True)
        found += sorted(base.glob("ILSVRC20*/devkit/data"), reverse=True)
    return [d for d in dict.fromkeys(found) if d.is_dir()]


def _read_meta_det(path: Path) -> list[tuple[str, str]]:
    """``(WNID, name)`` for DET_ID 1, 2, ... from the devkit's ``meta_det.mat``.

    The id field is ``DET_ID`` or ``ILSVRC201x_DET_ID`` by devkit year; entries past the first 200
    ids are WordNet hierarchy nodes, not classes (ILSVRC2014 devkit readme).
    """
    import scipy.io

    try:
        synsets = scipy.io.loadmat(str(path), squeeze_me=True)["synsets"]
        synsets = np.atleast_1d(synsets)
        id_field = next(f for f in synsets.dtype.names if f.endswith("DET_ID"))
        entries = sorted((int(s[id_field]), str(s["WNID"]), str(s["name"])) for s in synsets)
    except Exception as exc:  # scipy raises assorted errors on a damaged .mat file
        raise GoogLeNetError(f"cannot read devkit {path}: {type(exc).__name__}: {exc}") from exc
    entries = [e for e in entries if 1 <= e[0] <= ILSVRC_DET_CLASSES]
    if [i for i, _, _ in entries] != list(range(1, len(entries) + 1)):
        raise GoogLeNetError(f"{path}: DET_IDs of the classes are not 1..{len(entries)}")
    return [(wnid, name) for _, wnid, name in entries]


def _read_synset_text(path: Path) -> list[tuple[str, str]]:
    """``(WNID, name)`` from "WNID index name" lines (devkit ``map_det.txt``), in index order."""
    entries = []
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split(maxsplit=2)
        if len(parts) < 2 or not _WNID.match(parts[0]) or not parts[1].isdigit():
            raise GoogLeNetError(f"{path}:{lineno}: expected 'WNID index name'. Got {line!r}")
        entries.append((int(parts[1]), parts[0], parts[2] if len(parts) > 2 else parts[0]))
    entries.sort()
    if [i for i, _, _ in entries] != list(range(1, len(entries) + 1)):
        raise GoogLeNetError(f"{path}: the class indices are not 1..{len(entries)}")
    return [(wnid, name) for _, wnid, name in entries]


def _ilsvrc_synsets(layout: _IlsvrcLayout, root: Path) -> tuple[list[tuple[str, str]], Path] | None:
    """The devkit's DET classes in DET_ID order and the file they came from, or None."""
    readers: list[tuple[Path, Callable[[Path], list[tuple[str, str]]]]] = []
    for d in layout.devkit:
        readers += [(d / "meta_det.mat", _read_meta_det), (d / "map_det.txt", _read_synset_text)]
    for base in dict.fromkeys([root, layout.base]):
        readers += [(base / name, _read_synset_text) for name in ("map_det.txt", "det_synsets.txt")]
    for path, read in readers:
        if path.is_file():
            return read(path), path
    return None


def _open_ilsvrc(
    root: Path, layout: _IlsvrcLayout, split: str, classes: list[str] | None, problems: _Problems
) -> DetectionDataset:
    ann_dir, img_dir, list_file, available = layout.split_dirs(split)
    if not ann_dir.is_dir():
        raise GoogLeNetError(
            f"ILSVRC annotation folder {ann_dir} not found; "
            f"available splits: {', '.join(available) or 'none'}"
        )
    if not img_dir.is_dir():
        raise GoogLeNetError(f"ILSVRC image folder {img_dir} not found (train: extract the per-synset tars)")
    synsets = _ilsvrc_synsets(layout, root)
    if classes is not None:
        class_names, source = classes, "the classes argument"
    elif (root / CLASSES_FILE).is_file():
        class_names, source = _read_classes_file(root / CLASSES_FILE), str(root / CLASSES_FILE)
    elif synsets is not None:
        class_names, source = [wnid for wnid, _ in synsets[0]], str(synsets[1])
    else:
        looked = ", ".join(str(d) for d in layout.devkit) or f"{root}/ILSVRC2014_devkit/data"
        raise GoogLeNetError(
            f"no ILSVRC DET class list: looked for meta_det.mat / map_det.txt in {looked}, and "
            f"map_det.txt / det_synsets.txt / {CLASSES_FILE} in {root}"
        )
    names = dict(synsets[0]) if synsets is not None else {}
    descriptions = [names.get(c, c) for c in class_names]

    # Split list: "image_name index" lines (devkit det_lists/val.txt, ImageSets/DET/<split>.txt);
    # without one, every XML under the annotation folder in sorted order (val.txt's own order).
    if list_file is not None:
        entries = []
        for lineno, line in enumerate(_read_lines(list_file), 1):
            parts = line.split()
            if len(parts) > 1 and not parts[1].lstrip("-").isdigit():
                raise GoogLeNetError(f"{list_file}:{lineno}: expected 'image_name index'. Got {line!r}")
            entries.append((parts[0], int(parts[1]) if len(parts) > 1 else lineno))
    else:
        stems = sorted(p.relative_to(ann_dir).with_suffix("").as_posix() for p in ann_dir.rglob("*.xml"))
        entries = [(stem, i) for i, stem in enumerate(stems, 1)]
    if not entries:
        raise GoogLeNetError(f"split {split!r} is empty: no entries in {list_file or ann_dir}")
    annotations, by_index = [], {}
    for rel, index in entries:
        image_id = Path(rel).name
        ann = _read_xml_annotation(ann_dir / f"{rel}.xml", image_id, img_dir / rel, problems, ILSVRC_LOWEST)
        if ann is not None:
            annotations.append(ann)
            by_index[index] = image_id
    images = _label_xml_annotations(annotations, class_names, source, problems)

    blacklist: frozenset[tuple[str, int]] = frozenset()
    if split == "val":
        files = sorted((p for d in layout.devkit for p in d.glob("ILSVRC20*_det_validation_blacklist.txt")),
                       key=lambda p: p.name, reverse=True)  # fmt: skip
        if files:
            det_wnids = [wnid for wnid, _ in synsets[0]] if synsets is not None else []
            known = {index for _, index in entries}
            blacklist = _read_blacklist(files[0], by_index, known, class_names, det_wnids)
    return DetectionDataset(
        root=root, split=split, layout="ilsvrc", class_names=class_names, class_descriptions=descriptions,
        images=images, blacklist=blacklist, class_source=source,
        annotation_files=[a.xml_path for a in annotations],
    )  # fmt: skip


def _read_blacklist(
    path: Path,
    by_index: dict[int, str],
    known: set[int],
    class_names: Sequence[str],
    det_wnids: Sequence[str],
) -> frozenset[tuple[str, int]]:
    """``(image_id, class index)`` pairs from "val_index WNID" lines (``eval_detection.m`` reads
    ``'%d %s'``; the index is val.txt's second column); a 1-based DET_ID is accepted for the WNID."""
    index = {name: i for i, name in enumerate(class_names)}
    pairs = set()
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise GoogLeNetError(f"{path}:{lineno}: expected 'image_index WNID'. Got {line!r}")
        image_index, cls = int(parts[0]), parts[1]
        if cls.isdigit():
            det_id = int(cls)
            if not 1 <= det_id <= len(det_wnids):
                raise GoogLeNetError(
                    f"{path}:{lineno}: DET_ID {det_id} not in the devkit's 1..{len(det_wnids)}"
                )
            cls = det_wnids[det_id - 1]
        if cls not in index:
            raise GoogLeNetError(f"{path}:{lineno}: unknown class {cls!r}")
        if image_index not in known:
            raise GoogLeNetError(f"{path}:{lineno}: image index {image_index} is not in the split list")
        if image_index in by_index:  # else the image itself was skipped
            pairs.add((by_index[image_index], index[cls]))
    return frozenset(pairs)


# --------------------------------------------------------------------------- COCO


def _open_coco(root: Path, split: str, classes: list[str] | None, problems: _Problems) -> DetectionDataset:
    ann_dir = root / "annotations"
    json_path = ann_dir / f"instances_{split}.json"
    if not json_path.is_file():
        # "val" means val2017 when that is the only val file (COCO names splits by year).
        matches = sorted(ann_dir.glob(f"instances_{split}*.json"))
        if len(matches) != 1:
            available = sorted(p.stem.removeprefix("instances_") for p in ann_dir.glob("instances_*.json"))
            raise GoogLeNetError(
                f"{json_path} not found{' (ambiguous)' if matches else ''}; "
                f"available splits: {', '.join(available) or 'none'}"
            )
        json_path = matches[0]
    split = json_path.stem.removeprefix("instances_")
    img_dir = next((d for d in (root / split, root / "images" / split) if d.is_dir()), None)
    if img_dir is None:
        raise GoogLeNetError(f"COCO image folder {root / split} (or {root / 'images' / split}) not found")
    from pycocotools.coco import COCO

    try:
        # COCO() prints progress; library code stays quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(json_path))
    except Exception as exc:  # json / KeyError / AssertionError on a damaged file
        raise GoogLeNetError(
            f"cannot read COCO annotations {json_path}: {type(exc).__name__}: {exc}"
        ) from exc
    cat_ids = sorted(coco.getCatIds())
    cat_names = [str(c["name"]) for c in coco.loadCats(cat_ids)]
    source = "the classes argument" if classes is not None else f"the categories of {json_path}"
    class_names = classes if classes is not None else _check_class_list(cat_names, f"{json_path} categories")
    name_index = {name: i for i, name in enumerate(class_names)}
    label_of = {cid: name_index.get(name) for cid, name in zip(cat_ids, cat_names, strict=True)}
    name_of = dict(zip(cat_ids, cat_names, strict=True))

    images = []
    for img_id in sorted(coco.getImgIds()):
        info = coco.imgs[img_id]
        file_name = str(info.get("file_name", ""))
        what = f"{json_path}: image {file_name or img_id}"
        image_path = img_dir / file_name
        if not file_name or not image_path.is_file():
            problems(what, f"image file missing: {image_path}")
            continue
        try:
            width, height = int(info["width"]), int(info["height"])
        except (KeyError, TypeError, ValueError):
            try:
                width, height = _header_size(image_path)
            except Exception as exc:  # PIL raises assorted errors on a damaged header
                problems(what, f"no width/height and cannot read the size of {image_path}: {exc}")
                continue
        objects = []
        for k, ann in enumerate(coco.imgToAnns.get(img_id, [])):
            cid = ann.get("category_id")
            obj = f"{what}: object {k} (id {ann.get('id')}, {name_of.get(cid, cid)})"
            box = _coco_box(ann.get("bbox"))
            if isinstance(box, str):
                problems(obj, box)
                continue
            if (reason := _box_problem(box, width, height)) is not None:
                problems(obj, reason)
                continue
            if label_of.get(cid) is None:
                problems(obj, f"unknown class {name_of.get(cid, cid)!r} (category_id {cid})")
                continue
            objects.append((box, label_of[cid], bool(ann.get("iscrowd", 0))))
        images.append((image_path, _make_target(Path(file_name).stem, objects, width, height)))
    return DetectionDataset(
        root=root, split=split, layout="coco", class_names=class_names, class_descriptions=class_names,
        images=images, class_source=source, annotation_files=[json_path] * len(images),
    )  # fmt: skip


def _coco_box(bbox: object) -> tuple[float, float, float, float] | str:
    """A COCO annotation's ``bbox`` as an inclusive box (:func:`.boxes.from_coco`), or why it cannot
    be read."""
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return f"bbox must be [x, y, w, h]. Got {bbox!r}"
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return f"non-numeric bbox {bbox!r}"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return f"non-numeric bbox {bbox!r}"
    xmin, ymin, xmax, ymax = (float(v) for v in from_coco([[x, y, w, h]])[0])
    return (xmin, ymin, xmax, ymax)


# --------------------------------------------------------------------------- class lists, images


def parse_classes(spec: str | Path | Sequence[str]) -> list[str]:
    """A ``--classes`` value as a class list: a file of names (one per line), names separated by
    commas, or a sequence of names; checked (no empty name, none twice)."""
    if isinstance(spec, str | Path) and Path(spec).expanduser().is_file():
        return _read_classes_file(Path(spec).expanduser())
    if isinstance(spec, str | Path):
        names = [n for n in str(spec).split(",") if n.strip()]
        if len(names) == 1 and (Path(str(spec)).suffix or "/" in str(spec)):
            raise GoogLeNetError(f"--classes {spec}: no such file (or pass the names, comma-separated)")
        return _check_class_list(names, f"--classes {spec}")
    return _check_class_list(list(spec), "classes")


def class_warnings(datasets: Mapping[str, DetectionDataset]) -> list[str]:
    """One line per class of the splits ``datasets`` (split name -> dataset, one class list) that
    occurs in fewer than :data:`RARE_CLASS_OBJECTS` objects over them, or in one of them only,
    naming the annotation files its objects are in (a typo such as ``sqaure`` is both)."""
    splits = list(datasets.values())
    names = splits[0].class_names
    if any(ds.class_names != names for ds in splits):
        raise GoogLeNetError("class_warnings: the splits have different class lists")
    counts = {split: np.zeros(len(names), dtype=np.int64) for split in datasets}
    files: dict[int, list[str]] = {}
    for split, ds in datasets.items():
        for i, target in enumerate(ds.targets()):
            for c in np.unique(target.labels).tolist():
                counts[split][c] += int(np.count_nonzero(target.labels == c))
                named = files.setdefault(c, [])
                if len(named) < NAMED_FILES + 1 and str(ds.annotation_file(i)) not in named:
                    named.append(str(ds.annotation_file(i)))
    lines = []
    for c, name in enumerate(names):
        total = int(sum(n[c] for n in counts.values()))
        found_in = [split for split, n in counts.items() if n[c]]
        if total == 0:
            continue
        why = []
        if total < RARE_CLASS_OBJECTS:
            why.append(f"only {total} object{'s' * (total > 1)}")
        if len(datasets) > 1 and len(found_in) == 1:
            why.append(f"objects in the {found_in[0]} split only")
        if why:
            shown = files[c][:NAMED_FILES] + (["..."] if len(files[c]) > NAMED_FILES else [])
            lines.append(
                f"class {name!r} has {' and '.join(why)} ({', '.join(shown)}): a typo in a <name>? "
                "Correct the file, or fix the class list (--classes, classes.txt)"
            )
    return lines


def drop_unreadable(dataset: DetectionDataset, *, strict: bool = False, workers: int = 0) -> DetectionDataset:
    """``dataset`` without the images that cannot be decoded (every image is decoded once, in
    ``workers`` processes): each is named in a warning (the first :data:`MAX_SKIP_WARNINGS`, then a
    count) and listed in the result's ``unreadable``. ``strict`` (``--strict-data``): a one-line
    GoogLeNetError naming the first instead."""
    from ..data.datasets import unreadable_files

    bad = unreadable_files([dataset.image_path(i) for i in range(len(dataset))], workers)
    if not bad:
        return dataset
    where = f"the {dataset.split} split of {dataset.root}"
    if strict:
        path, reason = bad[0]
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise GoogLeNetError(
            f"unreadable image {path} ({reason}) in {where}{more} (--strict-data; remove it, or run "
            "without --strict-data to skip it)"
        )
    for path, reason in bad[:MAX_SKIP_WARNINGS]:
        logger.warning("skipped unreadable image %s (%s)", path, reason)
    if len(bad) > MAX_SKIP_WARNINGS:
        logger.warning("%d more unreadable images skipped in %s", len(bad) - MAX_SKIP_WARNINGS, where)
    gone = {path for path, _ in bad}
    keep = [i for i in range(len(dataset)) if str(dataset.image_path(i)) not in gone]
    if not keep:
        raise GoogLeNetError(f"every image of {where} is unreadable (first: {bad[0][0]}: {bad[0][1]})")
    readable = dataset.subset(keep)
    readable.unreadable = [*dataset.unreadable, *bad]
    return readable
