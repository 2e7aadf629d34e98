"""Paired bootstrap intervals over images for differences in detection mAP (paper section 8).

Section 8 compares an ensemble of 6 region classifiers with one (Table 4's 43.9% against Table 5's
38.02%). On a val split of a few hundred images such a difference is partly the images' luck, so
each comparison here comes with a 95% interval: the detection twin of Table 3's paired effects
(:func:`googlenet.evaluation.protocol.paired_effects`). The images are resampled with replacement
(seeded); both settings are scored on every draw, on the same draw (paired: an image that is hard
for one is hard for the other); the interval is the 2.5th and 97.5th percentiles of the differences.

The mAP is not a mean over images, so each draw is scored anew, but without matching again: both
devkits match a detection against the ground truth of its own image only, so its TP / FP flag is
the same in every draw, and a draw only counts each image (its detections and its ground truths)
as often as it was drawn (:class:`.metrics.MatchedDetections` with ``weights``; one AP code).

Comparisons (:func:`result_intervals`), per proposal method and first-k ensemble (k >= 2):

* the ensemble vs member 0 alone (section 8's "1 vs 6");
* the ensemble vs the mean of its k members alone (the spread over seeds that one member hides);
* the ensemble vs the best of its k members, the best picked on each draw among the draw's mAPs.
  Picked on the very images scored, the best member is an optimistic reference for one model.

and each other proposal method vs the first, with the same members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .metrics import ALL_RULES, AP_MODE, MatchedDetections, match_detections

BOOTSTRAP_DRAWS = 1000  # resamples of the images per interval (the same draws for every comparison)
PERCENTILES = (2.5, 97.5)  # a 95% interval
INTERVAL_RULE = "ilsvrc"  # the rule of the intervals when every rule is scored (rule "all")
BEST_MEMBER_NOTE = (
    "The best member is picked on the images scored (on each draw, on its images): an optimistic "
    "reference for one model."
)


def image_multiplicities(num_images: int, draws: int, seed: int = 0) -> np.ndarray:
    """``draws x num_images``: how often each image comes up in each resample of ``num_images`` images
    drawn with replacement (seeded; each row sums to ``num_images``)."""
    if num_images < 1 or draws < 1:
        raise ValueError(f"needs one image and one draw at least. Got {num_images} and {draws}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=draws)


def bootstrap_maps(matched: Sequence[MatchedDetections], weights: np.ndarray) -> np.ndarray:
    """``draws x runs``: each run's mAP on each draw (``weights``: :func:`image_multiplicities`); NaN
    on a draw where no class has a ground truth. Every run must be of the same images."""
    images = {m.image_ids for m in matched}
    if len(images) > 1:
        raise ValueError("the runs are of different images: a paired bootstrap needs the same ones")
    return np.array([[m.mean_ap(w) for m in matched] for w in weights], dtype=np.float64).reshape(
        len(weights), len(matched)
    )


@dataclass(frozen=True)
class MapInterval:
    """``what``: one setting's mAP minus another's on the same images. ``point`` is the difference on
    the images themselves; ``low`` / ``high`` the 95% paired bootstrap interval (fractions, as the
    mAPs); ``draws`` resamples of ``images`` images with ``seed``, under ``rule``. ``proposals``,
    ``members`` and ``reference`` say which runs (``reference``: ``member 0``, ``mean member`` or
    ``best member`` for an ensemble, ``proposals METHOD`` for another method with the same members)."""

    what: str
    proposals: str
    members: tuple[int, ...]
    reference: str
    point: float
    low: float
    high: float
    draws: int
    images: int
    seed: int
    rule: str

    @property
    def excludes_zero(self) -> bool:
        """The interval lies on one side of zero: the difference is not the luck of these images."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "members": list(self.members), "excludes_zero": self.excludes_zero}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MapInterval:
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        return cls(**{**fields, "members": tuple(int(i) for i in d["members"])})


def interval(
    what: str, differences: np.ndarray, point: float, *, seed: int, rule: str, images: int, **run: Any
) -> MapInterval:
    """The :class:`MapInterval` of per-draw ``differences`` (draws where either side is undefined,
    NaN, are left out)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        raise ValueError(f"{what}: no draw with a defined mAP on both sides")
    low, high = np.percentile(d, PERCENTILES)
    return MapInterval(
        what, point=float(point), low=float(low), high=float(high), draws=len(d), images=images, seed=seed,
        rule=rule, **run,
    )  # fmt: skip


def paired_map_interval(
    a: MatchedDetections,
    b: MatchedDetections,
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    what: str = "a - b",
) -> MapInterval:
    """mAP(a) - mAP(b) for two sets of detections of the same images, matched under the same rule
    (:func:`.metrics.match_detections`), with its 95% paired bootstrap interval."""
    if a.rule != b.rule:
        raise ValueError(f"the runs were matched under different rules: {a.rule} and {b.rule}")
    maps = bootstrap_maps([a, b], image_multiplicities(len(a.image_ids), draws, seed))
    differences, point = maps[:, 0] - maps[:, 1], a.mean_ap() - b.mean_ap()
    return interval(
        what, differences, point, seed=seed, rule=a.rule, images=len(a.image_ids), proposals="",
        members=(), reference="b",
    )  # fmt: skip


def interval_rule(rule: str) -> str | None:
    """The devkit rule a result's intervals are computed under: its own, ILSVRC's for ``all``, none
    for ``coco`` (pycocotools scores the whole set at once)."""
    if rule == ALL_RULES:
        return INTERVAL_RULE
    return rule if rule in AP_MODE else None


def result_intervals(result: Any, *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> list[MapInterval]:
    """The comparisons of the module docstring for a :class:`.evaluation.DetectionResult`'s runs,
    from their detections (no network runs): every run matched once, then every run's mAP on the
    same ``draws`` resamples of the split's images. Empty with under two runs, or under ``coco``."""
    from .detections import detections_of

    rule = interval_rule(result.rule)
    runs = list(result.runs)
    if rule is None or len(runs) < 2 or draws < 1:
        return []
    matched = [
        r.matched  # scored under this rule already (evaluate_detector keeps each run's matching)
        if getattr(r, "matched", None) is not None
        else match_detections(
            detections_of(r.detections), result.targets, result.class_names, rule, result.blacklist
        )
        for r in runs
    ]
    full = np.array([m.mean_ap() for m in matched])
    maps = bootstrap_maps(matched, image_multiplicities(result.num_images, draws, seed))
    where = {(r.proposals, r.members): i for i, r in enumerate(runs)}
    out: list[MapInterval] = []

    def add(what: str, i: int, others: Sequence[int], combine: Any, **run: Any) -> None:
        """Run ``i`` minus ``combine`` (mean or max) of the runs ``others``, per draw and on the split."""
        cols = np.asarray(others, dtype=np.int64)
        differences = maps[:, i] - combine(maps[:, cols], axis=1)
        point = full[i] - combine(full[cols])
        out.append(interval(what, differences, point, seed=seed, rule=rule, images=result.num_images, **run))

    methods = list(dict.fromkeys(r.proposals for r in runs))
    for method in methods:
        for r in runs:
            k = len(r.members)
            if r.proposals != method or k < 2 or not r.first_k:
                continue
            i, run = where[(method, r.members)], {"proposals": method, "members": r.members}
            alone = [where.get((method, (m,))) for m in r.members]
            if alone[0] is not None:
                add(f"{k} members - member 0 ({method})", i, alone[:1], np.mean, reference="member 0", **run)
            if all(j is not None for j in alone):
                add(
                    f"{k} members - mean member ({method})", i, alone, np.mean, reference="mean member", **run
                )
                add(f"{k} members - best member ({method})", i, alone, np.max, reference="best member", **run)
    for method in methods[1:]:
        for r in runs:
            j = where.get((methods[0], r.members))
            if r.proposals == method and j is not None:
                what = f"{method} - {methods[0]} ({r.label()} members)"
                reference = f"proposals {methods[0]}"
                add(what, where[(method, r.members)], [j], np.mean, proposals=method, members=r.members,
                    reference=reference)  # fmt: skip
    return out


def draws_line(first: MapInterval) -> str:
    """How the intervals were drawn, for a table's caption: images, draws, seed and rule."""
    return f"the {first.images} images ({first.draws} draws, seed {first.seed}, rule {first.rule}"


def interval_cells(x: MapInterval, width: int = 0) -> tuple[str, str]:
    """An interval's difference and 95% range in mAP points, signed (numbers ``width`` wide)."""
    return f"{100 * x.point:+{width}.2f}", f"[{100 * x.low:+{width}.2f}, {100 * x.high:+{width}.2f}]"


def format_intervals(intervals: Sequence[MapInterval]) -> str:
    """The intervals as a text table in mAP points, with a line on how they were drawn and on the
    best member's optimism."""
    if not intervals:
        return ""
    first = intervals[0]
    width = max(len("comparison"), *(len(x.what) for x in intervals))
    lines = [
        f"Paired bootstrap over {draws_line(first)}): mAP difference in points, 95% interval",
        f"{'comparison':<{width}}  {'diff':>7}  {'95% interval':>18}",
    ]
    for x in intervals:
        point, interval = interval_cells(x, 7)
        lines.append(f"{x.what:<{width}}  {point}  {interval}{'  *' if x.excludes_zero else ''}")
    lines.append("* the interval excludes 0.")
    if any(x.reference == "best member" for x in intervals):
        lines.append(BEST_MEMBER_NOTE)
    return "\n".join(lines)
