"""The torchrun environment: process-group set-up and teardown, rank-0 helpers, metric all-reduce.

Paper section 6 trained with DistBelief's asynchronous SGD on many machines; the modern equivalent
used here is synchronous data parallelism with :class:`torch.nn.parallel.DistributedDataParallel`
launched by ``torchrun`` (NCCL on GPUs, Gloo on CPUs). This module only reads the environment that
``torchrun`` sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) and wraps the few
collective calls the trainer needs; without those variables everything degrades to one process.
Jobs that are not training (section 7's evaluation, section 8's proposals and detector evaluation)
take torchrun's ranks as the shards of their work (:func:`job_shard`, :func:`run_sharded`) and wait
for each other up to :data:`RANK_WAIT`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import GoogLeNetError
from ..parts import Shard, parse_shard

# How long the ranks of a job that is not training wait for each other: a rank (or a shard of a
# multi-day job) may finish its share hours after another, on a slower machine; torch's default
# (30 minutes for Gloo) would abort the job.
RANK_WAIT = datetime.timedelta(days=7)

R = TypeVar("R")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job. ``world_size == 1`` means a plain single process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files (run dir, checkpoints, logs, TensorBoard)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def launch_position() -> tuple[int, int]:
    """``(rank, world_size)`` as torchrun set them for this process; ``(0, 1)`` outside torchrun."""
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``device`` checked by :func:`googlenet.device.resolve_device` (one-line errors); ``auto`` and a
    bare ``cuda`` become this process's GPU, ``cuda:LOCAL_RANK``, under torchrun."""
    from ..device import resolve_device as checked

    dev = torch.device(checked(device))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: str = "auto", timeout: datetime.timedelta | None = None) -> DistEnv:
    """Join the torchrun job described by the environment, or return a single-process :class:`DistEnv`.

    The backend is NCCL for CUDA devices and Gloo for CPU, torch's recommended pairing. ``timeout``:
    how long a collective waits for the other ranks (torch's default when None); a job whose ranks
    may finish hours apart (an evaluation shared by machines of different speeds) needs more.
    """
    rank, world_size = launch_position()
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistEnv(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            device_id=dev if dev.type == "cuda" else None,
            **({"timeout": timeout} if timeout else {}),
        )
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)


def teardown(env: DistEnv) -> None:
    """Leave the process group (a no-op for single-process runs)."""
    if env.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.is_distributed:
        dist.barrier()


def all_reduce_sum(env: DistEnv, values: dict[str, float]) -> dict[str, float]:
    """Sum each named scalar over the ranks (counts and sums; divide afterwards for means).

    Reduced in float64 so that image counts stay exact.
    """
    if not env.is_distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device(env))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True when ``flag`` is true on at least one rank (used to stop every rank at the same step)."""
    if not env.is_distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device(env))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` for a single process)."""
    if not env.is_distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_objects(env: DistEnv, obj: Any, dst: int = 0) -> list[Any] | None:
    """``[obj of rank 0, obj of rank 1, ...]`` on rank ``dst``, None on the others (``[obj]`` for a
    single process): what only one rank needs (an evaluation's probabilities) travels only there.
    Works on Gloo and NCCL (whose objects travel through this rank's GPU, set by
    :func:`init_distributed`)."""
    if not env.is_distributed:
        return [obj]
    out: list[Any] | None = [None] * env.world_size if env.rank == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(env: DistEnv, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not env.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _collective_device(env: DistEnv) -> torch.device:
    # NCCL reduces CUDA tensors only; Gloo reduces CPU tensors.
    return env.device if env.backend == "nccl" else torch.device("cpu")


def job_shard(shard: Shard | str | None = None) -> Shard | None:
    """The shard this process works on: ``shard`` when given (a :class:`~googlenet.parts.Shard` or
    ``"I/N"``), else torchrun's rank of its world size when there are several ranks, else None (the
    whole job here)."""
    rank, world_size = launch_position()
    if shard is not None:
        if world_size > 1 and shard != Shard(rank, world_size):  # a Shard this function gave is fine
            raise GoogLeNetError(
                f"--shard {shard} under torchrun ({world_size} ranks): torchrun's ranks are the shards; "
                "give --shard only to processes started without torchrun"
            )
        return shard if isinstance(shard, Shard) else parse_shard(shard)
    return Shard(rank, world_size) if world_size > 1 else None


def run_sharded(shard: Shard | None, work: Callable[[Shard | None], R], merge: Callable[[], R]) -> R:
    """``work(shard)``; under torchrun (``shard`` is this rank's) every rank then waits for the
    others, and rank 0 returns ``merge()`` (the whole job from the parts every rank left), the
    other ranks their own ``work``'s result."""
    with rank_group(shard) as env:
        result = work(shard)
        if env is None:
            return result
        barrier(env)
        return merge() if env.is_main else result


@contextlib.contextmanager
def rank_group(shard: Shard | None) -> Iterator[DistEnv | None]:
    """Under torchrun (``shard`` from :func:`job_shard` with several ranks): the job's Gloo process
    group, joined for the length of a job with a timeout of :data:`RANK_WAIT`, left at the end when
    this joined it; elsewhere None."""
    rank, world_size = launch_position()
    if shard is None or world_size <= 1 or (shard.index, shard.count) != (rank, world_size):
        yield None
        return
    joined = not dist.is_initialized()
    # CPU: these jobs exchange no tensors, only a barrier, whatever the device of their work.
    env = init_distributed("cpu", timeout=RANK_WAIT)
    try:
        yield env
    finally:
        if joined:
            teardown(env)
