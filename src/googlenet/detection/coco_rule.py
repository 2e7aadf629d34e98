"""The COCO rule: pycocotools' ``COCOeval`` on a detection split, beside the devkits' rules (paper section 8).

The paper scores with the ILSVRC2014 devkit (:mod:`.metrics`); most detectors published since are
scored with COCO's AP, so ``rule="coco"`` runs pycocotools itself (``COCOeval(..., "bbox")``, its
``evaluate`` / ``accumulate`` / ``summarize``) on ground truth and results objects built here in
memory from the dataset's targets and the detections:

- boxes: inclusive pixels ``xmin..xmax`` become ``x = xmin - 1``, ``w = xmax - xmin + 1``
  (:func:`.boxes.to_coco`, as detectron2's PASCAL VOC loader converts). COCO's IoU on those is then
  the devkits' +1 IoU (:func:`.boxes.box_iou`), number for number;
- area (the small / medium / large buckets: under 32^2, 32^2 to 96^2, over 96^2 px): the box's
  ``w * h``. The targets hold boxes only; COCO's own annotation files give a mask's area, which
  ``COCOeval`` uses for boxes too, so on COCO data APs/APm/APl can differ from the official ones
  for objects near a bucket's edge;
- ``difficult`` objects (VOC's ``<difficult>``; :mod:`.datasets` reads COCO's ``iscrowd`` into the
  same flag) become ``iscrowd = 1``, COCO's way of saying "neither reward nor penalty": they are not
  counted as positives, and a detection that matches one is neither a true nor a false positive
  (VOC's rule for difficult objects). Unlike VOC, several detections may match one crowd, a
  detection matches a regular object first, and overlap with a crowd is intersection over the
  detection's own area;
- ILSVRC's blacklisted (image, class) pairs are dropped from both sides before ``COCOeval`` sees
  them, exactly as the devkit rules drop them;
- image ids are 1..N in the targets' order, category ids 1..C in the class list's order.

Per class, ``ap`` is the mean of ``COCOeval.eval["precision"]`` over the 10 IoU thresholds and 101
recall points (area "all", 100 detections), so their mean over the classes with ground truth is
COCO's AP (``stats[0]``); ``summary`` holds ``summarize()``'s 12 numbers by their usual names.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .boxes import as_boxes, box_area, to_coco

# COCOeval.summarize()'s stats, in its order: AP over IoU .50:.95, at .50 and .75, by area; AR with
# at most 1, 10, 100 detections per image, and by area at 100.
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# Per-class APs kept besides the .50:.95 one: their index in COCOeval's iouThrs (.50, .55, ..., .95).
COCO_CLASS_AP = {"AP50": 0, "AP75": 5}


@dataclass(frozen=True)
class CocoScores:
    """What :func:`coco_scores` computes; :func:`.metrics.evaluate_detections` makes a
    ``DetectionEvaluation`` of it (``ap`` and ``per_class`` hold the classes with counted ground truth)."""

    ap: dict[str, float]
    num_gt: dict[str, int]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    summary: dict[str, float | None]
    per_class: dict[str, dict[str, float]]


def _coco_objects(
    images: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    detections: Sequence[Any],
    class_names: Sequence[str],
    blacklist: Collection[tuple[str, int]],
) -> tuple[Any, Any]:
    """pycocotools ``COCO`` objects of the ground truth and of the results, built in memory."""
    from pycocotools.coco import COCO

    image_index = {image_id: n + 1 for n, image_id in enumerate(images)}
    gt_annotations: list[dict[str, Any]] = []
    for image_id, (boxes, labels, difficult) in images.items():
        keep = np.array([(image_id, int(c)) not in blacklist for c in labels], dtype=bool)
        for box, area, label, crowd in zip(
            to_coco(boxes[keep]), box_area(boxes[keep]), labels[keep], difficult[keep], strict=True
        ):
            gt_annotations.append(
                {
                    "id": len(gt_annotations) + 1,
                    "image_id": image_index[image_id],
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(area),
                    "iscrowd": int(crowd),
                }
            )
    kept = [d for d in detections if (d.image_id, int(d.label)) not in blacklist]
    dt_boxes = as_boxes([np.asarray(d.bbox, dtype=np.float64).reshape(4) for d in kept])
    # What COCO.loadRes makes of a results list (which it refuses when empty): ids 1.., area w * h.
    dt_annotations = [
        {
            "id": n + 1,
            "image_id": image_index[d.image_id],
            "category_id": int(d.label) + 1,
            "bbox": [float(v) for v in box],
            "area": float(area),
            "score": float(d.score),
            "iscrowd": 0,
        }
        for n, (d, box, area) in enumerate(zip(kept, to_coco(dt_boxes), box_area(dt_boxes), strict=True))
    ]
    common = {
        "images": [{"id": i} for i in image_index.values()],
        "categories": [{"id": c + 1, "name": name} for c, name in enumerate(class_names)],
    }
    objects = []
    for anns in (gt_annotations, dt_annotations):
        coco = COCO()
        coco.dataset = {**common, "annotations": anns}
        coco.createIndex()
        objects.append(coco)
    return objects[0], objects[1]


def coco_scores(
    images: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    detections: Sequence[Any],
    class_names: Sequence[str],
    blacklist: Collection[tuple[str, int]] = frozenset(),
) -> CocoScores:
    """``COCOeval``'s scores of ``detections`` (see the module).

    ``images``: ``{image_id: (boxes (N, 4) inclusive, labels (N,), difficult (N,))}`` in the split's
    order, checked by :func:`.metrics.evaluate_detections`, which calls this for ``rule="coco"``.
    """
    from pycocotools.cocoeval import COCOeval  # evaluate_detections checked it is installed

    blacklist = frozenset(blacklist)
    # pycocotools prints its progress; library code stays quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = _coco_objects(images, detections, class_names, blacklist)
        coco = COCOeval(gt, dt, "bbox")
        coco.evaluate()
        coco.accumulate()
        coco.summarize()
    # precision: [IoU threshold, recall point, class, area range (0: all), max detections (-1: 100)];
    # -1 where a class has no counted ground truth.
    precision = coco.eval["precision"][:, :, :, 0, -1]
    ap: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {key: {} for key in COCO_CLASS_AP}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    num_gt = {name: 0 for name in class_names}
    for g in gt.dataset["annotations"]:
        if not g["iscrowd"]:
            num_gt[class_names[g["category_id"] - 1]] += 1
    for c, name in enumerate(class_names):
        p = precision[:, :, c]
        if num_gt[name] == 0:
            continue  # no positives: AP undefined, left out of the mean as COCOeval leaves it out
        ap[name] = float(p.mean())
        for key, t in COCO_CLASS_AP.items():
            per_class[key][name] = float(p[t].mean())
        # The mean over the IoU thresholds at each recall point: its mean over the points is the AP.
        curves[name] = (np.asarray(coco.params.recThrs, dtype=np.float64), p.mean(axis=0))
    summary = {key: (None if v < 0 else float(v)) for key, v in zip(COCO_STATS, coco.stats, strict=True)}
    return CocoScores(ap, num_gt, curves, summary, per_class)
