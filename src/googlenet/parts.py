"""Long jobs cut into parts: image chunks, shards, and a folder of finished parts that survives a kill.

Table 3's last row (7 models x 144 crops per image, section 7), Selective Search over a detection
split and a detector's evaluation (section 8) take hours to days on one machine. Each is cut the same
way:

* the images are cut into consecutive *chunks* (:func:`image_chunks`), of a size given by the job or,
  by default, a function of the image count alone (:func:`chunk_images`), so that every shard count
  cuts the same chunks;
* a *shard* (:class:`Shard`, ``--shard I/N`` or a torchrun rank) takes the ``I``-th of ``N``
  contiguous runs of chunks;
* a :class:`PartsFolder` keeps each finished part, written atomically and carrying the job's *key*
  (its data and settings), so a killed run continues where it stopped and parts made under one shard
  count serve another. A folder holding another job's parts is refused in one line naming what
  changed (:func:`changed_settings`), never mixed in.

It is a leaf: evaluation and detection both build on it, neither on the other.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write, atomic_write_text
from .cost import split_evenly
from .errors import GoogLeNetError

if TYPE_CHECKING:
    import numpy as np

    from .manifest import ManifestFormat

__all__ = [
    "PartsFolder",
    "Shard",
    "changed_settings",
    "chunk_images",
    "image_chunks",
    "missing_shards",
    "other_settings",
    "parse_shard",
    "read_arrays",
    "write_arrays",
]

# A chunk holds at most this many images by default: a killed run loses at most one chunk per
# process (a minute or two of Selective Search), and a split of ILSVRC DET's size makes a few
# thousand files.
CHUNK_IMAGES = 64
# Small splits are cut into this many chunks at least (one image each below it), so that up to this
# many shards get a share of the images.
MIN_CHUNKS = 64
SETTINGS_FILE = "settings.json"
# What a parts folder holds: its parts, marks and settings, and a killed write's temporary file
# (googlenet.atomic names it ".<name>.<random>.tmp").
_OWN_FILE = re.compile(
    r"\.?(settings\.json|(chunk-\d+|shard-\d+-of-\d+)\.(npz|safetensors|json))(\.\w+\.tmp)?"
)


def chunk_images(num_images: int) -> int:
    """Default images per chunk for a split of ``num_images``: a function of the count alone."""
    return max(1, min(CHUNK_IMAGES, num_images // MIN_CHUNKS))


def image_chunks(num_images: int, size: int | None = None) -> list[range]:
    """``range(num_images)`` cut into consecutive chunks of ``size`` images (default
    :func:`chunk_images`); the last may be shorter."""
    size = chunk_images(num_images) if size is None else size
    return [range(start, min(start + size, num_images)) for start in range(0, num_images, size)]


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

    def images(self, num_images: int, size: int | None = None) -> list[int]:
        """The image indices this shard takes, in the split's order (chunks of ``size`` images,
        default :func:`chunk_images`)."""
        chunks = image_chunks(num_images, size)
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


def missing_shards(shards: Iterable[Shard], done: Iterable[int], num_chunks: int) -> list[tuple[Shard, int]]:
    """``(shard, chunks it has not finished)`` for each of ``shards`` with chunks missing from ``done``."""
    finished = set(done)
    out = []
    for shard in sorted(set(shards), key=lambda s: (s.count, s.index)):
        left = sum(1 for c in shard.chunks(num_chunks) if c not in finished)
        if left:
            out.append((shard, left))
    return out


def changed_settings(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    hashed: Iterable[str] = (),
) -> list[str]:
    """``["--crops 1 10 144 there, 1 now", ...]``: each setting that differs, named for a user by
    ``labels`` (a command's flag; default the key); settings in ``hashed``, and values too long to
    tell apart when shortened, are said to differ."""
    labels, hashed = labels or {}, set(hashed)
    out = []
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) == new.get(key):
            continue
        name = labels.get(key, key)
        there, now = _shown(old.get(key)), _shown(new.get(key))
        out.append(f"{name} differ" if key in hashed or there == now else f"{name} {there} there, {now} now")
    return out


def _shown(value: Any) -> str:
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _settings_of(key: str) -> dict[str, Any]:
    """The settings a key written as a JSON object holds ({} for any other key)."""
    with contextlib.suppress(ValueError):
        decoded = json.loads(key)
        if isinstance(decoded, dict):
            return decoded
    return {}


def other_settings(path: str | Path, remove: str | Path, changes: Iterable[str] = ()) -> GoogLeNetError:
    """The one-line refusal of parts (or a cache entry) at ``path`` made for another job than this
    run's, naming what changed when known; ``remove``: what the user deletes to start over."""
    changed = "; ".join(changes)
    return GoogLeNetError(
        f"{path} was made with other data or settings than this run's{f' ({changed})' if changed else ''}: "
        f"run with the settings it was made with to finish it, or delete {remove} to start over"
    )


class PartsFolder:
    """A folder of one job's finished parts, every file written atomically and carrying ``key``.

    ``key`` is a string decided by what the parts depend on (the data and the settings); a JSON
    object of the settings names what changed when another job's parts are found. ``settings``
    (default: ``key`` read as JSON) and ``labels`` / ``hashed`` (:func:`changed_settings`) say how
    a change is named; ``record`` keeps the settings in ``settings.json`` (:meth:`start`), for a
    job whose parts carry a digest of them rather than the settings themselves.

    Parts are named by the caller (``chunk-000012``, ``shard-0-of-2``). The ``.npz`` parts
    (:meth:`write` / :meth:`read`: named arrays) read None when missing or damaged (to be made
    again); a job with its own part format uses :meth:`path` and :meth:`names` with its suffix.
    :meth:`mark` records that a shard took part, so that a merge can say which have not finished.
    """

    def __init__(
        self,
        root: str | Path,
        key: str,
        *,
        settings: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        hashed: Iterable[str] = (),
        record: ManifestFormat | None = None,
    ) -> None:
        self.root = Path(root)
        self.key = key
        self.settings = dict(settings) if settings is not None else _settings_of(key)
        self.labels = dict(labels or {})
        self.hashed = tuple(hashed)
        self.record = record

    def path(self, name: str, suffix: str = ".npz") -> Path:
        return self.root / f"{name}{suffix}"

    def names(self, prefix: str, suffix: str = ".npz") -> list[str]:
        """The names of the parts present whose name starts with ``prefix``, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(suffix)] for p in self.root.glob(f"{prefix}*{suffix}"))

    def refusal(self, where: str | Path, old: Mapping[str, Any]) -> GoogLeNetError:
        """The one-line refusal of ``where``, made with the settings ``old``: what changed named."""
        changes = changed_settings(old, self.settings, self.labels, self.hashed)
        return other_settings(where, self.root, changes)

    def check(self) -> None:
        """Refuse, in one line naming what changed, a folder holding another job's parts (before any
        work): its recorded settings, or the key of any ``.npz`` part."""
        if self.root.exists() and not self.root.is_dir():
            raise GoogLeNetError(f"{self.root} is a file, not a folder for parts: pass another folder")
        recorded = self.root / SETTINGS_FILE
        if self.record is not None and recorded.exists():
            old = self.record.read(recorded)
            if old.get("key") != self.key:
                raise self.refusal(self.root, old.get("settings", {}))
        import numpy as np

        for name in self.names(""):
            try:
                with np.load(self.path(name), allow_pickle=False) as z:  # lazy: reads the key only
                    key = str(z["key"]) if "key" in z.files else self.key
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue  # damaged: made again
            if key != self.key:
                raise self.refusal(self.path(name), _settings_of(key))

    def start(self) -> None:
        """Create the folder and record the settings (once; :meth:`check` first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        recorded = self.root / SETTINGS_FILE
        if self.record is not None and not recorded.exists():
            self.record.write(recorded, {"key": self.key, "settings": self.settings})

    def write(self, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        return write_arrays(self.path(name), self.key, arrays)

    def read(self, name: str) -> dict[str, np.ndarray] | None:
        return read_arrays(self.path(name), self.key, remove=self.root, settings=self)

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

    def shards(self, suffix: str = ".npz") -> list[Shard]:
        """The shards whose parts (``shard-I-of-N``) are here."""
        found = []
        for name in self.names("shard-", suffix):
            match = re.fullmatch(r"shard-(\d+)-of-(\d+)", name)
            if match and int(match.group(1)) < int(match.group(2)):
                found.append(Shard(int(match.group(1)), int(match.group(2))))
        return found

    def remove(self) -> None:
        """Delete the parts (``chunk-*``, ``shard-*-of-*``), the marks, the settings and their
        temporary files, then the folder; anything else in it (a user's file) keeps the folder."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if _OWN_FILE.fullmatch(path.name) and path.is_file():
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()


def write_arrays(path: str | Path, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """``arrays`` and ``key`` as an ``.npz`` at ``path``, atomically (a part, or a whole cache entry)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, key=np.array(key), **arrays)

    return atomic_write(path, write)


def read_arrays(
    path: str | Path, key: str, *, remove: Path | None = None, settings: PartsFolder | None = None
) -> dict[str, np.ndarray] | None:
    """The arrays :func:`write_arrays` wrote at ``path``; None when the file is missing or damaged
    (to be made again). A file made with another ``key`` is refused in one line naming what changed
    (``remove``: the folder the message tells the user to delete, default the file; ``settings``:
    the folder whose settings name the change, default the keys read as JSON)."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, or cut short by a crash: made again
    if "key" not in arrays:
        return None
    found = str(arrays.pop("key"))
    if found != key:
        if settings is not None:
            raise settings.refusal(path, _settings_of(found))
        raise other_settings(path, remove or path, changed_settings(_settings_of(found), _settings_of(key)))
    return arrays
