"""Detection jobs spread over processes and machines (paper section 8): shards, chunks, part files.

Selective Search over a detection split and a detector's evaluation (every region of every image
through every member) are the slow steps of section 8; this module lets several processes share
them. A *shard* is ``--shard I/N`` (machines that share a file system but no torchrun job) or a
torchrun rank (``RANK``/``WORLD_SIZE``, :func:`googlenet.training.distributed.launch_position`).

The images of a split are cut into *chunks* whose size depends on the image count alone
(:func:`image_chunks`), so every shard count cuts the same chunks; shard ``I`` of ``N`` takes the
``I``-th of ``N`` contiguous runs of chunks (:meth:`Shard.chunks`). A chunk is also what a job writes
as soon as it is done (:class:`PartsFolder`, every write atomic), so a killed run continues where it
stopped and parts made under one shard count serve another. Each part carries the job's key (its
data and settings): a part of other settings is refused in one line, never mixed in.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..cost import split_evenly
from ..errors import GoogLeNetError
from ..training.distributed import launch_position

if TYPE_CHECKING:
    from ..training.distributed import DistEnv

__all__ = [
    "PartsFolder",
    "Shard",
    "chunk_images",
    "image_chunks",
    "job_shard",
    "missing_shards",
    "parse_shard",
    "rank_group",
    "read_arrays",
    "run_sharded",
    "write_arrays",
]

# A chunk holds at most this many images: a killed run loses at most one chunk per process (a
# minute or two of Selective Search), and a split of ILSVRC DET's size makes a few thousand files.
CHUNK_IMAGES = 64
# Small splits are cut into this many chunks at least (one image each below it), so that up to this
# many shards get a share of the images.
MIN_CHUNKS = 64
# How long torchrun ranks wait for each other at the end of a job: a shard of a multi-day job may
# finish hours after another (torch's default, 30 minutes, would abort the job).
RANK_WAIT = datetime.timedelta(days=7)

R = TypeVar("R")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count`` processes or machines sharing one job."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise GoogLeNetError(f"a shard is I/N with 0 <= I < N. Got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """The shard in file names: ``shard-0-of-2``."""
        return f"shard-{self.index}-of-{self.count}"

    def chunks(self, num_chunks: int) -> range:
        """The chunk indices this shard takes: the ``index``-th of ``count`` contiguous runs."""
        return split_evenly(num_chunks, self.count)[self.index]

    def images(self, num_images: int) -> list[int]:
        """The image indices this shard takes, in the split's order."""
        chunks = image_chunks(num_images)
        return [i for c in self.chunks(len(chunks)) for i in chunks[c]]


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> ``Shard(I, N)``; anything else is a one-line error."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise GoogLeNetError(f"--shard must be I/N (shard I of N, 0 <= I < N), e.g. 0/4. Got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise GoogLeNetError(f"--shard I/N needs 0 <= I < N. Got {text!r}")
    return Shard(index, count)


def job_shard(shard: Shard | str | None = None) -> Shard | None:
    """The shard this process works on: ``shard`` when given (a :class:`Shard` or ``"I/N"``), else
    torchrun's rank of its world size when there are several ranks, else None (the whole job here)."""
    rank, world_size = launch_position()
    if shard is not None:
        if world_size > 1 and shard != Shard(rank, world_size):  # a Shard this function gave is fine
            raise GoogLeNetError(
                f"--shard {shard} under torchrun ({world_size} ranks): torchrun's ranks are the shards; "
                "give --shard only to processes started without torchrun"
            )
        return shard if isinstance(shard, Shard) else parse_shard(shard)
    return Shard(rank, world_size) if world_size > 1 else None


def chunk_images(num_images: int) -> int:
    """Images per chunk for a split of ``num_images``: a function of the count alone."""
    return max(1, min(CHUNK_IMAGES, num_images // MIN_CHUNKS))


def image_chunks(num_images: int) -> list[range]:
    """``range(num_images)`` cut into consecutive chunks of :func:`chunk_images` images."""
    size = chunk_images(num_images)
    return [range(start, min(start + size, num_images)) for start in range(0, num_images, size)]


def missing_shards(shards: Iterable[Shard], done: Iterable[int], num_chunks: int) -> list[tuple[Shard, int]]:
    """``(shard, chunks it has not finished)`` for each of ``shards`` with chunks missing from ``done``."""
    finished = set(done)
    out = []
    for shard in sorted(set(shards), key=lambda s: (s.count, s.index)):
        left = sum(1 for c in shard.chunks(num_chunks) if c not in finished)
        if left:
            out.append((shard, left))
    return out


class PartsFolder:
    """A folder of a job's finished parts, each an ``.npz`` of named arrays plus the job's ``key``
    (a JSON string of its data and settings), written atomically.

    Parts are named by the caller (``chunk-000012``, ``shard-0-of-2``). :meth:`read` gives None for
    a part that is missing or damaged (to be made again) and refuses, in one line, a part made with
    another key. :meth:`mark` records that a shard took part (``shard-0-of-2.json``), so that a
    merge can say which shards have not finished.
    """

    def __init__(self, root: str | Path, key: str, *, what: str = "parts") -> None:
        self.root = Path(root)
        self.key = key
        self.what = what

    def path(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def write(self, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        return write_arrays(self.path(name), self.key, arrays)

    def read(self, name: str) -> dict[str, np.ndarray] | None:
        return read_arrays(self.path(name), self.key, remove=self.root)

    def check(self) -> None:
        """Refuse, in one line, a folder holding parts made with another key (before any work)."""
        for name in self.names(""):
            try:
                with np.load(self.path(name), allow_pickle=False) as z:  # lazy: reads the key only
                    key = str(z["key"]) if "key" in z.files else self.key
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue  # damaged: made again
            if key != self.key:
                raise other_settings(self.path(name), self.root)

    def names(self, prefix: str) -> list[str]:
        """The names of the parts present whose name starts with ``prefix``, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob(f"{prefix}*.npz"))

    def mark(self, shard: Shard) -> None:
        atomic_write_text(self.root / f"{shard.name}.json", json.dumps({"shard": str(shard)}) + "\n")

    def marks(self) -> list[Shard]:
        """The shards that worked on this job (:meth:`mark`)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("shard-*-of-*.json"):
            match = re.fullmatch(r"shard-(\d+)-of-(\d+)", path.stem)
            if match and int(match.group(1)) < int(match.group(2)):
                found.append(Shard(int(match.group(1)), int(match.group(2))))
        return sorted(found, key=lambda s: (s.count, s.index))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def write_arrays(path: str | Path, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """``arrays`` and ``key`` as an ``.npz`` at ``path``, atomically (a part, or a whole cache entry)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, key=np.array(key), **arrays)

    return atomic_write(path, write)


def read_arrays(path: str | Path, key: str, *, remove: Path | None = None) -> dict[str, np.ndarray] | None:
    """The arrays :func:`write_arrays` wrote at ``path``; None when the file is missing or damaged
    (to be made again). A file made with another ``key`` is refused in one line (``remove``: the
    folder the message tells the user to remove, default the file)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if "key" not in arrays:
        return None
    if str(arrays.pop("key")) != key:
        raise other_settings(path, remove or path)
    return arrays


def other_settings(path: Path, remove: Path) -> GoogLeNetError:
    """The one-line refusal of a part made with another key than the run's."""
    return GoogLeNetError(
        f"{path} was made with other data or settings than this run's; remove {remove} (or run with "
        "the settings it was made with) rather than mix them"
    )


def run_sharded(shard: Shard | None, work: Callable[[Shard | None], R], merge: Callable[[], R]) -> R:
    """``work(shard)``; under torchrun (``shard`` is this rank's) every rank then waits for the
    others, and rank 0 returns ``merge()`` (the whole job from the parts every rank left), the
    other ranks their own ``work``'s result."""
    from ..training.distributed import barrier

    with rank_group(shard) as env:
        result = work(shard)
        if env is None:
            return result
        barrier(env)
        return merge() if env.is_main else result


@contextlib.contextmanager
def rank_group(shard: Shard | None) -> Iterator[DistEnv | None]:
    """Under torchrun (``shard`` from :func:`job_shard` with several ranks): the job's Gloo process
    group, joined for the length of a job with a timeout of days (a rank may finish its share hours
    after another), left at the end when this joined it; elsewhere None."""
    import torch.distributed as dist

    from ..training.distributed import init_distributed, teardown

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
