"""The built-in detection set: a procedurally generated stand-in for ILSVRC 2014 DET / PASCAL VOC.

Section 8 of the paper scores GoogLeNet's R-CNN detector on ILSVRC 2014 detection (200 classes,
mAP). That data cannot be shipped or used on a laptop CPU, so ``builtin`` names this set instead:
scenes of several objects of the classification set's first ``classes`` classes (the same shapes
and fills as :mod:`googlenet.data.builtin`, so a classifier trained there transfers), drawn by
:func:`googlenet.data.scenes.render_scene` and written in the PASCAL VOC layout (VOC devkit
``VOCdevkit/VOC2007``), which :mod:`googlenet.detection.datasets` reads::

    root/Annotations/<id>.xml        <size>, one <object> per object: <name>, <truncated>,
                                     <occluded>, <difficult>, <bndbox> (inclusive, 1-based)
    root/JPEGImages/<id>.jpg
    root/ImageSets/Main/train.txt    image ids, one per line (and val.txt)
    root/classes.txt                 one class name per line, in label order
    root/builtin_detection.json      parameters, counts and statistics; written last, the marker

Each box is the tight box of the object's *visible* pixels after clipping by the border and
occlusion by the objects and clutter drawn over it. An object of which less than
:data:`DIFFICULT_BELOW` of its area stays visible is kept but marked ``<difficult>1</difficult>``:
the VOC evaluation (``VOCevaldet.m``) then neither rewards nor punishes detecting it, which is
kinder to a detector than dropping it (a detection of a dropped object would count as a false
positive). An object with no visible pixel is not annotated.

Each image is drawn from its own random stream seeded by (seed, split, index), so the files are
byte-identical whatever the number of worker processes. Statistics: docs/builtin_detection.md.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import cache
from ..atomic import atomic_write, atomic_write_text
from ..data.scenes import BUILTIN_CLASSES, render_in_workers, render_scene
from ..errors import GoogLeNetError
from ..manifest import write_json
from .boxes import box_area
from .draw import DIFFICULT_COLOUR, colour_of, draw_boxes, fit_into

# Bumped whenever the generator's output changes; part of the cache key and of the marker.
BUILTIN_DETECTION_VERSION = 1
# Names this generator's random streams; the classification set's tag is 1 (data/builtin.py).
_STREAM_TAG = 2
BUILTIN_DETECTION_FORMAT = "googlenet-builtin-detection"
MARKER_NAME = "builtin_detection.json"
CLASSES_NAME = "classes.txt"
SPLITS = ("train", "val")
MIN_IMAGE_SIZE = 64
MAX_IMAGE_SIZE = 1024
JPEG_QUALITY = 90
MAX_OBJECTS = 6  # objects drawn per image: uniform in 1..6 (before unseen ones are left out)
# Visible share of an object's area below which it is marked difficult (see the module docstring).
DIFFICULT_BELOW = 0.3
# COCO's size buckets on sqrt(box area): small < 32 <= medium < 96 <= large (cocoeval.py areaRng).
SIZE_BUCKETS = (("small", 32), ("medium", 96), ("large", float("inf")))

DEFAULT_DETECTION_PARAMS: dict[str, int] = {
    "classes": 6,
    "train_images": 400,
    "val_images": 100,
    "image_size": 256,
    "seed": 0,
}


def check_detection_params(
    params: Mapping[str, Any], names: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Validate and complete generation parameters (defaults from :data:`DEFAULT_DETECTION_PARAMS`).

    ``names`` maps a parameter to the name the user typed (``{"classes": "--classes"}``) so the
    error message names what the user can change. ``workers`` is checked but not returned.
    """
    unknown = set(params) - set(DEFAULT_DETECTION_PARAMS) - {"workers"}
    if unknown:
        raise GoogLeNetError(f"unknown built-in detection set parameter(s): {', '.join(sorted(unknown))}")
    given = {k: v for k, v in params.items() if v is not None}
    out = {**DEFAULT_DETECTION_PARAMS, **given}
    label = (names or {}).get

    def bad(key: str, why: str) -> GoogLeNetError:
        shown = label(key, key)
        return GoogLeNetError(f"{shown}{' ' if shown.startswith('-') else '='}{out[key]!r}: {why}")

    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise bad(key, "must be an integer")
        out[key] = int(value)
    if not 1 <= out["classes"] <= len(BUILTIN_CLASSES):
        raise bad("classes", f"must be between 1 and {len(BUILTIN_CLASSES)} (the built-in classes)")
    for key in ("train_images", "val_images", "workers"):
        if key in out and out[key] < 1:
            raise bad(key, "must be at least 1")
    if not MIN_IMAGE_SIZE <= out["image_size"] <= MAX_IMAGE_SIZE:
        raise bad("image_size", f"must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels")
    if out["seed"] < 0:
        raise bad("seed", "must be non-negative")
    out.pop("workers", None)
    return out


def image_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The random stream of one image: a function of (seed, split, index) only."""
    return np.random.SeedSequence([_STREAM_TAG, seed, SPLITS.index(split), index])


def image_id(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def annotation_xml(image_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> bytes:
    """One VOC annotation file; ``objects`` hold ``name``, ``box`` (inclusive, 1-based) and the flags."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = image_name
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "googlenet built-in detection set"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = obj["name"]
        ET.SubElement(node, "pose").text = "Unspecified"
        for flag in ("truncated", "occluded", "difficult"):
            ET.SubElement(node, flag).text = str(int(obj[flag]))
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"], strict=True):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _render_chunk(root: str, params: dict[str, int], tasks: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Draw and write ``tasks`` (split, index); return one statistics record per image."""
    records = []
    for split, index in tasks:
        rng = np.random.default_rng(image_seed(params["seed"], split, index))
        scene = render_scene(rng, params["image_size"], classes=params["classes"], max_objects=MAX_OBJECTS)
        name = image_id(split, index)
        objects = [
            {
                "name": BUILTIN_CLASSES[o.class_index],
                # VOC boxes are 1-based inclusive pixel indices (VOCdevkit, PASCAL annotation guidelines).
                "box": tuple(v + 1 for v in o.box),
                "truncated": o.truncated,
                "occluded": o.occluded,
                "difficult": o.visible < DIFFICULT_BELOW,
                "visible": o.visible,
            }
            for o in scene.objects
        ]
        width, height = scene.image.size
        xml = annotation_xml(f"{name}.jpg", width, height, objects)
        # Plain writes: ``root`` is the temporary directory, and renaming it is the atomic step.
        Path(root, "Annotations", f"{name}.xml").write_bytes(xml)
        # optimize=False and no EXIF/ICC keep the bytes a function of the pixels only.
        scene.image.save(Path(root, "JPEGImages", f"{name}.jpg"), format="JPEG", quality=JPEG_QUALITY)
        records.append({"split": split, "objects": objects})
    return records


def _statistics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts a user of the set wants to know: objects per image, sizes, visibility, flags."""
    per_image = [len(r["objects"]) for r in records]
    objects = [o for r in records for o in r["objects"]]
    sizes = {name: 0 for name, _ in SIZE_BUCKETS}
    for o in objects:
        side = float(box_area([o["box"]])[0]) ** 0.5
        sizes[next(name for name, limit in SIZE_BUCKETS if side < limit)] += 1
    visible = np.array([o["visible"] for o in objects], dtype=np.float64)
    return {
        "images": len(records),
        "objects": len(objects),
        "objects_per_image": {str(n): per_image.count(n) for n in range(max(per_image, default=0) + 1)},
        "sizes": sizes,
        "visible": {
            "lt_0.3": int((visible < 0.3).sum()),
            "0.3-0.7": int(((visible >= 0.3) & (visible < 0.7)).sum()),
            "0.7-0.99": int(((visible >= 0.7) & (visible < 0.99)).sum()),
            "ge_0.99": int((visible >= 0.99).sum()),
        },
        "difficult": sum(o["difficult"] for o in objects),
        "truncated": sum(o["truncated"] for o in objects),
        "occluded": sum(o["occluded"] for o in objects),
    }


def read_detection_info(root: str | Path) -> dict[str, Any] | None:
    """The contents of ``root/builtin_detection.json`` if ``root`` holds a complete set, else None."""
    try:
        info = json.loads((Path(root) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != BUILTIN_DETECTION_FORMAT:
        return None
    return info


def is_complete(root: str | Path, params: Mapping[str, Any] | None = None) -> bool:
    """True if ``root`` holds a finished set of this generator version (with ``params``, if given)."""
    info = read_detection_info(root)
    if info is None or info.get("version") != BUILTIN_DETECTION_VERSION:
        return False
    return params is None or info.get("params") == check_detection_params(params)


def make_builtin_detection(dir: str | Path, *, workers: int | None = None, **params: Any) -> Path:
    """Generate the built-in detection set into ``dir`` and return it (absolute).

    ``params``: ``classes``, ``train_images``, ``val_images``, ``image_size``, ``seed`` (defaults in
    :data:`DEFAULT_DETECTION_PARAMS`). Written into a temporary sibling and renamed into place under
    a lock (:func:`googlenet.cache.build_directory`). A ``dir`` holding the same set is reused; any
    other non-empty ``dir`` is an error (nothing is deleted). Byte-identical output for equal
    parameters, whatever ``workers`` is (default ``min(2, CPUs)``).
    """
    full = check_detection_params({**params, "workers": workers})
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    return cache.build_directory(
        dir,
        is_complete=lambda path: is_complete(path, full),
        check_target=_check_target,
        generate=lambda tmp: _generate(tmp, full, n_workers),
    )


def _check_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise GoogLeNetError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        info = read_detection_info(root)
        if info is not None:
            shown = " ".join(f"{k}={v}" for k, v in (info.get("params") or {}).items())
            raise GoogLeNetError(
                f"{root} holds a built-in detection set made with other parameters ({shown}, version "
                f"{info.get('version')}); choose another directory or delete it yourself"
            )
        raise GoogLeNetError(
            f"{root} is not empty and not a complete built-in detection set; choose another directory"
        )


def _generate(tmp: Path, params: dict[str, int], workers: int) -> None:
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp / sub).mkdir(parents=True)
    counts = {"train": params["train_images"], "val": params["val_images"]}
    tasks = [(split, i) for split in SPLITS for i in range(counts[split])]
    records = [
        r for chunk in render_in_workers(_render_chunk, (str(tmp), params), tasks, workers) for r in chunk
    ]
    if len(records) != len(tasks):
        raise AssertionError("built-in detection set: a worker lost images")
    for split in SPLITS:
        ids = "".join(f"{image_id(split, i)}\n" for i in range(counts[split]))
        atomic_write_text(tmp / "ImageSets" / "Main" / f"{split}.txt", ids)
    names = BUILTIN_CLASSES[: params["classes"]]
    atomic_write_text(tmp / CLASSES_NAME, "".join(f"{n}\n" for n in names))
    info = {
        "format": BUILTIN_DETECTION_FORMAT,
        "version": BUILTIN_DETECTION_VERSION,
        "params": params,
        "classes": list(names),
        "counts": {split: counts[split] for split in SPLITS},
        "statistics": {split: _statistics([r for r in records if r["split"] == split]) for split in SPLITS},
        "image_size": "shorter side in pixels",
        "boxes": "VOC: inclusive 1-based pixel indices of the visible pixels",
        "difficult": f"visible share of the object's area < {DIFFICULT_BELOW}",
    }
    # Written last: its presence is what makes the directory a complete set.
    write_json(tmp / MARKER_NAME, info)


# ----------------------------------------------------------------------------------------------
# The cache behind ``builtin`` as detection data.


def builtin_detection_key(**params: Any) -> str:
    """Short hash of the generation parameters (and generator version): the cache directory's name."""
    return cache.parameter_key(BUILTIN_DETECTION_VERSION, check_detection_params(params))


def ensure_builtin_detection(cache_dir: str | Path | None = None, **params: Any) -> Path:
    """The cached built-in detection set for ``params`` (keywords of :func:`make_builtin_detection`),
    made on first use; concurrent callers share one copy (see :func:`googlenet.cache.build_directory`)."""
    workers = params.pop("workers", None)
    full = check_detection_params(params)
    return cache.cached_set(
        "builtin-detection",
        builtin_detection_key(**full),
        cache_dir,
        lambda target: is_complete(target, full),
        lambda target: make_builtin_detection(target, workers=workers, **full),
    )


def resolve_detection_data(data: str | Path, **params: Any) -> Path:
    """``"builtin"`` -> :func:`ensure_builtin_detection` (``params`` passed on); else the existing folder."""
    return cache.data_folder(
        data,
        "detection data folder",
        "give a VOC-layout folder or 'builtin'",
        lambda: ensure_builtin_detection(**params),
    )


# ----------------------------------------------------------------------------------------------
# A picture of the set, for the docs.


def detection_contact_sheet(
    root: str | Path, path: str | Path, n: int = 16, *, split: str = "train", cell: int = 256
) -> Path:
    """Write a PNG grid of the first ``n`` images of ``split`` with their boxes and class names.

    Boxes are drawn in their class's colour, those of difficult objects thin and grey.
    """
    root = Path(root)
    ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text(encoding="utf-8").split()[:n]
    colours = {
        name: colour_of(k) for k, name in enumerate((root / CLASSES_NAME).read_text(encoding="utf-8").split())
    }
    cols = min(4, max(1, len(ids)))
    rows = -(-len(ids) // cols)
    sheet = Image.new("RGB", (cols * (cell + 4), rows * (cell + 4)), (255, 255, 255))
    for k, name in enumerate(ids):
        with Image.open(root / "JPEGImages" / f"{name}.jpg") as im:
            im = im.convert("RGB")
        im, scale = fit_into(im, cell)
        x0 = (k % cols) * (cell + 4) + 2 + (cell - im.width) // 2
        y0 = (k // cols) * (cell + 4) + 2 + (cell - im.height) // 2
        sheet.paste(im, (x0, y0))
        boxes, texts, box_colours, widths = [], [], [], []
        for obj in ET.parse(root / "Annotations" / f"{name}.xml").getroot().iter("object"):
            cls = obj.findtext("name") or "?"
            boxes.append([float(obj.findtext(f"bndbox/{t}") or 0) for t in ("xmin", "ymin", "xmax", "ymax")])
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            texts.append(cls + (" (difficult)" if difficult else ""))
            box_colours.append(DIFFICULT_COLOUR if difficult else colours.get(cls, (255, 0, 255)))
            widths.append(1 if difficult else 2)
        # Labels kept inside the thumbnail, so they never cover the neighbouring image.
        draw_boxes(sheet, boxes, texts, box_colours, scale=scale, offset=(x0, y0), widths=widths,
                   clip=(x0, y0, x0 + im.width, y0 + im.height))  # fmt: skip
    palette = sheet.quantize(256)  # a 256-colour PNG keeps the picture small in the repository
    small = sheet.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    return atomic_write(path, lambda tmp: small.save(tmp, format="PNG", optimize=True))
