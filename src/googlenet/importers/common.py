"""What every importer returns beside the model: a short report of what was imported, from where."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ImportReport:
    """What an importer read and built; :meth:`summary` is the line the CLI prints."""

    source_format: str  # "caffe" or "torchvision"
    source: str  # file name, or "<state dict>"
    source_sha256: str | None
    variant: str
    num_classes: int
    aux_heads: bool
    tensors: int  # parameter tensors (or layers, for Caffe) copied
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        aux = "with the auxiliary heads" if self.aux_heads else "without auxiliary heads"
        text = (
            f"imported {self.source_format} weights from {self.source} into {self.variant}: "
            f"{self.num_classes} classes, {aux}, {self.tensors} {self._unit()}"
        )
        return "; ".join([text, *self.notes])

    def _unit(self) -> str:
        return "layers" if self.source_format == "caffe" else "tensors"
