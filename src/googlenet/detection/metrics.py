"""Detection mAP by the ILSVRC2014 and PASCAL VOC devkits (paper section 8, Tables 4 and 5).

The paper's detection numbers (43.9% mAP for the ensemble, 38.02% for one model) are ILSVRC2014
DET mAP as computed by the challenge devkit's ``eval_detection.m``; PASCAL VOC's ``VOCevaldet.m``
is the other rule people report. The shape follows mmdetection's
``evaluation/functional/mean_ap.py``: one small matching function per rule (one image, one class:
per-detection TP / FP flags), then the precision/recall curve and its area (:func:`average_precision`),
then :func:`evaluate_detections` wiring them over a dataset. Everything works on plain numpy arrays.

Rules (``rule=``):

``ilsvrc``
    ``eval_detection.m``. Each ground truth has its own IoU threshold
    ``min(0.5, w*h / ((w + 10) * (h + 10)))`` (``defaultIOUthr``, ``pixelTolerance``), which lets a
    small object be found with a looser box. Within an image, detections of a class in descending
    score each take, among the *still unmatched* ground truths of that class, the one of highest
    IoU that meets that ground truth's own threshold (ties: the first); otherwise FP. Blacklisted
    (image, class) pairs: their detections count as neither TP nor FP and their ground truths are
    not counted. AP: all-points area under the monotone precision envelope (``VOCap.m``).
    ILSVRC has no "difficult" flag: a target's ``difficult`` objects are ordinary ground truth here.
``voc07`` / ``voc12``
    ``VOCevaldet.m``. Per class, detections over all images in descending score; each takes the
    ground truth of its class in its image with the highest IoU, difficult and already matched ones
    included. IoU >= 0.5: a difficult one -> ignored (neither TP nor FP), an unmatched one -> TP
    (now matched), a matched one -> FP (duplicate); IoU < 0.5 -> FP. Difficult objects are not
    counted as positives. AP: ``voc07`` 11-point interpolated (VOC2007), ``voc12`` all points
    (``VOCap.m``, VOC2010 and later). The blacklist, when given, is applied as under ``ilsvrc``.
``coco``
    pycocotools' ``COCOeval`` (:mod:`.coco_rule`): AP averaged over IoU .50:.95 and 101 recall
    points, with COCO's AP50, AP75, APs/m/l and AR1/10/100 besides; ``difficult`` objects become
    COCO crowds, the blacklist is dropped from both sides.

:class:`.rule_comparison.RuleComparison` puts one set of detections under every rule side by side.

Boxes are inclusive ``[xmin, ymin, xmax, ymax]`` with +1 widths (:mod:`.boxes`) under every rule.

Ties in score are broken the way MATLAB's ``sort(..., 'descend')`` does: stably, i.e. equal scores
keep their input order. Under ``voc*`` that is the order of the detection list (``VOCevaldet.m``
sorts the whole detection file); under ``ilsvrc`` it is the order of the images in ``targets``,
then the detection list's order within an image (``eval_detection.m`` gathers each class's
detections image by image before sorting). Ties in IoU go to the first ground truth (strict ``>``
in both devkits).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import GoogLeNetError
from .boxes import as_boxes, box_iou, box_sides

RULES = ("ilsvrc", "voc07", "voc12", "coco")
ALL_RULES = "all"  # every rule side by side (.rule_comparison)
AP_MODE = {"ilsvrc": "all", "voc07": "11point", "voc12": "all"}  # the devkit rules' curve areas
ILSVRC_MAX_IOU_THRESHOLD = 0.5  # eval_detection.m: defaultIOUthr
ILSVRC_PIXEL_TOLERANCE = 10  # eval_detection.m: pixelTolerance
VOC_MIN_OVERLAP = 0.5  # VOCinit.m: VOCopts.minoverlap


def check_rule(rule: str, *, allow_all: bool = True) -> str:
    """``rule`` when it names a rule of :data:`RULES` (or :data:`ALL_RULES`, every rule), checked before
    any work, the COCO rule's package included; else a one-line GoogLeNetError."""
    choices = (*RULES, ALL_RULES) if allow_all else RULES
    if rule not in choices:
        raise GoogLeNetError(f"unknown detection rule {rule!r} (choose from {', '.join(choices)})")
    if rule in ("coco", ALL_RULES):
        from ..inference.extras import require

        require("the COCO rule", "pycocotools")
    return rule


def descending(scores: object) -> np.ndarray:
    """Indices that sort ``scores`` in descending order, equal scores in input order (stable, as
    MATLAB's ``sort(..., 'descend')``)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.argsort(-s, kind="stable")


def ilsvrc_iou_thresholds(gt_boxes: object) -> np.ndarray:
    """Per ground-truth IoU threshold of ``eval_detection.m``: ``min(0.5, w*h / ((w+10)*(h+10)))``
    with +1 widths, so that a box within ~5 px of a small object still counts."""
    w, h = box_sides(gt_boxes)
    tol = ILSVRC_PIXEL_TOLERANCE
    return np.minimum(ILSVRC_MAX_IOU_THRESHOLD, (w * h) / ((w + tol) * (h + tol)))


def match_ilsvrc(det_boxes: object, det_scores: object, gt_boxes: object) -> tuple[np.ndarray, np.ndarray]:
    """``eval_detection.m``'s matching in one image for one class.

    Returns boolean ``(tp, fp)`` flags in the input order of the detections; every detection is
    exactly one of them. (Blacklisted pairs are dropped by the caller before matching.)
    """
    d, g = as_boxes(det_boxes), as_boxes(gt_boxes)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(d):
        raise ValueError(f"{len(d)} detection boxes but {len(scores)} scores")
    tp = np.zeros(len(d), dtype=bool)
    iou = box_iou(d, g)
    thresholds = ilsvrc_iou_thresholds(g)
    matched = np.zeros(len(g), dtype=bool)
    # A greedy loop, as the devkit's: each detection's choice depends on what higher-scoring ones took.
    for i in descending(scores):
        # Candidates: unmatched ground truths whose own threshold this detection meets.
        candidates = np.where(~matched & (iou[i] >= thresholds), iou[i], -np.inf)
        if len(g) and np.isfinite(best := candidates.max()):
            k = int(np.flatnonzero(candidates == best)[0])  # ties: the first ground truth
            tp[i] = matched[k] = True
    return tp, ~tp


def match_voc(
    det_boxes: object,
    det_scores: object,
    gt_boxes: object,
    gt_difficult: object | None = None,
    iou_threshold: float = VOC_MIN_OVERLAP,
) -> tuple[np.ndarray, np.ndarray]:
    """``VOCevaldet.m``'s matching in one image for one class.

    ``VOCevaldet.m`` walks all images' detections of a class in one descending-score pass, but a
    ground truth's "matched" state belongs to its image, so walking each image's detections in
    (stable) descending order is the same computation. Returns boolean ``(tp, fp)`` flags in the
    input order; a detection whose best ground truth is difficult (IoU >= threshold) is neither.
    """
    d, g = as_boxes(det_boxes), as_boxes(gt_boxes)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(d):
        raise ValueError(f"{len(d)} detection boxes but {len(scores)} scores")
    difficult = np.zeros(len(g), dtype=bool) if gt_difficult is None else np.asarray(gt_difficult, dtype=bool)
    if difficult.shape != (len(g),):
        raise ValueError(f"{len(g)} ground-truth boxes but difficult has shape {difficult.shape}")
    tp = np.zeros(len(d), dtype=bool)
    fp = np.zeros(len(d), dtype=bool)
    if len(g) == 0:
        fp[:] = True
        return tp, fp
    iou = box_iou(d, g)
    matched = np.zeros(len(g), dtype=bool)
    for i in descending(scores):
        k = int(np.argmax(iou[i]))  # argmax: ties to the first, as the devkit's strict '>'
        if iou[i, k] >= iou_threshold:
            if difficult[k]:
                continue  # neither TP nor FP
            if matched[k]:
                fp[i] = True  # duplicate
            else:
                tp[i] = matched[k] = True
        else:
            fp[i] = True
    return tp, fp


def precision_recall(
    scores: object, tp: object, fp: object, num_gt: float, weights: object | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative recall and precision over detections in (stable) descending score.

    Detections that are neither TP nor FP (VOC's difficult matches) are left out: they add nothing
    to either cumulative sum, so the devkit's curve has a repeated point there (or 0/0 before the
    first TP or FP, which MATLAB's ``max`` skips); dropping them gives the same AP.

    ``weights`` (one per detection, >= 0): each detection counts that many times, as if it were
    repeated (a bootstrap draw's image multiplicities, :class:`MatchedDetections`); ``num_gt`` is
    then the weighted count. A detection of weight 0 is left out. Its copies would sit side by side
    in the sorted list, and collapsing them into one point leaves both areas unchanged: the copies
    of a TP rise in recall and precision together, so the envelope over them is the last copy's;
    the copies of an FP only lower the precision at a recall already reached.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp, fp = np.asarray(tp, dtype=bool).reshape(-1), np.asarray(fp, dtype=bool).reshape(-1)
    if not (len(scores) == len(tp) == len(fp)):
        raise ValueError(f"scores, tp and fp differ in length: {len(scores)}, {len(tp)}, {len(fp)}")
    if num_gt <= 0:
        raise ValueError(f"recall needs at least one ground-truth object. Got num_gt={num_gt}")
    order = descending(scores)
    counted = (tp | fp)[order]
    if weights is None:
        tp_cum = np.cumsum(tp[order][counted])
        fp_cum = np.cumsum(fp[order][counted])
        return tp_cum / num_gt, tp_cum / np.maximum(tp_cum + fp_cum, 1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != scores.shape or np.any(w < 0):
        raise ValueError(f"weights must be {len(scores)} values >= 0. Got shape {w.shape}")
    counted &= w[order] > 0
    w = w[order][counted]
    tp_cum = np.cumsum(w * tp[order][counted])
    fp_cum = np.cumsum(w * fp[order][counted])
    return tp_cum / num_gt, tp_cum / (tp_cum + fp_cum)  # every counted point has a weight > 0


def average_precision(recall: object, precision: object, mode: Literal["all", "11point"] = "all") -> float:
    """Area under the precision/recall curve, as ``VOCap.m`` (``"all"``) or VOC2007's 11-point
    interpolation (``"11point"``: the mean over t = 0, 0.1, ..., 1 of the highest precision at
    recall >= t, 0 where none).

    The 11 thresholds are ``k / 10`` (so a recall of exactly 3/10 reaches t = 0.3); MATLAB's
    ``0:0.1:1`` and numpy's ``arange(0, 1.1, 0.1)`` make some of them one ulp off.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"recall and precision differ in length: {rec.shape} and {prec.shape}")
    if mode == "11point":
        return float(
            sum((prec[rec >= k / 10].max() if np.any(rec >= k / 10) else 0.0) for k in range(11)) / 11
        )
    if mode != "all":
        raise ValueError(f"mode must be 'all' or '11point'. Got {mode!r}")
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the monotone envelope
    step = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[step] - mrec[step - 1]) * mpre[step]))


@dataclass(frozen=True)
class DetectionEvaluation:
    """The result of :func:`evaluate_detections`. ``ap`` holds the classes with at least one counted
    ground-truth object (``num_gt`` > 0), ``mAP`` their mean; ``num_gt`` holds every class.

    Under ``coco``, ``ap`` is each class's AP over IoU .50:.95, ``summary`` ``COCOeval.summarize()``'s
    numbers by name (:data:`.coco_rule.COCO_STATS`: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100,
    ARs, ARm, ARl; None where COCO has no value, e.g. no small objects) and ``per_class`` the
    classes' AP50 and AP75; both are empty under the other rules.
    """

    rule: str
    ap: dict[str, float]
    mAP: float
    num_gt: dict[str, int]
    num_detections: int
    # class -> (recall, precision) at every counted detection, best first (for the report's plots);
    # under coco the 101 recall points and the precision there, averaged over the IoU thresholds
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False, repr=False)
    summary: dict[str, float | None] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"rule", "mAP", "AP": {class: ap}, "num_gt": {class: n}, "num_detections"}`` (and
        ``"not_scored"``: the classes without ground truth, when there are any), and under
        ``coco`` ``"summary": {"AP": .., "AP50": .., ..., "AR100": .., ...}`` and ``"per_class":
        {"AP50": {class: ap}, "AP75": {class: ap}}``; APs are fractions in [0, 1]."""
        out: dict[str, Any] = {
            "rule": self.rule,
            "mAP": self.mAP,
            "AP": dict(self.ap),
            "num_gt": dict(self.num_gt),
            "num_detections": self.num_detections,
        }
        if self.summary:
            out["summary"] = dict(self.summary)
        if self.per_class:
            out["per_class"] = {key: dict(values) for key, values in self.per_class.items()}
        if self.not_scored:
            out["not_scored"] = self.not_scored
        return out

    @property
    def not_scored(self) -> list[str]:
        """The classes without a counted ground-truth object in the split: left out of the mAP, as
        both devkits leave them (their AP is undefined), and said so in the table and the JSON."""
        return [name for name in self.num_gt if name not in self.ap]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DetectionEvaluation:
        """The inverse of :meth:`to_json` (other keys are ignored)."""
        try:
            rule, m_ap, ap, num_gt, num_det = (
                d["rule"],
                d["mAP"],
                d["AP"],
                d["num_gt"],
                d["num_detections"],
            )
            if rule not in RULES:
                raise ValueError(f"rule {rule!r} is not one of {', '.join(RULES)}")
            summary = d.get("summary", {})
            per_class = d.get("per_class", {})
            return cls(
                rule=rule,
                ap={str(k): float(v) for k, v in ap.items()},
                mAP=float(m_ap),
                num_gt={str(k): int(v) for k, v in num_gt.items()},
                num_detections=int(num_det),
                summary={str(k): None if v is None else float(v) for k, v in summary.items()},
                per_class={
                    str(key): {str(k): float(v) for k, v in values.items()}
                    for key, values in per_class.items()
                },
            )
        except KeyError as exc:
            raise GoogLeNetError(f"detection evaluation JSON lacks the key {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise GoogLeNetError(f"detection evaluation JSON is malformed: {exc}") from None

    def format_table(self) -> str:
        """Per-class AP (%) with the ground-truth count, then the mAP, as a text table (under
        ``coco`` with the classes' AP50 and AP75, and COCO's summary line)."""
        width = max([len("class"), len("mAP"), *map(len, self.num_gt)])
        extra = list(self.per_class)
        rule = f"{'-' * width}  {'-' * 7}" + f"  {'-' * 7}" * len(extra) + f"  {'-' * 7}"
        extra_titles = "".join(f"  {key:>7}" for key in extra)
        lines = [
            f"Detection AP, rule {self.rule} ({_RULE_TITLE[self.rule]}), {self.num_detections} detections",
            f"{'class':<{width}}  {'AP (%)':>7}{extra_titles}  {'num_gt':>7}",
            rule,
        ]

        def cell(values: Mapping[str, float], name: str) -> str:
            return f"{100 * values[name]:7.2f}" if name in values else f"{'-':>7}"

        for name, n in self.num_gt.items():
            others = "".join(f"  {cell(self.per_class[key], name)}" for key in extra)
            lines.append(f"{name:<{width}}  {cell(self.ap, name)}{others}  {n:7d}")
        lines.append(rule)
        means = "".join(f"  {100 * float(np.mean(list(self.per_class[key].values()))):7.2f}" for key in extra)
        lines.append(
            f"{'mAP':<{width}}  {100 * self.mAP:7.2f}{means}  "
            f"{sum(self.num_gt.values()):7d}   (mean over the {len(self.ap)} classes with ground truth)"
        )
        if self.not_scored:
            lines.append(
                f"not scored (no ground truth in this split, as the devkits): {', '.join(self.not_scored)}"
            )
        if self.summary:
            lines.append("COCO summary (%): " + format_summary(self.summary))
        return "\n".join(lines)


def format_summary(summary: Mapping[str, float | None]) -> str:
    """``AP 41.20  AP50 ...``: COCO's summary numbers in percent, ``-`` where COCO has none."""
    return "  ".join(f"{key} {'-' if v is None else f'{100 * v:.2f}'}" for key, v in summary.items())


_RULE_TITLE = {
    "ilsvrc": "ILSVRC2014 eval_detection.m",
    "voc07": "PASCAL VOC2007 VOCevaldet.m, 11-point AP",
    "voc12": "PASCAL VOC2010+ VOCevaldet.m, all-points AP",
    "coco": "COCO, pycocotools COCOeval: AP over IoU .50:.95 at 101 recall points",
}


def evaluate_detections(
    detections: Sequence[Any],
    targets: Iterable[Any],
    class_names: Sequence[str],
    rule: str,
    blacklist: Collection[tuple[str, int]] = frozenset(),
) -> DetectionEvaluation:
    """Per-class AP and mAP of ``detections`` against ``targets`` under ``rule`` (see the module).

    ``detections``: objects with ``image_id``, ``label`` (class index), ``score``, ``bbox``
    (:class:`.detections.Detection`). ``targets``: objects with ``image_id``, ``boxes`` (N, 4),
    ``labels`` (N,), ``difficult`` (N,) (the detection dataset's targets). ``blacklist``:
    (image id, class index) pairs left out (ILSVRC's ``blacklist`` file). Every rule at once:
    :func:`.rule_comparison.compare_rules`. Under the devkit rules this is
    :func:`match_detections` (the matching) and :meth:`MatchedDetections.evaluation` (the curves).
    """
    if rule == ALL_RULES:
        raise GoogLeNetError(
            f"rule {ALL_RULES!r} gives one evaluation per rule: call compare_rules (googlenet.detection)"
        )
    check_rule(rule, allow_all=False)
    if rule != "coco":
        return match_detections(detections, targets, class_names, rule, blacklist).evaluation()
    from .coco_rule import coco_scores

    images, _ = _indexed(detections, targets, len(class_names))
    coco = coco_scores(images, detections, class_names, frozenset(blacklist))
    extra = {"summary": coco.summary, "per_class": coco.per_class}
    return _evaluation(rule, coco.ap, coco.num_gt, len(detections), coco.curves, **extra)


def _indexed(
    detections: Sequence[Any], targets: Iterable[Any], num_classes: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], dict[tuple[str, int], list[int]]]:
    """The targets checked, ``{image_id: (boxes, labels, difficult)}`` in their order, and the
    detections checked, ``{(image_id, class): [their indices, in input order]}``."""
    images: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for t in targets:
        boxes, labels = as_boxes(t.boxes), np.asarray(t.labels, dtype=np.int64).reshape(-1)
        difficult = np.asarray(t.difficult, dtype=bool).reshape(-1)
        if t.image_id in images:
            raise GoogLeNetError(f"image {t.image_id!r} appears twice in the targets")
        if not (len(boxes) == len(labels) == len(difficult)):
            raise GoogLeNetError(
                f"image {t.image_id!r}: {len(boxes)} boxes, {len(labels)} labels, {len(difficult)} flags"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise GoogLeNetError(f"image {t.image_id!r}: a label outside 0..{num_classes - 1}")
        images[t.image_id] = (boxes, labels, difficult)
    by_pair: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, det in enumerate(detections):
        if det.image_id not in images:
            raise GoogLeNetError(f"detection {i} is on image {det.image_id!r}, which has no annotation")
        if not 0 <= int(det.label) < num_classes:
            raise GoogLeNetError(f"detection {i} has label {det.label} outside 0..{num_classes - 1}")
        by_pair[(det.image_id, int(det.label))].append(i)
    return images, by_pair


@dataclass(frozen=True)
class ClassMatches:
    """One class's counted detections (TP or FP; VOC's difficult matches and blacklisted pairs left
    out) in the devkit's ranking, best first: the index of each one's image, its score and flag."""

    image: np.ndarray  # int64 indices into MatchedDetections.image_ids
    scores: np.ndarray
    tp: np.ndarray  # bool; a counted detection that is not a TP is an FP


@dataclass(frozen=True)
class MatchedDetections:
    """Detections matched to the ground truth under a devkit rule (``ilsvrc``, ``voc07``, ``voc12``):
    what :func:`evaluate_detections` computes its curves from (:meth:`evaluation`).

    Both devkits match image by image (a ground truth is taken by a detection of its own image), so
    each detection's TP / FP flag does not depend on the other images. A bootstrap draw over images
    (:mod:`.bootstrap`) therefore only counts each image ``k`` times, its detections and its ground
    truths alike: :meth:`evaluation` and :meth:`mean_ap` with ``weights`` (one per image) give the
    AP of that resampled set without matching again. (Exactly, when no two detections of a class
    tie in score: an explicit resample orders tied detections by its own image order.)

    ``num_gt``: images x classes, the counted ground-truth objects (not difficult ones under VOC, none
    on a blacklisted pair). ``classes``: per class index, its :class:`ClassMatches`.
    ``detections_per_image``: every detection of each image (blacklisted ones too), for the count.
    """

    rule: str
    class_names: tuple[str, ...]
    image_ids: tuple[str, ...]
    num_gt: np.ndarray
    classes: tuple[ClassMatches, ...]
    detections_per_image: np.ndarray

    def _weights(self, weights: object | None) -> np.ndarray | None:
        if weights is None:
            return None
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (len(self.image_ids),) or np.any(w < 0):
            raise ValueError(f"weights must be {len(self.image_ids)} values >= 0, one per image")
        return w

    def _curves(self, weights: np.ndarray | None) -> dict[str, tuple[float, tuple[np.ndarray, np.ndarray]]]:
        """Per class with a counted ground truth (weighted): its AP and (recall, precision)."""
        counts = self.num_gt.sum(0) if weights is None else weights @ self.num_gt
        out = {}
        for c, (name, m) in enumerate(zip(self.class_names, self.classes, strict=True)):
            if counts[c] <= 0:
                continue  # no positives: AP undefined, left out of the mAP as in both devkits' sets
            w = None if weights is None else weights[m.image]
            recall, precision = precision_recall(m.scores, m.tp, ~m.tp, counts[c], weights=w)
            out[name] = (average_precision(recall, precision, AP_MODE[self.rule]), (recall, precision))
        return out

    def evaluation(self, weights: object | None = None) -> DetectionEvaluation:
        """The per-class AP and mAP, each image counted ``weights[i]`` times (default once); an
        error when no class has a counted ground truth."""
        w = self._weights(weights)
        counts = self.num_gt.sum(0) if w is None else np.rint(w @ self.num_gt).astype(np.int64)
        curves = self._curves(w)
        ap = {name: value for name, (value, _) in curves.items()}
        num_gt = {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}
        per_image = self.detections_per_image
        num_det = int(per_image.sum()) if w is None else int(np.rint(w @ per_image))
        return _evaluation(self.rule, ap, num_gt, num_det, {k: c for k, (_, c) in curves.items()})

    def mean_ap(self, weights: object | None = None) -> float:
        """The mAP of :meth:`evaluation` alone (NaN when no class has a counted ground truth)."""
        aps = [value for value, _ in self._curves(self._weights(weights)).values()]
        return float(np.mean(aps)) if aps else float("nan")


def match_detections(
    detections: Sequence[Any],
    targets: Iterable[Any],
    class_names: Sequence[str],
    rule: str,
    blacklist: Collection[tuple[str, int]] = frozenset(),
) -> MatchedDetections:
    """Match ``detections`` to ``targets`` under the devkit ``rule`` (``ilsvrc``, ``voc07`` or
    ``voc12``; arguments as :func:`evaluate_detections`): every counted detection's TP / FP flag and
    every image's counted ground truths, per class."""
    if rule not in AP_MODE:
        raise GoogLeNetError(f"matching is per devkit rule ({', '.join(AP_MODE)}). Got {rule!r}")
    num_classes = len(class_names)
    blacklist = frozenset(blacklist)
    images, by_pair = _indexed(detections, targets, num_classes)

    # class -> the images (in targets order) with a ground truth or a detection of it: the only ones
    # that add to its curve (ILSVRC val has 20k images x 200 classes, most pairs empty).
    order = {image_id: i for i, image_id in enumerate(images)}
    relevant: dict[int, set[str]] = defaultdict(set)
    for image_id, (_, labels, _) in images.items():
        for c in np.unique(labels).tolist():
            relevant[c].add(image_id)
    for image_id, c in by_pair:
        relevant[c].add(image_id)

    all_scores = np.array([float(d.score) for d in detections], dtype=np.float64)
    all_boxes = as_boxes([np.asarray(d.bbox, dtype=np.float64).reshape(4) for d in detections])
    num_gt = np.zeros((len(images), num_classes), dtype=np.int64)
    per_image = np.zeros(len(images), dtype=np.int64)
    for (image_id, _), idx in by_pair.items():
        per_image[order[image_id]] += len(idx)
    classes = []
    for c in range(num_classes):
        picked: list[np.ndarray] = []  # detection indices, in the devkit's concatenation order
        tps: list[np.ndarray] = []
        fps: list[np.ndarray] = []
        for image_id in sorted(relevant[c], key=order.__getitem__):
            if (image_id, c) in blacklist:
                continue
            boxes, labels, difficult = images[image_id]
            of_class = labels == c
            gt, gt_difficult = boxes[of_class], difficult[of_class]
            idx = np.asarray(by_pair.get((image_id, c), []), dtype=np.int64)
            if rule == "ilsvrc":
                num_gt[order[image_id], c] = len(gt)
                tp, fp = match_ilsvrc(all_boxes[idx], all_scores[idx], gt)
            else:
                num_gt[order[image_id], c] = int(np.count_nonzero(~gt_difficult))
                tp, fp = match_voc(all_boxes[idx], all_scores[idx], gt, gt_difficult)
            picked.append(idx)
            tps.append(tp)
            fps.append(fp)
        idx = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        tp = np.concatenate(tps) if tps else np.zeros(0, dtype=bool)
        fp = np.concatenate(fps) if fps else np.zeros(0, dtype=bool)
        if rule != "ilsvrc":
            # VOCevaldet.m sorts the detection file itself: ties keep the file's order. (eval_detection.m
            # concatenates image by image, in targets order, as gathered above: ties keep that order.)
            file_order = np.argsort(idx, kind="stable")
            idx, tp, fp = idx[file_order], tp[file_order], fp[file_order]
        # The devkit's ranking, kept: every weighted curve sorts an already sorted list.
        ranked = descending(all_scores[idx])
        ranked = ranked[(tp | fp)[ranked]]
        image = np.array([order[detections[i].image_id] for i in idx[ranked]], dtype=np.int64)
        classes.append(ClassMatches(image, all_scores[idx[ranked]], tp[ranked]))
    return MatchedDetections(rule, tuple(class_names), tuple(images), num_gt, tuple(classes), per_image)


def _evaluation(
    rule: str,
    ap: dict[str, float],
    num_gt: dict[str, int],
    num_detections: int,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    **extra: Any,
) -> DetectionEvaluation:
    """The evaluation, its mAP the mean over the classes with an AP; an error when there is none."""
    if not ap:
        raise GoogLeNetError(
            f"no class has a ground-truth object counted under rule {rule}: nothing to score"
        )
    return DetectionEvaluation(
        rule=rule,
        ap=ap,
        mAP=float(np.mean(list(ap.values()))),
        num_gt=num_gt,
        num_detections=num_detections,
        curves=curves,
        **extra,
    )
