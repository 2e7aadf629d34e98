"""The proposals of a detection split as one job (paper section 8): :func:`propose_split`, what
``googlenet proposals`` runs, and its :class:`ProposalsResult`.

For each method: this process's share of the images (``shard``, else torchrun's rank, else the whole
split) fills the method's cache entry (:func:`proposals_job`, :func:`.proposals.fill_proposals`),
its cost said first (:func:`.estimates.estimate_proposals`); under torchrun rank 0 waits for the
other ranks and merges their chunks into the entry (:func:`googlenet.training.distributed.run_sharded`).
Once an entry holds the whole split, the readable images' proposals are measured as Hosang et al.
measure proposals (:mod:`.proposal_recall`).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cost import CostEstimate
from ..parts import Shard
from ..progress import Progress, progress_callback
from ..training.distributed import job_shard, run_sharded
from .estimates import estimate_proposals
from .proposal_recall import MethodRecall, ProposalRecall
from .proposals import ProposalMethod, ProposalsFill, fill_proposals

if TYPE_CHECKING:
    from .datasets import DetectionDataset

__all__ = [
    "MethodProposals",
    "ProposalsResult",
    "estimate_propose_split",
    "proposals_job",
    "propose_split",
]


def proposals_job(
    dataset: Any,
    method: ProposalMethod,
    *,
    shard: Shard | str | None = None,
    workers: int = 0,
    progress: Callable[[int], object] | None = None,
    refresh: bool = False,
    on_estimate: Callable[[CostEstimate], object] | None = None,
) -> ProposalsFill:
    """:func:`.proposals.fill_proposals` for this process's share: ``shard`` (``"I/N"`` or a Shard),
    else torchrun's rank (:func:`googlenet.training.distributed.job_shard`), else the whole split.
    Under torchrun every rank fills its chunks, then rank 0 waits for the others and merges the entry
    (the cache folder must be one every rank sees, as a training run directory must), returning the
    whole split's.

    ``on_estimate`` is called first with :func:`.estimates.estimate_proposals` when there is work
    left (under torchrun on rank 0 only).
    """
    from ..training.distributed import launch_position

    mine = job_shard(shard)
    if on_estimate is not None and launch_position()[0] == 0:
        estimate = estimate_proposals(dataset, method, shard=mine, workers=workers, refresh=refresh)
        if estimate.parts:
            on_estimate(estimate)

    def work(part: Shard | None) -> ProposalsFill:
        return fill_proposals(
            dataset, method, shard=part, workers=workers, progress=progress, refresh=refresh
        )

    return run_sharded(mine, work, lambda: fill_proposals(dataset, method, workers=workers))


@dataclass
class MethodProposals:
    """One method's part of :func:`propose_split`.

    ``fill``: what filling its cache entry did in this process (:class:`.proposals.ProposalsFill`:
    images found done, computed, chunks left to other shards, the entry and its parts folder);
    ``seconds``: the wall seconds that took (after the estimate), with ``workers`` processes.
    ``proposals``: the readable images' boxes, in the split's order (what ``googlenet proposals
    --out`` writes: :func:`.proposals.write_proposals`), and ``recall``: their recall curves
    (:func:`.proposal_recall.proposal_recall`); both None for a shard's part (:attr:`is_part`), whose
    images are merged with the other shards' later.
    """

    method: ProposalMethod
    fill: ProposalsFill
    seconds: float
    workers: int
    proposals: dict[str, np.ndarray] | None = None
    recall: MethodRecall | None = None

    @property
    def is_part(self) -> bool:
        """A shard's part of the split (``shard``, or a torchrun rank other than 0)."""
        return self.proposals is None

    @property
    def processes(self) -> int:
        """The processes that computed the images computed here (at most one per image)."""
        return max(1, min(self.workers, self.fill.computed))

    @property
    def seconds_per_image(self) -> float | None:
        """Wall seconds per image computed here; None when none was (all found in the cache)."""
        return self.seconds / self.fill.computed if self.fill.computed else None

    @property
    def seconds_per_image_per_core(self) -> float | None:
        """:attr:`seconds_per_image` times the :attr:`processes`: what one core takes per image."""
        wall = self.seconds_per_image
        return None if wall is None else wall * self.processes

    @property
    def coverage(self) -> float:
        """The paper's coverage: the share of ground-truth boxes that a proposal overlaps with IoU >=
        0.5 (:func:`.proposal_recall.coverage`); NaN without ground-truth boxes or for a part."""
        return self.recall.at(None)["recall_0.5"] if self.recall is not None else float("nan")


@dataclass
class ProposalsResult:
    """What :func:`propose_split` did: one :class:`MethodProposals` per method, in the order asked,
    on the ``split`` of ``data`` (``images`` in all); ``shard`` the share this process worked on
    (None: the whole split). ``unreadable``: ``(image path, why)`` of the images that cannot be
    decoded, left out of every method's ``proposals`` and recall (each named in a warning,
    :func:`.datasets.drop_unreadable`; their empty entries stay in the cache)."""

    data: str
    split: str
    images: int
    shard: Shard | None
    methods: list[MethodProposals]
    unreadable: list[tuple[str, str]]

    @property
    def recall(self) -> ProposalRecall | None:
        """The methods' recall side by side (:class:`.proposal_recall.ProposalRecall`: ``googlenet
        proposals``' table, ``--json`` and ``--plot``); None when every method is a shard's part."""
        found = [m.recall for m in self.methods if m.recall is not None]
        return ProposalRecall(found, data=self.data, split=self.split) if found else None


@dataclass
class _ProposalsSetup:
    """A :func:`propose_split` call, checked: the split, the methods, this process's shard."""

    dataset: DetectionDataset
    methods: list[ProposalMethod]
    shard: Shard | None
    workers: int

    @classmethod
    def open(
        cls,
        data: str | Path | DetectionDataset,
        methods: str | ProposalMethod | Sequence[str | ProposalMethod],
        *,
        split: str,
        multibox: str | Path | None,
        workers: int | None,
        shard: Shard | str | None,
        strict_data: bool,
    ) -> _ProposalsSetup:
        from ..cpu import cpu_count
        from .datasets import DetectionDataset, open_detection_dataset
        from .proposals import check_method, proposal_method

        mine = job_shard(shard)
        asked = [methods] if isinstance(methods, str | ProposalMethod) else list(methods)
        chosen: dict[str, ProposalMethod] = {}  # a method asked twice runs once
        for m in asked:
            method = m if isinstance(m, ProposalMethod) else proposal_method(m, multibox=multibox)
            chosen.setdefault(method.name, method)
        for method in chosen.values():
            check_method(method)
        if isinstance(data, DetectionDataset):
            dataset = data
        else:
            dataset = open_detection_dataset(data, split, strict=strict_data)
        return cls(dataset, list(chosen.values()), mine, cpu_count() if workers is None else workers)


def propose_split(
    data: str | Path | DetectionDataset,
    methods: str | ProposalMethod | Sequence[str | ProposalMethod],
    *,
    split: str = "val",
    multibox: str | Path | None = None,
    workers: int | None = None,
    shard: Shard | str | None = None,
    refresh: bool = False,
    strict_data: bool = False,
    progress: Progress = None,
    on_estimate: Callable[[CostEstimate], object] | None = None,
) -> ProposalsResult:
    """The region proposals of every image of the ``split`` of ``data``, for each of ``methods``,
    and how good they are (``googlenet proposals``)::

        result = propose_split("builtin", ["selective-search", "selective-search-2x"], workers=2)
        print(result.recall.format_table())           # recall at IoU 0.5 / 0.7, AR at 100/300/1000
        write_proposals("ss.json", result.methods[0].proposals)

    ``data``: a VOC / ILSVRC DET / COCO folder, ``builtin``, or an open DetectionDataset.
    ``methods``: names of :data:`.proposals.METHODS` or ProposalMethod objects (one or several; a
    name asked twice runs once); ``multibox`` is the MultiBox folder that ``multibox`` and ``paper``
    need. Each method fills its cache entry (``$GOOGLENET_CACHE/proposals``) with ``workers``
    processes (default every CPU of this process), chunk by chunk, so a killed call continues where
    it stopped; an entry the cache holds is read (``refresh``: recomputed). ``progress``: ``True``
    for a bar per method on stderr, or a callable (:mod:`googlenet.progress`). ``on_estimate``:
    called before each method's work with what is left and about how long it will take here
    (:func:`.estimates.estimate_proposals`; not when nothing is left, nor on torchrun ranks other
    than 0); the seconds per image leave its warm-up out.

    Images that cannot be decoded are named in a warning each and left out of the proposals and the
    recall (``result.unreadable``); ``strict_data`` stops at the first bad annotation, or image,
    before any work, in one line naming it.

    Over several processes or machines sharing the cache folder: with ``shard`` (``"I/N"``, or
    torchrun's rank) each method computes that shard's chunks only and is a part
    (:attr:`MethodProposals.is_part`); the same call without ``shard`` merges the chunks (or names
    the shards that have not finished, in one line), and under torchrun rank 0 merges once every
    rank is done. A shard whose entry was merged already gets the whole split from it.
    """
    from .datasets import drop_unreadable
    from .proposal_recall import proposal_recall

    setup = _ProposalsSetup.open(
        data, methods, split=split, multibox=multibox, workers=workers, shard=shard, strict_data=strict_data
    )
    dataset, workers = setup.dataset, setup.workers
    if strict_data:  # the first image that cannot be decoded stops the job before any work
        drop_unreadable(dataset, strict=True, workers=workers)
    readable: DetectionDataset | None = None
    done = []
    for method in setup.methods:
        fill, seconds = _fill(dataset, method, setup.shard, workers, refresh, progress, on_estimate)
        found = MethodProposals(method, fill, seconds, workers)
        if fill.merged:
            if fill.shard is not None:  # a shard after the merge: the entry holds the whole split
                fill = fill_proposals(dataset, method, workers=workers)
                found.fill = fill
            # Images that cannot be decoded have no proposals: left out of the file and of the
            # recall. Their (empty) entries stay in the cache the other commands share.
            if readable is None:
                readable = drop_unreadable(dataset, workers=workers)
            found.proposals = {i: fill.proposals[i] for i in readable.image_ids}
            found.recall = proposal_recall(
                method.name, found.proposals, readable.targets(),
                seconds_per_image=found.seconds_per_image_per_core,
            )  # fmt: skip
        done.append(found)
    unreadable = list(readable.unreadable) if readable is not None else []
    return ProposalsResult(str(dataset.root), dataset.split, len(dataset), setup.shard, done, unreadable)


def estimate_propose_split(
    data: str | Path | DetectionDataset,
    methods: str | ProposalMethod | Sequence[str | ProposalMethod],
    **arguments: Any,
) -> list[CostEstimate]:
    """What :func:`propose_split` with the same arguments would do and about how long it would take
    here, without doing it (``googlenet proposals --dry-run``): per method, the images whose
    proposals the cache lacks, timed on a few of them (:func:`.estimates.estimate_proposals`).
    ``progress`` and ``on_estimate`` have no effect."""
    bound = inspect.signature(propose_split).bind(data, methods, **arguments)
    bound.apply_defaults()
    job = dict(bound.arguments)
    refresh = job.pop("refresh")
    for unused in ("progress", "on_estimate"):
        del job[unused]
    setup = _ProposalsSetup.open(**job)
    return [
        estimate_proposals(setup.dataset, m, shard=setup.shard, workers=setup.workers, refresh=refresh)
        for m in setup.methods
    ]


def _fill(
    dataset: Any,
    method: ProposalMethod,
    shard: Shard | None,
    workers: int,
    refresh: bool,
    progress: Progress,
    on_estimate: Callable[[CostEstimate], object] | None,
) -> tuple[ProposalsFill, float]:
    """:func:`proposals_job` for ``method``, with its wall seconds (after the estimate)."""
    share = len(shard.images(len(dataset))) if shard is not None else len(dataset)
    desc = f"proposals {method.name}" + (f" shard {shard}" if shard is not None else "")
    start = [time.perf_counter()]

    def estimated(estimate: CostEstimate) -> None:
        assert on_estimate is not None
        on_estimate(estimate)
        start[0] = time.perf_counter()  # the seconds per image leave the estimate's warm-up out

    with contextlib.ExitStack() as bars:
        update: list[Callable[[int], object] | None] = []

        def step(n: int) -> None:
            if not update:  # the bar starts at the first image, below the estimate
                update.append(bars.enter_context(progress_callback(progress, share, desc)))
            if update[0] is not None:
                update[0](n)

        fill = proposals_job(
            dataset, method, shard=shard, workers=workers, progress=step if progress else None,
            refresh=refresh, on_estimate=estimated if on_estimate is not None else None,
        )  # fmt: skip
    return fill, time.perf_counter() - start[0]
