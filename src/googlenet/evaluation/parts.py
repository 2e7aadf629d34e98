"""The work folder of an unfinished evaluation: every finished chunk of images on disk, so that a killed
run of the section 7 protocol continues where it stopped.

Table 3's last row is hours to days of forward passes (7 models x 144 crops per image, section 7). The
images are cut into chunks of a fixed number of images (``chunk_images``); as each chunk is done its
crop-combined probabilities of every ``(model, scheme)`` and its unreadable images are written, atomically,
as ``chunk-NNNNNN.safetensors``. A chunk's bytes depend on its images alone (the batches never cross
it: :func:`googlenet.evaluation.protocol.crop_probabilities`), so a chunk written by any process --
another torchrun rank, a run with another world size, the run that was killed -- is the chunk this run
would compute, and is reused by its index.

``settings.json`` records what the parts are of (crops, combine, the models' tensor hashes, backends,
precisions, the data and its image list, limit, image size, device type, batch size, chunk size); a run
with other settings is refused in one line naming what changed, never mixed with the old parts. Every
chunk also carries the hash of those settings, so a stray file from another evaluation is refused too.
The folder is removed once the evaluation's result exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import GoogLeNetError
from ..manifest import ManifestFormat
from .protocol import CropProbabilities

__all__ = ["DEFAULT_CHUNK_IMAGES", "EvaluationParts", "changed_settings", "default_work_dir"]

DEFAULT_CHUNK_IMAGES = 64  # a killed 144-crop run loses at most 64 x 144 forward passes per model
SETTINGS = ManifestFormat("googlenet-evaluate-work", 1, "evaluation work folder", "googlenet evaluate")
PART_FORMAT = "googlenet-evaluate-part"
SETTINGS_FILE = "settings.json"
PART_GLOB = "chunk-*.safetensors"

# How a change of each setting is named (the command's flags where there is one).
_NAMES = {
    "crops": "--crops",
    "combine": "--combine",
    "models": "the models (tensor hashes)",
    "backend": "--backend",
    "precision": "--precision",
    "data": "--data",
    "split": "--split",
    "layout": "--layout",
    "images": "the images (files or labels)",
    "num_images": "the image count",
    "limit": "--limit",
    "image_size": "--image-size",
    "device": "--device",
    "batch_size": "--batch-size",
    "chunk_images": "--chunk-images",
    "num_classes": "the class count",
}
_HASHES = ("models", "images")  # shown as "differ", not as their hex


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["--crops 1 10 144 there, 1 now", ...]``: each setting that differs, named for a user."""
    out = []
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) == new.get(key):
            continue
        name = _NAMES.get(key, key)
        if key in _HASHES:
            out.append(f"{name} differ")
        else:
            out.append(f"{name} {_shown(old.get(key))} there, {_shown(new.get(key))} now")
    return out


def _shown(value: Any) -> str:
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def default_work_dir(json_file: str | Path | None, identity: Mapping[str, Any]) -> Path:
    """Where ``googlenet evaluate`` keeps its parts unless told: beside the ``--json`` file
    (``table3.json`` -> ``table3.json.parts/``), else in the cache under a hash of ``identity`` (the
    data and checkpoints as given), so that the same command finds them again."""
    if json_file is not None:
        path = Path(json_file)
        return path.with_name(path.name + ".parts")
    from ..cache import cache_dir, parameter_key

    return cache_dir() / "evaluate" / parameter_key(1, dict(identity))


class EvaluationParts:
    """The chunks of one evaluation (``settings``) in the folder ``root``."""

    def __init__(self, root: str | Path, settings: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.settings = dict(settings)
        blob = json.dumps(self.settings, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Refuse, in one line naming what changed, a folder holding another evaluation's parts."""
        path = self.root / SETTINGS_FILE
        if self.root.exists() and not self.root.is_dir():
            raise GoogLeNetError(f"work folder {self.root} is a file; pass another --work-dir")
        if not path.exists():
            return
        old = SETTINGS.read(path).get("settings", {})
        changed = changed_settings(old, self.settings)
        if changed:
            raise GoogLeNetError(
                f"{self.root} holds the parts of an unfinished evaluation with other settings "
                f"({'; '.join(changed)}): rerun that command to finish it, or delete {self.root} to "
                "start over"
            )

    def start(self) -> None:
        """Create the folder and record the settings (once; :meth:`check` first)."""
        path = self.root / SETTINGS_FILE
        if not path.exists():
            SETTINGS.write(path, {"key": self.key, "settings": self.settings})

    def path(self, chunk: int) -> Path:
        return self.root / f"chunk-{chunk:06d}.safetensors"

    def done(self) -> set[int]:
        """The chunk indices that have a file here (read and checked by :meth:`read`)."""
        if not self.root.is_dir():
            return set()
        found = set()
        for path in self.root.glob(PART_GLOB):
            try:
                found.add(int(path.stem.split("-")[1]))
            except (IndexError, ValueError):
                continue
        return found

    def write(self, chunk: int, first: int, part: CropProbabilities) -> Path:
        """Chunk ``chunk`` (images ``first`` to ``first + part.num_images``), atomically."""
        from safetensors.torch import save_file

        tensors = {f"{m}/{scheme}": probs.contiguous() for (m, scheme), probs in part.probs.items()}
        metadata = {
            "format": PART_FORMAT,
            "key": self.key,
            "chunk": str(chunk),
            "first": str(first),
            "count": str(part.num_images),
            "unreadable": json.dumps(part.unreadable),
        }
        return atomic_write(self.path(chunk), lambda tmp: save_file(tensors, tmp, metadata=metadata))

    def read(self, chunk: int, first: int, count: int) -> CropProbabilities | None:
        """Chunk ``chunk`` (images ``first`` to ``first + count``) as :meth:`write` wrote it; None when
        its file is missing or damaged (to be computed again). A chunk of other settings or other
        images is refused in one line."""
        from safetensors import SafetensorError
        from safetensors.torch import safe_open

        path = self.path(chunk)
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - not a dict
        except (OSError, SafetensorError, ValueError):  # missing, or cut short by a crash: redo it
            return None
        if meta.get("format") != PART_FORMAT:
            return None
        if meta.get("key") != self.key or (meta.get("first"), meta.get("count")) != (str(first), str(count)):
            raise GoogLeNetError(
                f"{path} is a part of another evaluation than this one; delete {self.root} to start over"
            )
        probs = {}
        for name, rows in tensors.items():
            m, scheme = name.split("/")
            probs[(int(m), scheme)] = rows
        unreadable = [(int(i), str(msg)) for i, msg in json.loads(meta.get("unreadable", "[]"))]
        schemes = [str(c) for c in self.settings.get("crops", [])]
        return CropProbabilities(probs, [], schemes, count, self.settings.get("combine", "mean"), unreadable)

    def remove(self) -> None:
        """Delete the parts and the settings, then the folder if nothing else is in it."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(PART_GLOB):
            path.unlink(missing_ok=True)
        (self.root / SETTINGS_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # something of the user's, or a rank's temporary file: keep it
            self.root.rmdir()
