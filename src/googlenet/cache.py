"""The package's cache directory, and the safe way to build a generated data set in it.

``--data builtin`` (the classification set, :mod:`googlenet.data.builtin`) and the built-in
detection set (:mod:`googlenet.detection.builtin`) are generated on first use and kept here.
:func:`build_directory` is their shared write protocol: build into a temporary sibling, rename it
into place, all under a lock on the parent, so concurrent callers (torchrun ranks) share one copy
and a killed run never leaves a half set where a complete one is expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import GoogLeNetError


def cache_dir() -> Path:
    """``$GOOGLENET_CACHE`` if set, else ``~/.cache/googlenet``."""
    env = os.environ.get("GOOGLENET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "googlenet"


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[bool]:
    """Exclusive lock on a directory (flock on its descriptor: no lock file left behind).

    Yields whether the lock is real; without fcntl (Windows) concurrent generation still cannot
    corrupt a set, because each process writes its own temporary directory and renames it.
    """
    try:
        import fcntl
    except ImportError:
        yield False
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def temp_prefix(root: Path) -> str:
    """Name prefix of ``root``'s temporary siblings (``.<name>.tmp-``)."""
    return f".{root.name}.tmp-"


def build_directory(
    root: str | Path,
    *,
    is_complete: Callable[[Path], bool],
    check_target: Callable[[Path], None],
    generate: Callable[[Path], None],
) -> Path:
    """Make ``root`` with ``generate(tmp)`` unless ``is_complete(root)``; return ``root`` (absolute).

    ``check_target(root)`` runs (under the lock) before generating and raises if ``root`` holds
    something that must not be replaced; user files are never deleted. ``generate`` fills an
    empty temporary sibling, which is renamed to ``root`` when it returns; if it raises, the
    sibling is removed. Leftover siblings of killed runs are removed by the next call.
    """
    root = Path(root).expanduser().absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(root.parent) as locked:
        if is_complete(root):
            return root
        check_target(root)
        if locked:  # leftovers of killed runs; nobody else can be writing them while we hold the lock
            for stale in root.parent.glob(temp_prefix(root) + "*"):
                shutil.rmtree(stale, ignore_errors=True)
        # Not tempfile.mkdtemp: its mode 0700 would survive the rename; mkdir honours the umask.
        tmp = root.parent / f"{temp_prefix(root)}{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            generate(tmp)
            if root.is_dir():
                root.rmdir()  # empty (check_target saw to it); os.replace needs it gone on some systems
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_complete(root):  # another process (without a lock) won the race
                return root
            raise
    return root


def parameter_key(version: int, params: dict[str, object]) -> str:
    """Short hash of a generator's version and its full parameters: a cached set's directory name."""
    blob = json.dumps({"version": version, **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cached_set(
    name: str,
    key: str,
    cache_root: str | Path | None,
    is_complete: Callable[[Path], bool],
    make: Callable[[Path], Path],
) -> Path:
    """The generated set ``<cache>/<name>-<key>``: reused when complete (no lock, no scan: the
    common case), else made by ``make(target)`` (which locks, see :func:`build_directory`)."""
    root = Path(cache_root).expanduser() if cache_root is not None else cache_dir()
    target = root / f"{name}-{key}"
    if is_complete(target):
        return target.absolute()
    return make(target)


def data_folder(data: str | Path, what: str, hint: str, make_builtin: Callable[[], Path]) -> Path:
    """``"builtin"`` -> ``make_builtin()``; else ``data`` as an existing folder, or a one-line error
    naming it as ``what`` with ``hint`` (what to give instead)."""
    if str(data) == "builtin":
        return make_builtin()
    path = Path(data).expanduser()
    if not path.is_dir():
        state = "does not exist" if not path.exists() else "is not a directory"
        raise GoogLeNetError(f"{what} {str(data)!r} {state} ({hint})")
    return path
