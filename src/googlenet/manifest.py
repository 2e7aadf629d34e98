"""JSON files the package writes and reads back: one reader, one writer, one-line errors naming the file.

Every small JSON document of the package is written here: the manifests that describe a folder
(``ensemble.json``, ``detector.json``, ``multibox.json``, the built-in sets' markers) and the
records a run leaves (``env.json``); the versioned manifests are read back here too. A manifest
carries ``format`` (what it is) and a version (how to read it); :class:`ManifestFormat` checks both
and says, in one line naming the file, what the file is instead and which command writes the right
one. Writes are atomic
(:func:`googlenet.atomic.atomic_write_text`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import GoogLeNetError

__all__ = ["ManifestFormat", "read_json", "write_json"]


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``; a missing, unreadable or malformed file is a GoogLeNetError
    naming ``what`` and the path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoogLeNetError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise GoogLeNetError(f"{what} {path} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"{what} {path} cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoogLeNetError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (one trailing newline) written to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class ManifestFormat:
    """A versioned JSON object: ``{"format": name, version_key: version, ...}``.

    ``what`` names it in errors ("detector manifest"); ``made_by`` is the command that writes it,
    for the hint; ``readable`` lists the older versions still read (besides ``version``).
    """

    name: str
    version: int
    what: str
    made_by: str
    version_key: str = "version"
    readable: tuple[int, ...] = ()

    def check(self, data: Any, path: str | Path) -> dict[str, Any]:
        """``data`` when it is an object of this format and a readable version, else a one-line error."""
        if not isinstance(data, Mapping) or data.get("format") != self.name:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise GoogLeNetError(
                f"{path}: not a {self.what} (format {found!r}, expected {self.name!r}); "
                f"pass a file written by {self.made_by}"
            )
        version = data.get(self.version_key)
        if version != self.version and version not in self.readable:
            raise GoogLeNetError(
                f"{path}: {self.what} version {version!r} is not supported by this googlenet "
                f"(it reads {', '.join(str(v) for v in (*self.readable, self.version))})"
            )
        return dict(data)

    def read(self, path: str | Path) -> dict[str, Any]:
        """The checked object of the file ``path``."""
        return self.check(read_json(path, what=self.what), path)

    def write(self, path: str | Path, body: Mapping[str, Any]) -> Path:
        """``body`` with this format's ``format`` and version keys first, written atomically."""
        return write_json(path, {"format": self.name, self.version_key: self.version, **body})
