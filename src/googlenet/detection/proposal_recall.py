"""How good region proposals are, as proposal papers measure it (paper section 8's proposals).

Section 8 judges its proposals by coverage (92% -> 93% of the objects at IoU 0.5 with 60% of R-CNN's
proposals). Hosang, Benenson, Dollar, Schiele ("What makes for effective detection proposals?",
TPAMI 2016) showed that coverage at one IoU and one count says little: a detector needs boxes that
fit well, and a method is used at a budget of proposals, best first. Their measures, here:

- recall against the number of proposals: the share of ground-truth objects that one of the first
  ``n`` proposals of their image overlaps with IoU >= 0.5 (or 0.7), for ``n`` on a log grid
  (:func:`best_overlaps`, :func:`recall`); an image with fewer than ``n`` proposals uses all of its;
- average recall (AR): recall averaged over IoU thresholds 0.5, 0.55, ..., 0.95 (:func:`average_recall`,
  :data:`AR_IOU_THRESHOLDS`), the form COCO uses. Hosang et al. define AR as recall integrated over
  IoU from 0.5 to 1, ``2 * integral recall(o) do``, which is ``2 * mean(max(IoU - 0.5, 0))`` over
  the objects' best IoUs (:func:`average_recall_integral`); the 10-threshold mean is its left Riemann
  sum (recall falls as the IoU rises), so it is never below it and exceeds it by at most 0.1 times the
  recall at IoU 0.5 (twice the step 0.05). Both are reported; AR is the 10-threshold mean;
- AR at 100, 300 and 1000 proposals (:data:`BUDGETS`), and seconds per image;
- the paper's coverage: recall at IoU 0.5 with every proposal (:func:`coverage`, and per image
  :func:`covered_boxes`).

Objects: every ground-truth box counts, difficult ones included (the paper's coverage figures do
not say otherwise). Proposal order is the
method's own (:mod:`.proposals`): what "the first ``n``" means depends on it.

Everything is a pure function of boxes except :func:`plot_proposal_recall`, which draws the curves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from .boxes import as_boxes, box_iou

# 0.5, 0.55, ..., 0.95, written as exact decimals (np.arange(0.5, 1, 0.05) gives 0.6000000000000001,
# which an IoU of exactly 0.6 would miss).
AR_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
RECALL_IOUS = (0.5, 0.7)  # Hosang et al.'s recall-against-proposals curves
BUDGETS = (100, 300, 1000)  # proposals per image at which AR is reported (Hosang et al.)
POINTS_PER_DECADE = 10
FORMAT = "googlenet-proposal-recall"
FORMAT_VERSION = 1


def proposal_counts(max_count: int, points_per_decade: int = POINTS_PER_DECADE) -> np.ndarray:
    """The numbers of proposals the curves are computed at: a log grid from 1 to ``max_count`` (about
    ``points_per_decade`` per decade), with :data:`BUDGETS` up to ``max_count`` and ``max_count``
    itself. ``[0]`` when there are no proposals at all."""
    if max_count < 1:
        return np.zeros(1, dtype=np.int64)
    top = math.log10(max_count)
    grid = np.round(10 ** (np.arange(0, math.floor(top * points_per_decade) + 1) / points_per_decade))
    counts = {int(v) for v in grid} | {b for b in BUDGETS if b <= max_count} | {int(max_count)}
    return np.array(sorted(counts), dtype=np.int64)


def best_overlaps(gt: object, proposals: object, counts: Sequence[int]) -> np.ndarray:
    """``(G, len(counts))``: for each ground-truth box of one image, its highest IoU (+1 widths,
    :func:`.boxes.box_iou`) with any of the first ``n`` proposals, for each ``n`` of ``counts``
    (0 when ``n`` is 0 or there are none; all of them when there are fewer than ``n``)."""
    g, p = as_boxes(gt), as_boxes(proposals)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(g), len(counts)))
    running = np.maximum.accumulate(box_iou(g, p), axis=1)  # best over the first k + 1 proposals
    last = np.minimum(counts, len(p)) - 1
    return np.where(last >= 0, running[:, np.maximum(last, 0)], 0.0)


def covered_boxes(gt: object, proposals: object, iou: float = 0.5) -> int:
    """How many of one image's ground-truth boxes some proposal overlaps with IoU >= ``iou``."""
    boxes = as_boxes(proposals)
    return int((best_overlaps(gt, boxes, [len(boxes)])[:, 0] >= iou).sum()) if len(boxes) else 0


def coverage(proposals: Mapping[str, np.ndarray], targets: Iterable[Any], iou: float = 0.5) -> float:
    """Share of ground-truth boxes that some proposal of their image overlaps with IoU >= ``iou``.

    ``targets``: objects with ``image_id`` and ``boxes`` (:class:`.datasets.DetectionTarget`). NaN
    when there are no ground-truth boxes.
    """
    covered = total = 0
    for target in targets:
        gt = as_boxes(target.boxes)
        if len(gt) == 0:
            continue
        if target.image_id not in proposals:
            raise GoogLeNetError(f"no proposals for image {target.image_id!r}")
        total += len(gt)
        covered += covered_boxes(gt, proposals[target.image_id], iou)
    return covered / total if total else math.nan


def recall(best: object, iou: float) -> np.ndarray:
    """The share of objects whose best overlap (rows of :func:`best_overlaps`, stacked over images)
    is at least ``iou``, per column. NaN without objects."""
    b = np.asarray(best, dtype=np.float64)
    if b.shape[0] == 0:
        return np.full(b.shape[1:], math.nan)
    return (b >= iou).mean(axis=0)


def average_recall(best: object, thresholds: Sequence[float] = AR_IOU_THRESHOLDS) -> np.ndarray:
    """Recall averaged over the IoU ``thresholds`` (default 0.5:0.05:0.95), per column."""
    return np.mean([recall(best, t) for t in thresholds], axis=0)


def average_recall_integral(best: object) -> np.ndarray:
    """Hosang et al.'s AR, ``2 * integral_0.5^1 recall(o) do``: for objects with best overlaps ``o_j``
    it is ``2 * mean_j max(o_j - 0.5, 0)`` (each object adds its overlap above 0.5), per column."""
    b = np.asarray(best, dtype=np.float64)
    if b.shape[0] == 0:
        return np.full(b.shape[1:], math.nan)
    return 2.0 * np.clip(b - 0.5, 0.0, None).mean(axis=0)


@dataclass
class MethodRecall:
    """One proposal method's recall curves on a split (:func:`proposal_recall`).

    ``counts``: the numbers of proposals per image the curves are at; ``best``: ``(objects,
    len(counts))`` best overlaps, image by image in the split's order. ``seconds_per_image``: per
    image and core when the proposals were computed in this run (None when read from a cache).
    """

    method: str
    num_images: int
    proposals_per_image: float
    max_proposals: int
    counts: np.ndarray
    best: np.ndarray = field(repr=False)
    seconds_per_image: float | None = None

    @property
    def num_objects(self) -> int:
        return int(self.best.shape[0])

    def recall(self, iou: float) -> np.ndarray:
        """Recall at IoU >= ``iou`` at each of ``counts``."""
        return recall(self.best, iou)

    def average_recall(self) -> np.ndarray:
        """AR (IoU 0.5:0.05:0.95) at each of ``counts``."""
        return average_recall(self.best)

    def column(self, budget: int | None) -> int:
        """The column of ``counts`` for ``budget`` proposals per image (None: all of them): the largest
        count not above it (every image's own proposals when it has fewer)."""
        n = self.max_proposals if budget is None else min(int(budget), self.max_proposals)
        return max(int(np.searchsorted(self.counts, n, side="right")) - 1, 0)

    def at(self, budget: int | None) -> dict[str, float]:
        """Recall at IoU 0.5 and 0.7, AR and Hosang's integral AR with ``budget`` proposals per image."""
        best = self.best[:, self.column(budget)][:, None]
        out = {f"recall_{iou}": float(recall(best, iou)[0]) for iou in RECALL_IOUS}
        out["AR"] = float(average_recall(best)[0])
        out["AR_integral"] = float(average_recall_integral(best)[0])
        return out

    def to_json(self) -> dict[str, Any]:
        """The method's numbers: per budget (100, 300, 1000, ``all``) and the curves over ``counts``."""
        return {
            "method": self.method,
            "num_images": self.num_images,
            "num_objects": self.num_objects,
            "proposals_per_image": self.proposals_per_image,
            "max_proposals": self.max_proposals,
            "seconds_per_image": self.seconds_per_image,
            "budgets": {str(b): self.at(b) for b in BUDGETS} | {"all": self.at(None)},
            "counts": self.counts.tolist(),
            **{f"recall_{iou}": _floats(self.recall(iou)) for iou in RECALL_IOUS},
            "AR": _floats(self.average_recall()),
            "AR_integral": _floats(average_recall_integral(self.best)),
        }


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def proposal_recall(
    method: str,
    proposals: Mapping[str, np.ndarray],
    targets: Iterable[Any],
    *,
    seconds_per_image: float | None = None,
    counts: Sequence[int] | None = None,
) -> MethodRecall:
    """Hosang et al.'s measures of ``proposals`` (``{image_id: (N, 4) boxes}``, best first) against
    ``targets`` (objects with ``image_id`` and ``boxes``: :class:`.datasets.DetectionTarget`).
    ``counts``: the proposal counts of the curves (default :func:`proposal_counts` up to the largest
    number any image has)."""
    targets = list(targets)
    missing = [t.image_id for t in targets if t.image_id not in proposals]
    if missing:
        raise GoogLeNetError(f"{method}: no proposals for image {missing[0]!r}")
    sizes = [len(as_boxes(proposals[t.image_id])) for t in targets]
    max_proposals = max(sizes, default=0)
    grid = proposal_counts(max_proposals) if counts is None else np.asarray(counts, dtype=np.int64)
    rows = [best_overlaps(t.boxes, proposals[t.image_id], grid) for t in targets]
    return MethodRecall(
        method=method,
        num_images=len(targets),
        proposals_per_image=float(np.mean(sizes)) if sizes else 0.0,
        max_proposals=max_proposals,
        counts=grid,
        best=np.concatenate(rows) if rows else np.zeros((0, len(grid))),
        seconds_per_image=seconds_per_image,
    )


@dataclass
class ProposalRecall:
    """Several methods' :class:`MethodRecall` on one split: what ``googlenet proposals`` prints
    (:meth:`format_table`), writes (:meth:`to_json`) and draws (:func:`plot_proposal_recall`)."""

    methods: list[MethodRecall]
    data: str = ""
    split: str = ""

    def rows(self) -> list[tuple[str, list[str]]]:
        """``(label, one cell per method)``: proposals, seconds, then recall at IoU 0.5 and 0.7 and AR
        at each budget and with every proposal, in percent; Hosang's integral AR at 1000 last."""
        cells: list[tuple[str, list[str]]] = [
            ("proposals / image (mean)", [f"{m.proposals_per_image:.1f}" for m in self.methods]),
            ("proposals / image (most)", [str(m.max_proposals) for m in self.methods]),
            (
                "seconds / image / core",
                [
                    "cached" if m.seconds_per_image is None else f"{m.seconds_per_image:.3f}"
                    for m in self.methods
                ],
            ),
        ]
        for key, title in [("recall_0.5", "recall IoU 0.5"), ("recall_0.7", "recall IoU 0.7"), ("AR", "AR")]:
            for budget in (*BUDGETS, None):
                where = "all proposals" if budget is None else f"{budget} proposals"
                cells.append((f"{title}, {where}", [_percent(m.at(budget)[key]) for m in self.methods]))
        cells.append(
            ("AR (Hosang's integral), 1000", [_percent(m.at(1000)["AR_integral"]) for m in self.methods])
        )
        return cells

    def title(self) -> str:
        """What the table is of: the split, its objects and images."""
        objects = self.methods[0].num_objects if self.methods else 0
        images = self.methods[0].num_images if self.methods else 0
        return (
            f"Proposal recall (Hosang et al. 2016) on {self.data} [{self.split}]: {objects} objects in "
            f"{images} images; AR = mean recall over IoU .50:.95"
        )

    def format_table(self) -> str:
        """:meth:`rows` as a text table, one column per method."""
        names = [m.method for m in self.methods]
        width = max([8, *map(len, names)])
        rows = self.rows()
        label_width = max(len(label) for label, _ in rows)
        lines = [self.title(), f"{'':<{label_width}}" + "".join(f"  {n:>{width}}" for n in names)]
        lines += [
            f"{label:<{label_width}}" + "".join(f"  {c:>{width}}" for c in cells) for label, cells in rows
        ]
        return "\n".join(lines)

    def markdown(self) -> str:
        """:meth:`rows` as a markdown table (the detector report's)."""
        from ..evaluation.tables import markdown_table

        header = ["", *(m.method for m in self.methods)]
        return markdown_table(header, [[label, *cells] for label, cells in self.rows()], left={0})

    def to_json(self) -> dict[str, Any]:
        """``{"format", "format_version", "data", "split", "ar_iou_thresholds", "methods": [...]}``
        (each method: :meth:`MethodRecall.to_json`; fractions in [0, 1])."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "data": self.data,
            "split": self.split,
            "ar_iou_thresholds": list(AR_IOU_THRESHOLDS),
            "methods": [m.to_json() for m in self.methods],
        }


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def plot_proposal_recall(result: ProposalRecall, path: str | Path) -> Path:
    """Hosang et al.'s figures for every method, as one PNG: recall at IoU 0.5 and at 0.7 and AR
    against the number of proposals (log scale), and recall against IoU at 100 proposals."""
    from ..evaluation.plots import new_figure, save_figure

    fig = new_figure(10.0, 7.5)
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], "recall at IoU >= 0.5", lambda m: m.recall(0.5)),
        (axes[0, 1], "recall at IoU >= 0.7", lambda m: m.recall(0.7)),
        (axes[1, 0], "average recall (IoU .50:.95)", lambda m: m.average_recall()),
    ]
    for ax, title, values in panels:
        for k, m in enumerate(result.methods):
            keep = m.counts > 0
            ax.plot(m.counts[keep], values(m)[keep], color=f"C{k}", label=m.method)
        for b in BUDGETS:
            ax.axvline(b, color="0.85", linewidth=0.8, zorder=0)
        ax.set(xscale="log", xlabel="proposals per image", ylabel=title, ylim=(0, 1.02), title=title)
        ax.grid(alpha=0.3, which="both")
    ious = np.linspace(0.5, 1.0, 51)
    ax = axes[1, 1]
    for k, m in enumerate(result.methods):
        best = m.best[:, m.column(100)]
        ax.plot(ious, [float(np.mean(best >= t)) if len(best) else math.nan for t in ious], color=f"C{k}",
                label=f"{m.method} (AR {100 * m.at(100)['AR']:.1f}%)")  # fmt: skip
    ax.set(xlabel="IoU", ylabel="recall", xlim=(0.5, 1.0), ylim=(0, 1.02), title="recall at 100 proposals")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Proposals on {Path(result.data).name or result.data} [{result.split}]")
    return save_figure(fig, Path(path))
