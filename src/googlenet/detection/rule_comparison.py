"""One set of detections under every scoring rule side by side (section 8's mAP beside VOC's and COCO's).

The paper's 43.9% is ILSVRC2014 mAP; a user comparing with a VOC or COCO paper, or with another tool,
needs to know which number to quote and why the numbers differ. :func:`compare_rules` scores the
detections once per rule (:mod:`.metrics`, :mod:`.coco_rule`) and :class:`RuleComparison` lays them
out as a chain in which each step changes one thing:

========================  =====================================================================
``ilsvrc``                ``eval_detection.m``: per-object IoU threshold ``min(0.5, wh/((w+10)(h+10)))``,
                          each detection takes the best *still unmatched* object, difficult ones count
``voc12 - ilsvrc``        the matching: IoU 0.5 for every object (small ones get harder), a
                          detection takes the best object even if matched (a duplicate), difficult
                          objects ignored
``voc07 - voc12``         the curve's area: 11-point interpolation instead of all points
``coco AP50 - voc12``     COCO at IoU 0.5: 101-point interpolation, best unmatched object, difficult
                          objects as crowds (overlap = intersection / detection area), at most 100
                          detections per image and class
``coco AP - AP50``        IoU averaged over .50:.95: the localisation
========================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from .metrics import RULES, DetectionEvaluation, MatchedDetections, evaluate_detections, format_summary

# (column, rule, key of DetectionEvaluation.per_class or None for .ap), in the chain's order.
COLUMNS = (
    ("ilsvrc", "ilsvrc", None),
    ("voc12", "voc12", None),
    ("voc07", "voc07", None),
    ("coco AP50", "coco", "AP50"),
    ("coco AP", "coco", None),
)
# (the difference's name, minuend column, subtrahend column): each step of the chain changes one thing.
STEPS = (
    ("voc12 - ilsvrc", "voc12", "ilsvrc"),
    ("voc07 - voc12", "voc07", "voc12"),
    ("AP50 - voc12", "coco AP50", "voc12"),
    ("AP - AP50", "coco AP", "coco AP50"),
)


@dataclass(frozen=True)
class RuleComparison:
    """``evaluations``: one :class:`.metrics.DetectionEvaluation` per rule of :data:`.metrics.RULES`,
    of the same detections."""

    evaluations: dict[str, DetectionEvaluation]

    def __post_init__(self) -> None:
        missing = [rule for rule in RULES if rule not in self.evaluations]
        if missing:
            raise GoogLeNetError(f"a rule comparison needs every rule; missing {', '.join(missing)}")

    @property
    def rules(self) -> list[str]:
        return list(RULES)

    @property
    def num_detections(self) -> int:
        return self.evaluations[RULES[0]].num_detections

    def column(self, name: str) -> dict[str, float]:
        """``{class: AP}`` of one column of :data:`COLUMNS` (classes with counted ground truth)."""
        ((rule, key),) = [(r, k) for column, r, k in COLUMNS if column == name]
        evaluation = self.evaluations[rule]
        return dict(evaluation.ap if key is None else evaluation.per_class[key])

    def means(self) -> dict[str, float]:
        """Each column's mean over its classes (under a rule's own name: its mAP)."""
        return {name: float(np.mean(list(self.column(name).values()))) for name, _, _ in COLUMNS}

    def differences(self) -> dict[str, dict[str, float]]:
        """Per step of :data:`STEPS`: ``{"mAP": difference of the means, class: difference}`` over the
        classes both columns score (a class with only difficult objects has no VOC or COCO AP)."""
        means = self.means()
        out = {}
        for step, a, b in STEPS:
            first, second = self.column(a), self.column(b)
            out[step] = {"mAP": means[a] - means[b]} | {
                name: first[name] - second[name] for name in first if name in second
            }
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"rule": "all", "rules": [...], "evaluations": {rule: DetectionEvaluation.to_json()},
        "differences": {step: {"mAP": d, class: d}}}``; fractions in [-1, 1]."""
        return {
            "rule": "all",
            "rules": self.rules,
            "evaluations": {rule: self.evaluations[rule].to_json() for rule in RULES},
            "differences": self.differences(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RuleComparison:
        """The inverse of :meth:`to_json` (the differences are recomputed)."""
        evaluations = d.get("evaluations") if isinstance(d, Mapping) else None
        if not isinstance(evaluations, Mapping):
            raise GoogLeNetError("a rule comparison's JSON lacks its 'evaluations' object")
        return cls({str(rule): DetectionEvaluation.from_json(e) for rule, e in evaluations.items()})

    def format_table(self) -> str:
        """Per class: the AP (%) under each rule, then each step's difference in points; the means;
        COCO's summary."""
        names = list(self.evaluations["ilsvrc"].num_gt)
        columns = [name for name, _, _ in COLUMNS]
        steps = [step for step, _, _ in STEPS]
        values = {name: self.column(name) for name in columns}
        differences = self.differences()
        width = max([len("class"), len("mean"), *map(len, names)])
        cells = [max(len(c), 7) for c in columns] + [max(len(s), 7) for s in steps]
        header = ["objects", "difficult", *columns, *steps]
        sizes = [7, 9, *cells]
        line = f"{'-' * width}  " + "  ".join("-" * n for n in sizes)

        def row(label: str, items: Sequence[str]) -> str:
            return f"{label:<{width}}  " + "  ".join(f"{v:>{n}}" for v, n in zip(items, sizes, strict=True))

        def ap(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.2f}"

        def diff(v: float | None) -> str:
            # + 0.0 turns a rounded -0.0 (a difference of -1e-16) into 0.0: "+0.00", not "-0.00".
            return "-" if v is None else f"{round(100 * v, 2) + 0.0:+.2f}"

        counted = self.evaluations["ilsvrc"].num_gt
        not_difficult = self.evaluations["voc12"].num_gt
        lines = [
            f"Detection AP (%) of {self.num_detections} detections under every rule; each difference "
            "(points) changes one thing (docs/detection.md, 'Which number to quote')",
            row("class", header),
            line,
        ]
        for name in names:
            lines.append(
                row(
                    name,
                    [str(counted[name]), str(counted[name] - not_difficult[name])]
                    + [ap(values[c].get(name)) for c in columns]
                    + [diff(differences[s].get(name)) for s in steps],
                )
            )
        lines.append(line)
        means = self.means()
        lines.append(
            row(
                "mean",
                [str(sum(counted.values())), str(sum(counted.values()) - sum(not_difficult.values()))]
                + [ap(means[c]) for c in columns]
                + [diff(differences[s]["mAP"]) for s in steps],
            )
        )
        lines.append("COCO summary (%): " + format_summary(self.evaluations["coco"].summary))
        lines.append(
            "Quote ilsvrc beside the paper's Tables 4-5 and ILSVRC results, voc07 / voc12 beside PASCAL VOC "
            "2007 / 2010+ results, coco AP (and AP50, AP75) beside COCO-style results."
        )
        return "\n".join(lines)


def compare_rules(
    detections: Sequence[Any],
    targets: Iterable[Any],
    class_names: Sequence[str],
    blacklist: Collection[tuple[str, int]] = frozenset(),
    *,
    matched: MatchedDetections | None = None,
) -> RuleComparison:
    """``detections`` scored under every rule of :data:`.metrics.RULES` (arguments as
    :func:`.metrics.evaluate_detections`). ``matched``: these detections already matched under one
    devkit rule (:func:`.metrics.match_detections`); that rule's evaluation is computed from it
    instead of matching again."""
    targets = list(targets)

    def evaluate(rule: str) -> DetectionEvaluation:
        if matched is not None and matched.rule == rule:
            return matched.evaluation()  # what evaluate_detections computes from the same matching
        return evaluate_detections(detections, targets, class_names, rule, blacklist)

    return RuleComparison({rule: evaluate(rule) for rule in RULES})
