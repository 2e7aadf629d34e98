"""What a long job will cost, said before it starts: the work counted, a throughput measured here, seconds.

The paper's heaviest jobs take hours to days on one machine: Table 3's last row is 7 models x 144
crops per image (section 7: about 50 million forward passes on ILSVRC's 50,000 validation images),
and Selective Search over a detection set is the slow step of every R-CNN reproduction (section 8).
A command that runs such a job first counts its work items (forward passes, proposals, training
steps), times the real step on a few warm-up items on this machine with the chosen backend, and
says how long the whole will take, so that a user choosing between 10 and 144 crops sees minutes
against hours before committing.

Three pieces, for any job:

* :func:`measure_throughput` times a callable that does ``items_per_step`` items per call, after
  warm-up calls (first calls pay for kernel selection, caches and lazy loading), and returns a
  :class:`Throughput` (seconds per item, and on how many items that was measured);
* :class:`WorkPart` is a count of items at a measured throughput; :class:`CostEstimate` adds the
  parts of one job, divides them over the ranks (processes or shards) that share it, subtracts what
  a resumed job has already done, and :meth:`CostEstimate.lines` says it in a few lines;
* :func:`format_duration` writes seconds as a person reads them (``3 min 10 s``, ``2 h 05 min``).

It is a leaf: it imports nothing of the package, so every layer (evaluation, detection, training)
can use it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CostEstimate",
    "Throughput",
    "WorkPart",
    "format_count",
    "format_duration",
    "format_rate",
    "measure_throughput",
    "split_evenly",
]


@dataclass(frozen=True)
class Throughput:
    """``seconds_per_item`` as timed on ``items`` items after ``warmup_items`` untimed ones."""

    seconds_per_item: float
    items: int
    warmup_items: int = 0

    @property
    def items_per_s(self) -> float:
        return 1.0 / self.seconds_per_item if self.seconds_per_item > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds_per_item": self.seconds_per_item,
            "items_per_s": self.items_per_s,
            "timed_items": self.items,
            "warmup_items": self.warmup_items,
        }


def measure_throughput(
    step: Callable[[], object],
    items_per_step: int,
    *,
    warmup_steps: int = 1,
    min_steps: int = 2,
    min_seconds: float = 1.0,
    max_steps: int = 20,
    clock: Callable[[], float] = time.perf_counter,
) -> Throughput:
    """Time ``step()``, which does ``items_per_step`` items per call (a batch of forward passes, an
    image's proposals, a training step).

    ``warmup_steps`` calls run untimed first; then calls are timed one by one until at least
    ``min_steps`` calls and ``min_seconds`` seconds (or ``max_steps`` calls, whichever comes first).
    The seconds per item are the *median* call's over ``items_per_step``: one call slowed by another
    process on a shared machine should not move the estimate. ``step`` must finish its work before
    it returns (copy a GPU result to the CPU, or synchronise).
    """
    if items_per_step < 1:
        raise ValueError(f"items_per_step must be at least 1. Got {items_per_step}")
    if warmup_steps < 0 or min_steps < 1 or max_steps < min_steps:
        raise ValueError(
            "need warmup_steps >= 0 and 1 <= min_steps <= max_steps. "
            f"Got {warmup_steps}, {min_steps}, {max_steps}"
        )
    for _ in range(warmup_steps):
        step()
    times: list[float] = []
    total = 0.0
    while len(times) < max_steps and (len(times) < min_steps or total < min_seconds):
        start = clock()
        step()
        times.append(clock() - start)
        total += times[-1]
    times.sort()
    middle = len(times) // 2
    median = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
    return Throughput(median / items_per_step, len(times) * items_per_step, warmup_steps * items_per_step)


@dataclass(frozen=True)
class WorkPart:
    """``items`` items of one kind (``unit``: "forward passes", "images read", "proposals") at a
    measured throughput; ``what`` names the part in the estimate ("googlenet x 5 at 224 px")."""

    what: str
    items: int
    throughput: Throughput
    unit: str = "items"

    @property
    def seconds(self) -> float:
        return self.items * self.throughput.seconds_per_item

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "unit": self.unit,
            "items": self.items,
            "seconds": self.seconds,
            **self.throughput.to_dict(),
        }


@dataclass(frozen=True)
class CostEstimate:
    """How long a job will take here, before it runs.

    ``job`` names it ("evaluate"); ``work`` says what it does in a line ("500 images x 155 crops x
    5 models = 387,500 forward passes"); ``parts`` are the whole job's items still to do, each at
    the throughput measured for it (they add: a pipeline that overlaps them finishes sooner);
    ``where`` says what was measured on ("torch fp32, cpu: AMD EPYC, 2 threads"). ``ranks``
    processes (torchrun ranks, shards) share the work evenly, unless ``rank_seconds`` gives each
    rank's own estimate of its own share (measured by that rank: on a shared CPU the ranks slow each
    other down, which only they can measure); the job then lasts as long as its slowest rank.
    ``done`` says what a resumed job found finished ("128 of 500 images"), already left out of the
    parts.
    """

    job: str
    work: str
    parts: tuple[WorkPart, ...]
    where: str = ""
    ranks: int = 1
    rank_seconds: tuple[float, ...] = ()
    done: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.ranks < 1:
            raise ValueError(f"ranks must be at least 1. Got {self.ranks}")
        if self.rank_seconds and len(self.rank_seconds) != self.ranks:
            raise ValueError(f"rank_seconds has {len(self.rank_seconds)} entries for {self.ranks} ranks")

    @property
    def total_seconds(self) -> float:
        """The work's seconds in one process at the measured throughputs (all ranks together)."""
        return sum(p.seconds for p in self.parts)

    @property
    def seconds(self) -> float:
        """The wall time expected: the slowest rank's estimate, else the total over the ranks."""
        if self.rank_seconds:
            return max(self.rank_seconds)
        return self.total_seconds / self.ranks

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "work": self.work,
            "where": self.where,
            "ranks": self.ranks,
            "seconds": self.seconds,
            "total_seconds": self.total_seconds,
            "rank_seconds": list(self.rank_seconds),
            "done": self.done,
            "parts": [p.to_dict() for p in self.parts],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The estimate as a command prints it: the work, each measured throughput, the time."""
        out = [f"{self.job}: {self.work}"]
        if self.done:
            out.append(f"  already done: {self.done}")
        where = f" ({self.where})" if self.where else ""
        for part in self.parts:
            t = part.throughput
            out.append(
                f"  measured here{where}: {part.what}: {format_rate(t.items_per_s)} {part.unit}/s "
                f"(timed on {format_count(t.items)} after {format_count(t.warmup_items)} warm-up)"
            )
            where = ""
        estimate = f"  estimate: about {format_duration(self.seconds)} on this machine"
        if self.ranks > 1:
            if self.rank_seconds:
                each = ", ".join(format_duration(s) for s in self.rank_seconds)
                estimate += f" ({self.ranks} ranks: {each})"
            else:
                estimate += f" ({self.ranks} ranks sharing {format_duration(self.total_seconds)} of work)"
        out.append(estimate)
        out += [f"  {note}" for note in self.notes]
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


def format_count(n: int) -> str:
    """``387500`` -> ``387,500``."""
    return f"{n:,}"


def format_rate(per_s: float) -> str:
    """Items per second with three significant figures (``0.0412``, ``41.2``, ``4,120``)."""
    if not math.isfinite(per_s):
        return "inf"
    if per_s >= 100:
        return f"{per_s:,.0f}"
    return f"{per_s:.3g}"


def format_duration(seconds: float) -> str:
    """Seconds as a person reads a duration: ``0.4 s``, ``42 s``, ``3 min 10 s``, ``2 h 05 min``,
    ``3 d 4 h``."""
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def split_evenly(count: int, ranks: int) -> list[range]:
    """``range(count)`` cut into ``ranks`` contiguous pieces whose sizes differ by at most one
    (piece ``r`` is ``[r * count // ranks, (r + 1) * count // ranks)``): which items each rank or
    shard takes, and so how much of a job's work each rank's estimate covers."""
    if ranks < 1:
        raise ValueError(f"ranks must be at least 1. Got {ranks}")
    bounds = [r * count // ranks for r in range(ranks + 1)]
    return [range(bounds[r], bounds[r + 1]) for r in range(ranks)]
