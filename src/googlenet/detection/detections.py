"""Detections files: what ``googlenet detect --json`` writes and ``googlenet evaluate-detection`` scores.

A detections file is a JSON list with one entry per detected box::

    [{"image_id": "<annotation file stem>", "label": "<class name as in the annotations>",
      "bbox": [xmin, ymin, xmax, ymax], "score": 0.93}, ...]

Boxes are inclusive pixel indices (the annotations' convention, :mod:`.boxes`). The devkits read
one line per box (``image label score x1 y1 x2 y2`` with numeric labels, ``eval_detection.m``);
names instead of indices keep a file readable and tied to the class list it was made for.

:func:`read_detections` also reads what ``googlenet detect --json`` wrote before it wrote this
format, ``[{"image": PATH, "detections": [{"label", "score", "bbox"}]}]`` (the image id is the
file's stem). :func:`format_detections` writes COCO's results format on request (``coco``:
``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, ``score``), what other tools read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..errors import GoogLeNetError

KEYS = ("image_id", "label", "bbox", "score")
FORMATS = ("googlenet", "coco")  # format_detections: this module's, COCO's results format


@dataclass(frozen=True, eq=False)
class Detection:
    """One scored box: ``label`` is a class index, ``bbox`` inclusive ``[xmin, ymin, xmax, ymax]``."""

    image_id: str
    label: int
    score: float
    bbox: np.ndarray

    def __post_init__(self) -> None:
        bbox = np.asarray(self.bbox, dtype=np.float64).reshape(-1)
        if bbox.shape != (4,):
            raise ValueError(f"a detection's bbox has 4 numbers. Got shape {bbox.shape}")
        object.__setattr__(self, "bbox", bbox)


def _is_number(value: Any) -> bool:
    # bool is an int in Python; true/false in a bbox is a mistake, not a coordinate.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _parse_entry(entry: Any, names: dict[str, int], image_ids: Collection[str]) -> Detection:
    """One entry -> :class:`Detection`; ValueError saying what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError(f"is a {type(entry).__name__}, not an object with keys {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in entry]
    if missing:
        raise ValueError(f"lacks the key(s) {', '.join(missing)}")
    image_id, label, bbox, score = (entry[k] for k in KEYS)
    if not isinstance(image_id, str) or image_id not in image_ids:
        raise ValueError(f"image_id {image_id!r} is not an image of the dataset split")
    if not isinstance(label, str) or label not in names:
        raise ValueError(f"label {label!r} is not a class of the dataset")
    if not _is_number(score) or not _is_finite(score):
        raise ValueError(f"score {score!r} is not a finite number")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise ValueError(f"bbox {bbox!r} is not a list of 4 numbers [xmin, ymin, xmax, ymax]")
    if not all(_is_finite(v) for v in bbox):
        raise ValueError(f"bbox {bbox!r} has a non-finite coordinate")
    x1, y1, x2, y2 = bbox
    if x2 < x1 or y2 < y1:
        raise ValueError(f"bbox {bbox!r} has xmax < xmin or ymax < ymin")
    return Detection(image_id=image_id, label=names[label], score=float(score), bbox=np.asarray(bbox, float))


def _entries_of_old_detect_output(entries: list[Any]) -> list[Any]:
    """The records of the former ``detect --json`` (``{image, detections: [...]}``) as entries of
    this format; other lists unchanged."""
    old = [isinstance(e, dict) and set(e) == {"image", "detections"} for e in entries]
    if not entries or not all(old) or not all(isinstance(e["detections"], list) for e in entries):
        return entries
    return [
        {"image_id": Path(str(record["image"])).stem, **d} if isinstance(d, dict) else d
        for record in entries
        for d in record["detections"]
    ]


def read_detections(
    path: str | Path, class_names: Sequence[str], image_ids: Iterable[str]
) -> list[Detection]:
    """Read a detections file (see the module), checking every entry against the dataset's
    ``class_names`` and ``image_ids``; a GoogLeNetError names the file and the first bad entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"cannot read detections file {path}: {exc}") from None
    try:
        # Python's json also reads NaN / Infinity: the entry checks below refuse them.
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoogLeNetError(f"detections file {path} is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise GoogLeNetError(
            f"detections file {path} holds a {type(entries).__name__}; expected a list of "
            f"{{{', '.join(KEYS)}}} objects"
        )
    entries = _entries_of_old_detect_output(entries)
    names = {name: i for i, name in enumerate(class_names)}
    ids = image_ids if isinstance(image_ids, set | frozenset) else frozenset(image_ids)
    detections = []
    for i, entry in enumerate(entries):
        try:
            detections.append(_parse_entry(entry, names, ids))
        except ValueError as exc:
            raise GoogLeNetError(f"detections file {path}, entry {i}: {exc}") from None
    return detections


def _coco_image_id(image_id: str) -> int | str:
    # COCO's own file names are the image id zero-padded (000000397133.jpg is image 397133).
    return int(image_id) if image_id.isdigit() else image_id


def format_detections(
    detections: Iterable[Detection],
    class_names: Sequence[str],
    *,
    format: str = "googlenet",
    category_ids: Mapping[str, int] | None = None,
) -> str:
    """The text of a detections file (``format="googlenet"``, see the module) or of COCO's results
    format (``"coco"``): ``image_id`` (an all-digit stem as the integer, as COCO's file names are
    its ids), ``category_id`` (``category_ids[name]``, default the class's 1-based position in
    ``class_names``: COCO's own ids are not contiguous, so pass them when scoring against a COCO
    annotation file), ``bbox`` ``[x, y, w, h]`` (:func:`.boxes.to_coco`) and ``score``."""
    from .boxes import to_coco

    if format not in FORMATS:
        raise GoogLeNetError(f"unknown detections format {format!r}; choose from {', '.join(FORMATS)}")
    entries = []
    for i, d in enumerate(detections):
        if not 0 <= int(d.label) < len(class_names):
            raise GoogLeNetError(f"detection {i} has label {d.label} outside 0..{len(class_names) - 1}")
        name = class_names[int(d.label)]
        box = np.asarray(d.bbox, dtype=np.float64).reshape(4)
        if format == "coco":
            category = int(d.label) + 1 if category_ids is None else category_ids.get(name)
            if category is None:
                raise GoogLeNetError(f"class {name!r} has no COCO category id in category_ids")
            entries.append(
                {
                    "image_id": _coco_image_id(str(d.image_id)),
                    "category_id": int(category),
                    "bbox": [float(v) for v in to_coco(box[None])[0]],
                    "score": float(d.score),
                }
            )
        else:
            entries.append(
                {
                    "image_id": str(d.image_id),
                    "label": name,
                    "bbox": [float(v) for v in box],
                    "score": float(d.score),
                }
            )
    # One entry a line: diffable, and still plain JSON. allow_nan=False: never write a file we refuse.
    body = ",\n".join(json.dumps(e, allow_nan=False) for e in entries)
    return f"[\n{body}\n]\n" if entries else "[]\n"


def write_detections(
    path: str | Path,
    detections: Iterable[Detection],
    class_names: Sequence[str],
    *,
    format: str = "googlenet",
    category_ids: Mapping[str, int] | None = None,
) -> Path:
    """Write ``detections`` as a detections file (atomically); labels become class names
    (``format="coco"``: COCO's results format, see :func:`format_detections`)."""
    text = format_detections(detections, class_names, format=format, category_ids=category_ids)
    return atomic_write_text(path, text)


def detections_of(scored: Mapping[str, Any]) -> list[Detection]:
    """Flatten ``{image_id: ScoredBoxes}`` (a detector's output) into :class:`Detection` s."""
    return [
        Detection(image_id, int(label), float(score), box)
        for image_id, found in scored.items()
        for box, label, score in zip(found.boxes, found.labels, found.scores, strict=True)
    ]


def scored_boxes_of(detections: Iterable[Detection], image_ids: Iterable[str]) -> dict[str, Any]:
    """The inverse of :func:`detections_of`: ``{image_id: ScoredBoxes}`` for every one of
    ``image_ids`` (in their order; an image without detections gets none, detections of other images
    are left out), each image's best first."""
    from .scoring import ScoredBoxes

    by_image: dict[str, list[Detection]] = {str(i): [] for i in image_ids}
    for d in detections:
        if d.image_id in by_image:
            by_image[d.image_id].append(d)
    out = {}
    for image_id, found in by_image.items():
        found.sort(key=lambda d: -d.score)  # stable: ties keep the file's order
        out[image_id] = ScoredBoxes(
            np.array([d.bbox for d in found], dtype=np.float64).reshape(-1, 4),
            np.array([d.label for d in found], dtype=np.int64),
            np.array([d.score for d in found], dtype=np.float64),
        )
    return out
