"""The proposals of a detection split as one job (paper section 8): this process's share of the images,
its cost said first, the shards merged under torchrun.

What ``googlenet proposals`` runs: :func:`.proposals.fill_proposals` for the shard this process
works on (``--shard I/N``, else torchrun's rank, else the whole split), after the estimate of
:func:`.estimates.estimate_proposals`; under torchrun rank 0 waits for the other ranks and merges
their chunks into the cache entry (:func:`googlenet.training.distributed.run_sharded`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..cost import CostEstimate
from ..parts import Shard
from ..training.distributed import job_shard, run_sharded
from .estimates import estimate_proposals
from .proposals import ProposalMethod, ProposalsFill, fill_proposals

__all__ = ["proposals_job"]


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
