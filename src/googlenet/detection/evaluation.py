"""Evaluating detectors on a dataset split (paper section 8, Tables 4 and 5): one result object.

:func:`evaluate_detector` runs a trained detector (``googlenet train-detector --out DIR``) on a split
for every proposal method asked for and scores every ensemble asked for: the first ``k`` members
(section 8's 1 vs 6) and, with ``each_member``, each member alone. Each member's network runs once
per image and proposal method (:meth:`.detector.Detector.member_probabilities`); every ensemble is
then the mean of its members' softmaxes and per-class NMS (:meth:`.detector.Detector.combine`),
which is what a detector of just those members computes, bit for bit. So comparing 1..K members
costs one pass of the K networks, not K(K+1)/2.

:func:`evaluate_detections_file` scores a detections file (:mod:`.detections`) instead. Both give a
:class:`DetectionResult`: what ``googlenet evaluate-detection`` prints (:meth:`DetectionResult.format_table`)
and writes (:meth:`DetectionResult.to_dict`), and what benchmarks/detection_tables.py tabulates
(:meth:`DetectionResult.member_summary`, :meth:`DetectionResult.paired_differences`).

Each :class:`DetectorRun` keeps its detections image by image (``detections``), so that
per-image statistics and results computed on disjoint image subsets can be built from a result
without running the networks again: :func:`evaluate_detector` does so for its ``intervals``, a
paired bootstrap over images of each ensemble's mAP against member 0, the mean member and the best
member (:mod:`.bootstrap`, as :func:`googlenet.evaluation.protocol.paired_effects` does for Table 3).
"""

from __future__ import annotations

import inspect
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cost import CostEstimate
from ..errors import GoogLeNetError
from ..parts import PartsFolder, Shard
from ..progress import Progress, progress_callback
from ..runs import RunLayout
from ..training.distributed import job_shard, run_sharded
from .bootstrap import BOOTSTRAP_DRAWS, MapInterval
from .detector import StageTimes
from .evaluation_parts import (
    DetectedImages,
    DetectorShardPart,
    evaluation_key,
    images_digest,
    merge_parts,
    read_part,
    write_part,
)
from .metrics import ALL_RULES, DetectionEvaluation, MatchedDetections
from .proposals import ProposalMethod
from .rule_comparison import COLUMNS as RULE_COLUMNS
from .rule_comparison import RuleComparison
from .scoring import ScoredBoxes

if TYPE_CHECKING:
    from .datasets import DetectionDataset

FORMAT = "googlenet-evaluate-detection"
FORMAT_VERSION = 1
RUN_STAGES = ("warp", "network", "nms")  # proposals are cached (and timed by googlenet proposals)
DETECT_WORKERS = 4  # at most this many processes decode and warp for the network


@dataclass
class DetectorRun:
    """One (proposal method, ensemble) setting of a detector on a split.

    ``members``: the 0-based indices of the members averaged (``(0, ..., k-1)``: the first k).
    ``times``: seconds by stage over the split for this ensemble (warping is shared by every
    ensemble of a method; the network is the sum of its members'). ``detections``: ``{image_id:
    ScoredBoxes}`` in the split's order. ``comparison``: every rule's scores (``rule="all"``; then
    ``evaluation`` is the ILSVRC one).
    """

    proposals: str
    members: tuple[int, ...]
    evaluation: DetectionEvaluation
    proposals_per_image: float
    coverage: float
    times: StageTimes
    backend: str
    detections: dict[str, ScoredBoxes] = field(default_factory=dict, repr=False, compare=False)
    comparison: RuleComparison | None = None
    # The detections matched under the intervals' rule (.bootstrap.interval_rule), kept so that the
    # bootstrap does not match them again; None under coco. Not written to JSON.
    matched: MatchedDetections | None = field(default=None, repr=False, compare=False)

    @property
    def mAP(self) -> float:
        return self.evaluation.mAP

    @property
    def first_k(self) -> bool:
        """The first ``len(members)`` members: a detector loaded with ``members=k``."""
        return self.members == tuple(range(len(self.members)))

    def label(self) -> str:
        """``k`` for the first k members, else the indices (``[2]``: member 2 alone)."""
        return str(len(self.members)) if self.first_k else f"[{','.join(map(str, self.members))}]"

    def to_dict(self) -> dict[str, Any]:
        """The run as ``evaluate-detection --json`` writes it: ``members`` is the count,
        ``member_indices`` which ones; then the evaluation's keys (rule, mAP, AP, num_gt, num_detections;
        with ``rule="all"`` the comparison's: rule, rules, evaluations, differences)."""
        return {
            "members": len(self.members),
            "member_indices": list(self.members),
            "proposals": self.proposals,
            "proposals_per_image": self.proposals_per_image,
            "coverage": self.coverage,
            "seconds_per_image": self.times.seconds_per_image(RUN_STAGES),
            "overhead_ratio": self.times.overhead_ratio(),
            "backend": self.backend,
            **(self.evaluation.to_json() if self.comparison is None else self.comparison.to_json()),
        }


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


@dataclass(frozen=True)
class MemberSummary:
    """Per proposal method: each member alone (``single``, in member order; their mean and sample
    sd are the spread over seeds) and the first-k ensembles, k >= 2 (``ensembles[k]``: mAP)."""

    proposals: str
    single: list[float]
    ensembles: dict[int, float]

    @property
    def single_mean(self) -> float:
        return statistics.fmean(self.single)

    @property
    def single_sd(self) -> float | None:
        return _sd(self.single)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "proposals": self.proposals,
            "single": list(self.single),
            "single_mean": self.single_mean,
            "ensembles": {str(k): v for k, v in self.ensembles.items()},
        }
        if self.single_sd is not None:
            out["single_sd"] = self.single_sd
        return out


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` of paired mAPs (the same member, i.e. the same seed, on both sides): each
    difference, their mean and sample sd (None with one pair)."""

    what: str
    diffs: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs)

    @property
    def sd(self) -> float | None:
        return _sd(self.diffs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"what": self.what, "diffs": list(self.diffs), "mean": self.mean}
        if self.sd is not None:
            out["sd"] = self.sd
        return out


def paired_difference(what: str, a: Sequence[float], b: Sequence[float]) -> PairedDifference:
    """The member-by-member differences ``a[i] - b[i]`` (e.g. two detectors whose member i shares
    its seed, or two proposal methods on the same members)."""
    if len(a) != len(b) or not a:
        raise GoogLeNetError(
            f"{what}: needs as many values on both sides, and one at least. Got {len(a)} and {len(b)}"
        )
    return PairedDifference(what, [x - y for x, y in zip(a, b, strict=True)])


@dataclass
class DetectionResult:
    """What ``googlenet evaluate-detection`` computes: the scores of a detections file, or of a
    detector's runs (members x proposal methods), and the split they are of.

    ``evaluation`` is the one shown per class: the file's, or the last run's. ``skipped`` lists the
    annotation files or objects the dataset left out (``(what, why)``; none with ``strict_data``).
    ``class_names``, ``targets`` (one DetectionTarget per image, in ``image_ids`` order) and
    ``blacklist`` are what any subset or resample of the images is scored against
    (:func:`.metrics.evaluate_detections`), with a run's ``detections`` of those images.
    ``comparison``: the scores under every rule (``rule="all"``: then ``evaluation`` is the
    ILSVRC one), as each run's. ``unreadable``: ``(image path, why)`` of the images that could not
    be decoded; they are scored as images without detections (their objects are missed).
    ``intervals``: the runs' paired bootstrap intervals over the images (:mod:`.bootstrap`).
    """

    evaluation: DetectionEvaluation
    data: str
    data_arg: str
    split: str
    layout: str
    image_ids: list[str]
    num_blacklisted_pairs: int
    strict_data: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    detector: str | None = None
    detections_file: str | None = None
    runs: list[DetectorRun] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    targets: list[Any] = field(default_factory=list, repr=False, compare=False)
    blacklist: frozenset[tuple[str, int]] = field(default_factory=frozenset, repr=False)
    comparison: RuleComparison | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    intervals: list[MapInterval] = field(default_factory=list)

    @property
    def rule(self) -> str:
        """The rule asked for: one of :data:`.metrics.RULES`, or ``all``."""
        return self.evaluation.rule if self.comparison is None else ALL_RULES

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def run(self, proposals: str, members: int | Sequence[int]) -> DetectorRun:
        """The run of ``proposals`` with the first ``members`` members (an int) or those members."""
        want = tuple(range(members)) if isinstance(members, int) else tuple(members)
        for r in self.runs:
            if r.proposals == proposals and r.members == want:
                return r
        raise KeyError(f"no run of {proposals} with members {list(want)}")

    def methods(self) -> list[str]:
        """The proposal methods of the runs, in order."""
        return list(dict.fromkeys(r.proposals for r in self.runs))

    def full_run(self) -> DetectorRun:
        """The run with every member asked for: the largest first-k ensemble of the first proposal
        method (``members=[1, 2]``: the first 2 members; a detector's default: all of them)."""
        first = self.methods()[:1]
        runs = [r for r in self.runs if r.proposals in first and r.first_k]
        if not runs:
            raise GoogLeNetError(
                f"the evaluation of {self.detections_file or self.data} has no detector runs"
            )
        return max(runs, key=lambda r: len(r.members))

    def write_detections(self, path: str | Path) -> dict[str, Any]:
        """Write the detections of :meth:`full_run` to ``path`` (atomically) as a detections file
        (:mod:`.detections`: what ``detect --json`` writes and :func:`evaluate_detections_file`
        scores, to the same mAP); returns what the ``--json`` record keeps of it under
        ``detections_file``: ``path`` and the run's ``members``, ``member_indices`` and ``proposals``."""
        from .detections import detections_of
        from .detections import write_detections as write_file

        run = self.full_run()
        write_file(path, detections_of(run.detections), self.class_names)
        return {
            "path": str(path),
            "members": len(run.members),
            "member_indices": list(run.members),
            "proposals": run.proposals,
        }

    def member_summary(self) -> list[MemberSummary]:
        """Per proposal method whose runs include every member alone: :class:`MemberSummary`."""
        out = []
        for method in self.methods():
            runs = [r for r in self.runs if r.proposals == method]
            singles = {r.members[0]: r.mAP for r in runs if len(r.members) == 1}
            if not singles or sorted(singles) != list(range(len(singles))):
                continue
            ensembles = {len(r.members): r.mAP for r in runs if r.first_k and len(r.members) > 1}
            out.append(MemberSummary(method, [singles[i] for i in range(len(singles))], ensembles))
        return out

    def paired_differences(self) -> list[PairedDifference]:
        """Each other proposal method minus the first, member by member (the runs' single members)."""
        summary = {s.proposals: s.single for s in self.member_summary()}
        methods = [m for m in self.methods() if m in summary]
        first = methods[0] if methods else ""
        return [paired_difference(f"{m} - {first}", summary[m], summary[first]) for m in methods[1:]]

    def header(self) -> str:
        unreadable = (
            f"; {len(self.unreadable)} unreadable image(s) scored without detections"
            if self.unreadable
            else ""
        )
        return (
            f"{self.num_images} images of {self.data} [{self.split}, {self.layout}], "
            f"{self.num_blacklisted_pairs} blacklisted (image, class) pairs{unreadable}"
        )

    def comparison_table(self) -> str:
        """Section 8's comparisons, one line per run: mAP (under each rule with ``rule="all"``),
        proposals, coverage, cost."""
        if self.comparison is None:
            titles = [f"mAP ({self.rule})"]
        else:
            titles = [f"mAP {name}" for name, _, _ in RULE_COLUMNS]
        lines = [
            f"{'members':>7}  {'proposals':<20} "
            + " ".join(f"{t:>12}" for t in titles)
            + f" {'props/img':>9} {'coverage':>8} {'warp s':>7} {'net s':>7} {'nms s':>7} {'overhead':>8}"
        ]
        for r in self.runs:
            s = r.times.seconds_per_image(RUN_STAGES)
            maps = [r.mAP] if r.comparison is None else list(r.comparison.means().values())
            lines.append(
                f"{r.label():>7}  {r.proposals:<20} "
                + " ".join(f"{100 * m:>11.2f}%" for m in maps)
                + f" {r.proposals_per_image:>9.0f} {100 * r.coverage:>7.1f}% {s['warp']:>7.3f} "
                f"{s['network']:>7.3f} {s['nms']:>7.3f} {100 * r.times.overhead_ratio():>7.1f}%"
            )
        return "\n".join(lines)

    def format_table(self) -> str:
        """The header, the runs' comparison (a detector) and their bootstrap intervals, and the
        per-class table."""
        from .bootstrap import format_intervals

        parts = [self.header()]
        if self.runs:
            parts.append(self.comparison_table())
        if self.intervals:
            parts.append(format_intervals(self.intervals))
        parts.append((self.comparison or self.evaluation).format_table())
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The ``evaluate-detection --json`` record (the command adds the date and its version)."""
        if self.detector is None:
            source: dict[str, Any] = {"detections": self.detections_file}
        else:
            source = {"detector": self.detector, "runs": [r.to_dict() for r in self.runs]}
            if self.intervals:
                source["intervals"] = [x.to_dict() for x in self.intervals]
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **(self.evaluation.to_json() if self.comparison is None else self.comparison.to_json()),
            **source,
            "data": self.data,
            "data_arg": self.data_arg,
            "split": self.split,
            "layout": self.layout,
            "num_images": self.num_images,
            "num_blacklisted_pairs": self.num_blacklisted_pairs,
            "num_skipped": len(self.skipped),
            "num_unreadable": len(self.unreadable),
            "unreadable": [path for path, _ in self.unreadable],
            "strict_data": bool(self.strict_data),
        }


def _open(
    data: str | Path | DetectionDataset, split: str, strict_data: bool, classes: Sequence[str] | None = None
) -> tuple[DetectionDataset, str]:
    from .datasets import DetectionDataset, open_detection_dataset

    if isinstance(data, DetectionDataset):
        return data, str(data.root)
    return open_detection_dataset(data, split, strict=strict_data, classes=classes), str(data)


def _score(
    detections: Sequence[Any], targets: Sequence[Any], dataset: Any, rule: str
) -> tuple[DetectionEvaluation, RuleComparison | None, MatchedDetections | None]:
    """``detections`` on ``dataset``'s ``targets`` under ``rule``; with ``all``, the ILSVRC evaluation
    and every rule's; and the detections matched under the intervals' rule (None under coco), the
    matching that rule's evaluation is computed from."""
    from .bootstrap import interval_rule
    from .metrics import evaluate_detections, match_detections
    from .rule_comparison import compare_rules

    names, blacklist = dataset.class_names, dataset.blacklist
    kept = interval_rule(rule)
    matched = match_detections(detections, targets, names, kept, blacklist) if kept else None
    if rule == ALL_RULES:
        comparison = compare_rules(detections, targets, names, blacklist, matched=matched)
        return comparison.evaluations["ilsvrc"], comparison, matched
    if matched is not None:  # rule == kept: a devkit rule
        return matched.evaluation(), None, matched
    return evaluate_detections(detections, targets, names, rule, blacklist=blacklist), None, None


def _result(
    dataset: Any,
    data_arg: str,
    scores: tuple[DetectionEvaluation, RuleComparison | None],
    strict_data: bool,
    **source: Any,
) -> DetectionResult:
    evaluation, comparison = scores
    return DetectionResult(
        evaluation=evaluation,
        comparison=comparison,
        data=str(dataset.root),
        data_arg=data_arg,
        split=dataset.split,
        layout=dataset.layout,
        image_ids=list(dataset.image_ids),
        num_blacklisted_pairs=len(dataset.blacklist),
        strict_data=strict_data,
        skipped=list(dataset.skipped),
        class_names=list(dataset.class_names),
        targets=list(dataset.targets()),
        blacklist=frozenset(dataset.blacklist),
        **source,
    )


def evaluate_detections_file(
    path: str | Path,
    data: str | Path | DetectionDataset,
    *,
    split: str = "val",
    rule: str = "ilsvrc",
    strict_data: bool = False,
    classes: Sequence[str] | None = None,
) -> DetectionResult:
    """Score the detections file ``path`` (:func:`.detections.read_detections`) on the ``split`` of
    ``data`` (a VOC / ILSVRC DET / COCO folder, ``builtin``, or an open DetectionDataset) under
    ``rule`` (:data:`.metrics.RULES`, or ``all``: every rule side by side, ``result.comparison``).
    ``classes``: the class list (default the dataset's, :func:`.datasets.open_detection_dataset`)."""
    from .detections import read_detections
    from .metrics import check_rule

    check_rule(rule)
    dataset, data_arg = _open(data, split, strict_data, classes=classes)
    detections = read_detections(path, dataset.class_names, dataset.image_ids)
    evaluation, comparison, _ = _score(detections, dataset.targets(), dataset, rule)
    return _result(dataset, data_arg, (evaluation, comparison), strict_data, detections_file=str(path))


def _ensembles(
    detector: Path, available: int, members: Sequence[int] | None, each_member: bool
) -> list[tuple[int, ...]]:
    sizes = list(members) if members else [available]
    for k in sizes:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
            raise GoogLeNetError(f"--members {k}: the detector {detector} has {available} member(s)")
    combos = [(i,) for i in range(available)] if each_member else []
    return list(dict.fromkeys(combos + [tuple(range(k)) for k in sizes]))


def evaluate_detector(
    detector: str | Path,
    data: str | Path | DetectionDataset,
    *,
    split: str = "val",
    rule: str = "ilsvrc",
    members: Sequence[int] | None = None,
    each_member: bool = False,
    proposals: Sequence[str | ProposalMethod] | None = None,
    multibox: str | Path | None = None,
    workers: int | None = None,
    strict_data: bool = False,
    progress: Progress = None,
    shard: Shard | str | None = None,
    parts: str | Path | None = None,
    on_estimate: Callable[[CostEstimate], object] | None = None,
    bootstrap: int = BOOTSTRAP_DRAWS,
    bootstrap_seed: int = 0,
    **predictor_options: Any,
) -> DetectionResult | DetectorShardPart:
    """Run the detector in ``detector`` on the ``split`` of ``data`` and score every setting asked for.

    ``data``: a VOC / ILSVRC DET / COCO folder, ``builtin``, or an open DetectionDataset (a subset
    of one, too); its classes must be the detector's. ``members``: the ensembles of the first k
    members to score, one per k (default: all the members); ``each_member`` adds every member
    alone. ``proposals``: the methods (names of :data:`.proposals.METHODS`, or ProposalMethod
    objects) to compare, default the detector's own; ``multibox`` the MultiBox folder that
    ``multibox`` and ``paper`` need. Proposals come from the cache (computed with ``workers``
    processes on a miss, default every CPU of this process); at most 4 of them decode and warp
    while this process runs the networks. ``predictor_options`` go to :class:`googlenet.Predictor`
    (default ``backend="torch"``, ``precision="fp32"``: the reference numbers; ``threads``,
    ``device``, ...). ``progress``: ``True`` for bars on stderr, or a callable (:mod:`googlenet.progress`).

    Runs come method by method, each in the order: every member alone (``each_member``), then the
    first k for each k of ``members``; a setting asked for twice is scored once. ``rule``: one of
    :data:`.metrics.RULES`, or ``all`` (every run under every rule: ``run.comparison``).

    Over several processes or machines: with ``shard`` (``"I/N"``, or torchrun's rank) the detector
    runs on that shard's images only (:mod:`googlenet.parts`; their proposals fill the shared cache) and
    what it found is written to the folder ``parts`` (:mod:`.evaluation_parts`); the shard gets a
    :class:`.evaluation_parts.DetectorShardPart` back (a shard whose part is there already does
    nothing). The same call without ``shard`` then merges every shard's part and scores the whole
    split, which gives the one-process result (apart from the seconds), or says in one line which
    shards are missing; under torchrun rank 0 merges once every rank is done. Parts made with other
    settings (detector, data, methods, members, backend) are refused in one line.

    ``on_estimate``: called, before the work, with what it will do and about how long it will take
    here (:func:`estimate_detector_evaluation`; not when there is nothing to compute, nor on torchrun
    ranks other than 0).

    ``bootstrap``: resamples of the split's images (seeded by ``bootstrap_seed``) for the result's
    ``intervals``, 0 for none: each first-k ensemble against member 0, and with ``each_member``
    against the mean and the best of its members, each other proposal method against the first
    (:func:`.bootstrap.result_intervals`; under ``rule``, ILSVRC's with ``all``, none with ``coco``).
    """
    from ..training.distributed import launch_position
    from .datasets import drop_unreadable
    from .metrics import check_rule

    check_rule(rule)
    job = _DetectorJob.open(
        detector, data, split=split, strict_data=strict_data, members=members, each_member=each_member,
        proposals=proposals, multibox=multibox, workers=workers, shard=shard, parts=parts,
        predictor_options=predictor_options,
    )  # fmt: skip
    dataset, data_arg, mine, store, workers = job.dataset, job.data_arg, job.shard, job.store, job.workers
    if on_estimate is not None and job.work_left() and launch_position()[0] == 0:
        on_estimate(job.estimate())

    def scored(detected: DetectedImages) -> DetectionResult:
        from .bootstrap import result_intervals

        runs = _scored_runs(detected, dataset, rule)
        last = (runs[-1].evaluation, runs[-1].comparison)
        result = _result(
            dataset, data_arg, last, strict_data, detector=str(detector), runs=runs,
            unreadable=detected.unreadable,
        )  # fmt: skip
        result.intervals = result_intervals(result, draws=bootstrap, seed=bootstrap_seed)
        return result

    def detect(part: Shard | None) -> DetectedImages:
        if strict_data:  # stop at the first image that cannot be decoded, before any work
            images = dataset if part is None else dataset.subset(part.images(len(dataset)))
            drop_unreadable(images, strict=True, workers=min(workers, DETECT_WORKERS))
        return _detect(detector, dataset, job.methods, job.combos, part, workers, progress, job.options)

    if mine is None:
        if store is not None and store.shards():
            return scored(merge_parts(store, dataset.image_ids))
        return scored(detect(None))
    assert store is not None

    def work(part: Shard | None) -> DetectorShardPart:
        assert part is not None
        before = read_part(store, part) is not None
        if not before:
            write_part(store, part, detect(part))
        done = {s for s in store.shards() if s.count == part.count}
        left = [s for s in (Shard(i, part.count) for i in range(part.count)) if s not in done]
        images = len(part.images(len(dataset)))
        return DetectorShardPart(part, store.path(part.name), images, len(dataset), before, left)

    return run_sharded(mine, work, lambda: scored(merge_parts(store, dataset.image_ids)))


def estimate_detector_evaluation(
    detector: str | Path, data: str | Path | DetectionDataset, **arguments: Any
) -> CostEstimate:
    """What :func:`evaluate_detector` with the same arguments would do and about how long it would
    take here, without doing it (``evaluate-detection --dry-run``): the proposals the cache lacks and
    the regions through the members, each timed on a few warm-up items
    (:func:`.estimates.evaluation_estimate`). ``rule``, ``progress`` and ``on_estimate`` have no effect."""
    bound = inspect.signature(evaluate_detector).bind(detector, data, **arguments)
    bound.apply_defaults()
    job = dict(bound.arguments)
    for unused in ("rule", "progress", "on_estimate", "bootstrap", "bootstrap_seed"):
        del job[unused]
    return _DetectorJob.open(**job).estimate()


@dataclass
class _DetectorJob:
    """A detector's evaluation, checked and ready to run: the split, the proposal methods, the
    ensembles, the predictor options, this process's shard and the parts folder."""

    detector: str | Path
    dataset: DetectionDataset
    data_arg: str
    manifest: Any
    methods: list[ProposalMethod]
    combos: list[tuple[int, ...]]
    workers: int
    options: dict[str, Any]
    shard: Shard | None
    store: PartsFolder | None

    @classmethod
    def open(
        cls,
        detector: str | Path,
        data: str | Path | DetectionDataset,
        *,
        split: str,
        strict_data: bool,
        members: Sequence[int] | None,
        each_member: bool,
        proposals: Sequence[str | ProposalMethod] | None,
        multibox: str | Path | None,
        workers: int | None,
        shard: Shard | str | None,
        parts: str | Path | None,
        predictor_options: dict[str, Any],
    ) -> _DetectorJob:
        from ..cpu import cpu_count
        from .detector import read_manifest
        from .proposals import proposal_method

        manifest = read_manifest(detector)
        # The detector's classes, whichever of them the split has objects of (a class without any
        # is not scored, as in the devkits); objects of other classes are skipped as unknown.
        dataset, data_arg = _open(data, split, strict_data, classes=manifest.class_names)
        if manifest.class_names != dataset.class_names:
            raise GoogLeNetError(
                f"detector {detector} was trained on classes {manifest.class_names}; {dataset.root} has "
                f"{dataset.class_names}"
            )
        combos = _ensembles(Path(detector), len(manifest.members), members, each_member)
        own = manifest.proposal_method()

        def method_of(m: str | ProposalMethod) -> ProposalMethod:
            if isinstance(m, ProposalMethod):
                return m
            return own if m == own.name else proposal_method(m, multibox=multibox)

        methods = [method_of(m) for m in proposals or [own]]
        options = {"backend": "torch", "precision": "fp32", **predictor_options}
        mine = job_shard(shard)
        if mine is not None and parts is None:
            raise GoogLeNetError(
                f"shard {mine} of evaluate_detector needs a folder for its part (parts=; "
                "evaluate-detection --json FILE keeps them in FILE.parts)"
            )
        store = None
        if parts is not None:
            key = _parts_key(detector, manifest, dataset, methods, combos, options)
            store = PartsFolder(parts, key)
            store.check()
        workers = cpu_count() if workers is None else workers
        return cls(detector, dataset, data_arg, manifest, methods, combos, workers, options, mine, store)

    def work_left(self) -> bool:
        """False when the parts hold this process's share already (a shard's part, or every part to
        merge): nothing to run the detector on."""
        if self.store is None:
            return True
        if self.shard is None:
            return not self.store.shards()
        return read_part(self.store, self.shard) is None

    def estimate(self) -> CostEstimate:
        from .estimates import evaluation_estimate

        if not self.work_left():
            assert self.store is not None
            what = "the merge of the parts" if self.shard is None else f"shard {self.shard}: its part"
            return CostEstimate("evaluate-detection", f"nothing to run: {what} in {self.store.root}", ())
        return evaluation_estimate(
            self.detector, self.dataset, self.methods, self.combos, self.options, shard=self.shard,
            workers=self.workers,
        )  # fmt: skip


def _parts_key(
    detector: str | Path,
    manifest: Any,
    dataset: Any,
    methods: Sequence[ProposalMethod],
    combos: Sequence[tuple[int, ...]],
    options: dict[str, Any],
) -> str:
    """What decides a detector evaluation's detections: the key of its parts."""
    root = Path(detector).expanduser().resolve()
    weights = []
    for name in manifest.members:
        path = RunLayout(root / name).weights
        st = path.stat() if path.is_file() else None
        weights.append([name, st.st_size if st else None, st.st_mtime_ns if st else None])
    return evaluation_key(
        detector=str(root),
        manifest=dict(manifest.__dict__),
        weights=weights,
        data=str(Path(dataset.root).resolve()),
        split=dataset.split,
        images=images_digest([str(i) for i in dataset.image_ids]),
        methods=[m.settings() for m in methods],
        runs=[list(c) for c in combos],
        options=options,
    )


def _detect(
    detector: str | Path,
    dataset: Any,
    methods: Sequence[ProposalMethod],
    combos: Sequence[tuple[int, ...]],
    shard: Shard | None,
    workers: int,
    progress: Progress,
    options: dict[str, Any],
) -> DetectedImages:
    """Run the detector on ``dataset`` (``shard``'s images of it, else all) for every method and
    ensemble: each member's network once per image and method (:meth:`.detector.Detector.
    member_probabilities`), every ensemble combined from those (:meth:`.detector.Detector.combine`)."""
    from .detector import Detector
    from .proposal_recall import covered_boxes
    from .proposals import fill_proposals

    images = dataset if shard is None else dataset.subset(shard.images(len(dataset)))
    with progress_callback(progress, len(images) * len(methods), "proposals") as step:
        boxes = {
            m.name: fill_proposals(dataset, m, shard=shard, workers=workers, progress=step).proposals
            for m in methods
        }
    targets = images.targets()
    loaded = max(max(c) for c in combos) + 1
    model = Detector.load(detector, members=loaded, **options)
    backend = f"{model.predictors[0].backend}/{model.predictors[0].precision}"
    detected = DetectedImages([str(i) for i in images.image_ids], backend, [], [], [], {}, {})
    for method in methods:
        props = boxes[method.name]
        model.method = method
        model.times = StageTimes(member_network=[0.0] * loaded)
        times = {c: StageTimes() for c in combos}
        found: dict[tuple[int, ...], dict[str, ScoredBoxes]] = {c: {} for c in combos}
        desc = f"detect ({loaded} member(s), {method.name})"
        with progress_callback(progress, len(images), desc) as step:
            for image_id, regions, probabilities in model.dataset_probabilities(
                images, props, workers=min(workers, DETECT_WORKERS), progress=step
            ):
                for c in combos:
                    found[c][image_id] = model.combine(regions, [probabilities[i] for i in c], times=times[c])
        detected.proposal_counts[method.name] = [len(props[i]) for i in detected.image_ids]
        detected.covered[method.name] = [covered_boxes(t.boxes, props[t.image_id]) for t in targets]
        for c in combos:
            t = times[c]
            t.warp = model.times.warp
            for i in c:
                t.add_network(i, model.times.member_network[i])
            detected.runs.append((method.name, c))
            detected.found.append(found[c])
            detected.times.append(t)
    detected.unreadable = list(model.unreadable.items())  # in the split's order
    return detected


def _scored_runs(detected: DetectedImages, dataset: Any, rule: str) -> list[DetectorRun]:
    """Every run of ``detected`` (the whole split's) scored under ``rule``."""
    from .detections import detections_of

    targets = dataset.targets()
    ground_truth = sum(len(t.boxes) for t in targets)
    runs = []
    for (method, c), found, t in zip(detected.runs, detected.found, detected.times, strict=True):
        evaluation, comparison, matched = _score(detections_of(found), targets, dataset, rule)
        per_image, covered = detected.proposals_per_image(method), detected.coverage(method, ground_truth)
        runs.append(
            DetectorRun(
                method, c, evaluation, per_image, covered, t, detected.backend, found, comparison, matched
            )
        )
    return runs
