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

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import GoogLeNetError
from ..manifest import ManifestFormat
from ..parts import PartsFolder
from .protocol import CropProbabilities

__all__ = ["DEFAULT_CHUNK_IMAGES", "EvaluationParts", "default_work_dir"]

DEFAULT_CHUNK_IMAGES = 64  # a killed 144-crop run loses at most 64 x 144 forward passes per model
SETTINGS = ManifestFormat("googlenet-evaluate-work", 1, "evaluation work folder", "googlenet evaluate")
PART_FORMAT = "googlenet-evaluate-part"
PART_SUFFIX = ".safetensors"

# How a change of each setting is named (the command's flags where there is one).
LABELS = {
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
HASHED = ("models", "images")  # shown as "differ", not as their hex


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
    """The chunks of one evaluation (``settings``) in the folder ``root``
    (a :class:`googlenet.parts.PartsFolder` whose settings are recorded in ``settings.json``)."""

    def __init__(self, root: str | Path, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        blob = json.dumps(self.settings, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self.folder = PartsFolder(
            root, self.key, settings=self.settings, labels=LABELS, hashed=HASHED, record=SETTINGS
        )
        self.root = self.folder.root

    def check(self) -> None:
        """Refuse, in one line naming what changed, a folder holding another evaluation's parts."""
        self.folder.check()

    def start(self) -> None:
        """Create the folder and record the settings (once; :meth:`check` first)."""
        self.folder.start()

    def path(self, chunk: int) -> Path:
        return self.folder.path(f"chunk-{chunk:06d}", PART_SUFFIX)

    def done(self) -> set[int]:
        """The chunk indices that have a file here (read and checked by :meth:`read`)."""
        names = self.folder.names("chunk-", PART_SUFFIX)
        return {int(name[len("chunk-") :]) for name in names if name[len("chunk-") :].isdigit()}

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
        self.folder.remove()
