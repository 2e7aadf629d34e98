"""The package's weight format: safetensors with the metadata that rebuilds the model.

A ``.safetensors`` file written by :func:`save_weights` holds the state dict and, in its string
metadata, the variant's :class:`~googlenet.GoogLeNetConfig`, the :class:`~googlenet.ModelMeta`
(preprocessing, class names), whether the auxiliary heads are present, a SHA-256 over the tensors and
an optional hash of the training config. :func:`load_weights` rebuilds the right model from the file
alone and refuses a file whose tensors do not hash to the recorded value. safetensors cannot execute
code on load, unlike pickle-based checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet, ModelMeta
from ..models.spec import config_from_dict, config_to_dict

FORMAT = "googlenet-safetensors"
FORMAT_VERSION = "1"


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _meta_from_dict(data: dict[str, Any]) -> ModelMeta:
    data = dict(data)
    for key in ("input_size", "mean", "std"):
        if key in data:
            data[key] = tuple(data[key])
    return ModelMeta(**data)


def save_weights(
    model: GoogLeNet,
    path: str | Path,
    *,
    training_config_hash: str | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights and everything needed to rebuild it to ``path`` (atomically)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variant": model.meta.variant,
        "num_classes": str(model.num_classes),
        "aux_logits": json.dumps(model.aux_logits),
        "config": json.dumps(config_to_dict(model.config)),
        "meta": json.dumps(asdict(model.meta)),
        "sha256": tensors_sha256(state),
    }
    if training_config_hash:
        metadata["training_config_hash"] = training_config_hash
    for key, value in (extra or {}).items():
        if key in metadata:
            raise ValueError(f"extra metadata key {key!r} is reserved")
        metadata[key] = str(value)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (no tensors are read)."""
    path = Path(path)
    if not path.is_file():
        raise GoogLeNetError(f"weights file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise GoogLeNetError(f"{path}: not a readable safetensors file ({exc})") from None


def load_weights(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    verify: bool = True,
    build: Callable[..., GoogLeNet] | None = None,
) -> GoogLeNet:
    """Rebuild the model stored in ``path`` by :func:`save_weights`, in eval mode.

    With ``verify`` (the default) the tensors must hash to the SHA-256 recorded in the file.
    ``build(config, num_classes=, aux_logits=, meta=)`` makes the model the tensors are loaded into:
    :class:`~googlenet.models.model.GoogLeNet` by default, a subclass with another head (MultiBox's
    grid network) where the file's owner knows it holds one.
    """
    path = Path(path)
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise GoogLeNetError(
            f"{path}: not a googlenet weights file (metadata format={metadata.get('format')!r}); "
            "convert foreign weights with `googlenet convert`"
        )
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    if verify:
        actual = tensors_sha256(state)
        if actual != metadata.get("sha256"):
            raise GoogLeNetError(
                f"{path}: tensor SHA-256 {actual[:16]}... does not match the recorded "
                f"{str(metadata.get('sha256'))[:16]}...; the file is corrupt or was modified"
            )
    try:
        config = config_from_dict(json.loads(metadata["config"]))
        meta = _meta_from_dict(json.loads(metadata["meta"]))
        num_classes = int(metadata["num_classes"])
        aux_logits = bool(json.loads(metadata["aux_logits"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise GoogLeNetError(f"{path}: damaged googlenet metadata ({exc})") from None
    model = (build or GoogLeNet)(config, num_classes=num_classes, aux_logits=aux_logits, meta=meta)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        head = meta.extra.get("multibox_head")
        hint = f" (a MultiBox {head} network: load its folder with load_multibox)" if head else ""
        raise GoogLeNetError(
            f"{path}: its tensors do not fit a {type(model).__name__} of its recorded config{hint}"
        ) from None
    return model.to(device).eval()
