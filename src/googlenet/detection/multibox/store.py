"""A MultiBox model folder: ``model.safetensors`` (the network) beside ``multibox.json`` (priors, settings).

``googlenet train-multibox --out DIR`` leaves such a folder, and ``googlenet proposals --multibox
DIR`` reads it. ``multibox.json`` is a versioned manifest (:class:`googlenet.manifest.ManifestFormat`:
``"format": "googlenet-multibox"``, ``"format_version": 2``) holding the priors (Erhan et al. 2014),
the settings :class:`.model.MultiBox` runs with, the head (``"head"``, :class:`.network.MultiBoxHead`;
a file without it holds the ``pool`` head, the only one before heads had names) and the tensor hash
of the weights it was written for, so a folder never pairs priors with the weights of another training.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import GoogLeNetError
from ...manifest import ManifestFormat
from ...runs import MULTIBOX_FILE, RunLayout
from .model import MultiBox
from .network import MultiBoxHead, MultiBoxNetwork

__all__ = ["MULTIBOX_MANIFEST", "load_multibox", "save_multibox"]

# Version 2 added "head"; version 1 files (no head) hold the pool head and still load.
MULTIBOX_MANIFEST = ManifestFormat(
    "googlenet-multibox",
    2,
    "MultiBox file",
    "googlenet train-multibox --out DIR",
    version_key="format_version",
    readable=(1,),
)


def save_multibox(
    multibox: MultiBox, directory: str | Path, *, write_weights: bool = True, **extra: Any
) -> Path:
    """Write ``DIR/model.safetensors`` (the network) and then ``DIR/multibox.json`` (priors and settings).

    Both writes are atomic and the JSON, written last, records the weights' tensor hash, so a
    folder never pairs priors with other weights. With ``write_weights=False`` the weights file is
    already there (a training run's averaged weights) and must hold the network's tensors.
    ``extra``: JSON-able fields recorded beside them.
    """
    from ...weights.store import read_metadata, save_weights, tensors_sha256

    layout = RunLayout(directory)
    layout.root.mkdir(parents=True, exist_ok=True)
    if write_weights:
        save_weights(multibox.network, layout.weights, extra={"multibox": MULTIBOX_FILE})
    sha = read_metadata(layout.weights)["sha256"]
    if not write_weights and tensors_sha256(multibox.network.state_dict()) != sha:
        raise GoogLeNetError(f"{layout.weights} does not hold the MultiBox network being saved")
    body = {
        "num_priors": multibox.num_priors,
        "image_size": multibox.image_size,
        "alpha": multibox.alpha,
        "nms_iou": multibox.nms_iou,
        "head": multibox.head.to_dict(),
        "weights_sha256": sha,
        **extra,
        "priors": multibox.priors.tolist(),
    }
    return MULTIBOX_MANIFEST.write(layout.root / MULTIBOX_FILE, body)


def load_multibox(directory: str | Path, *, device: str | torch.device = "cpu") -> MultiBox:
    """The MultiBox model written by :func:`save_multibox` (``googlenet train-multibox --out DIR``)."""
    from ...weights.store import load_weights, read_metadata

    root = Path(directory).expanduser()
    path = root / MULTIBOX_FILE
    if not path.is_file():
        raise GoogLeNetError(
            f"MultiBox model folder {root} has no {MULTIBOX_FILE}: pass a folder written by "
            "googlenet train-multibox --out DIR"
        )
    settings = MULTIBOX_MANIFEST.read(path)
    try:
        priors = np.asarray(settings.get("priors"), dtype=np.float64)
    except (TypeError, ValueError):
        priors = np.zeros(0)
    if priors.ndim != 2 or priors.shape[1:] != (4,) or len(priors) < 1 or not np.isfinite(priors).all():
        raise GoogLeNetError(f"{path}: priors must be a non-empty list of [x1, y1, x2, y2] numbers")
    head = MultiBoxHead.from_dict(settings.get("head"), source=str(path))
    weights = RunLayout(root).weights
    sha = read_metadata(weights).get("sha256")
    if sha != settings.get("weights_sha256"):
        raise GoogLeNetError(
            f"{path}: records weights {str(settings.get('weights_sha256'))[:16]}... but {weights} holds "
            f"{str(sha)[:16]}...; the folder mixes two trainings"
        )
    build = functools.partial(MultiBoxNetwork, head=head) if head.kind == "grid" else None
    return MultiBox(
        network=load_weights(weights, device=device, build=build),
        priors=priors,
        image_size=_number(settings, "image_size", path, integer=True),
        alpha=float(_number(settings, "alpha", path)),
        nms_iou=float(_number(settings, "nms_iou", path)),
        head=head,
    )


def _number(settings: dict[str, Any], key: str, path: Path, *, integer: bool = False) -> Any:
    value = settings.get(key)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise GoogLeNetError(f"{path}: {key} must be {kind}. Got {value!r}")
    return value
