"""Atomic file writes: a crash or a kill mid-write never leaves a half-written file in place.

Every file the package writes that a user or a resumed run relies on (weights, checkpoints, run
metadata, evaluation JSON, reports, exports) goes through :func:`atomic_write`;
:func:`writable_ancestor` checks, before any work, that the folder it will write in can be created.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode an ordinary write would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def writable_ancestor(folder: str | Path) -> Path:
    """The folder ``folder`` is, or will be created in: ``folder`` itself when it exists, else its
    nearest existing ancestor. Checked before any work, so that a write at the end cannot fail on
    it: NotADirectoryError when that ancestor is a file, PermissionError when files cannot be
    created in it; both carry the ancestor as ``filename``."""
    ancestor = Path(folder)
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(ancestor))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "not writable", str(ancestor))
    return ancestor
