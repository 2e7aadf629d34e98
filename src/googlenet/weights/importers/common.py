"""Shared by the importers: the import report, file hashes, a model built from a state dict.

The models are the registered variants of the paper's network (section 5, Table 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import GoogLeNetError
from ...models.model import GoogLeNet
from ...models.registry import create_model


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


def empty_model(name: str, **kwargs: Any) -> GoogLeNet:
    """``create_model(name, **kwargs)`` on the meta device: the layout without memory or random init.

    An importer overwrites every tensor at once, so initialising 7M parameters first would be
    wasted (it is most of an import's time); :func:`assign_state` fills the model.
    """
    with torch.device("meta"):
        return create_model(name, **kwargs)


def assign_state(model: GoogLeNet, state: dict[str, torch.Tensor], where: str) -> GoogLeNet:
    """Assign ``state`` (keys and shapes already checked) to an :func:`empty_model`, strictly.

    Tensors are cast to the model's dtypes (a float16 checkpoint gives a float32 model).
    """
    expected = model.state_dict()
    state = {k: v.to(dtype=expected[k].dtype) if k in expected else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a tensor outside the state dict; none of today's layers has one
        raise GoogLeNetError(f"{where}: tensors missing from the weights: {', '.join(left[:5])}")
    return model
