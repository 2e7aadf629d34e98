"""The model a ``--checkpoint`` / ``--init-from`` argument names, loaded.

:mod:`googlenet.runs` says which files an argument names (:class:`~googlenet.runs.ModelRef`); this
module reads them: a ``.safetensors`` weights file through :func:`googlenet.weights.store.load_weights`,
a training checkpoint (``last.pt``, ``best.pt``) through :func:`model_from_checkpoint`, which rebuilds
the network from the checkpoint's own config and class names. It lives in ``training`` because a
training checkpoint is that layer's file; evaluation, detection and the CLI ask it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from ..runs import ModelRef, resolve_checkpoint
from .checkpoint import load_checkpoint
from .config import TrainConfig

__all__ = ["load_model", "load_named_model", "model_from_checkpoint", "model_options", "untrained_model"]


def model_options(config: TrainConfig) -> dict[str, Any]:
    """``model_options`` for create_model; an ``aux`` mapping (e.g. ``{dropout: 0.0}``) updates the
    variant's :class:`~googlenet.models.spec.AuxSpec` field by field."""
    from ..models.registry import model_entry
    from ..models.spec import AuxSpec

    options = dict(config.model_options)
    aux = options.get("aux")
    if isinstance(aux, Mapping):
        base = dataclasses.asdict(model_entry(config.model).config.aux)
        unknown = sorted(set(aux) - set(base))
        if unknown:
            raise GoogLeNetError(f"model_options.aux: unknown key {unknown[0]!r} (known: {', '.join(base)})")
        options["aux"] = AuxSpec(**{**base, **aux})
    return options


def untrained_model(config: TrainConfig, classes: Sequence[str]) -> GoogLeNet:
    """``config.model`` from the registry with one output per class, freshly initialised; its metadata
    records the class names and the size it is trained at (what predict, evaluate and export default to)."""
    from ..models.registry import create_model

    model = create_model(
        config.model, num_classes=len(classes), class_names=list(classes), **model_options(config)
    )
    model.meta.input_size = (3, config.image_size, config.image_size)
    return model


def model_from_checkpoint(path: str | Path, *, averaged: bool = True, device: str = "cpu") -> GoogLeNet:
    """The model of a training checkpoint (``last.pt``, ``best.pt``), in eval mode.

    The Polyak-averaged weights (section 6: the inference model) by default, the raw ones with
    ``averaged=False``; built from the checkpoint's own config and class names, with
    ``meta.input_size`` the size the run trained at. Read with ``weights_only=True``.
    """
    state = load_checkpoint(path, action="cannot load the model")
    try:
        saved = {k: v for k, v in state["config"].items() if k in TrainConfig.__dataclass_fields__}
        config = TrainConfig.from_dict(saved, source=str(path))
        classes = list(state["class_names"])
        weights = state["ema"] if averaged else state["model"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise GoogLeNetError(f"cannot load the model: {path} lacks its config or weights ({exc})") from None
    # The run's network without its --init-from weights: the checkpoint holds every tensor.
    model = untrained_model(config, classes)
    if averaged:  # AveragedModel's state: the model's under "module.", plus its update count
        weights = {k.removeprefix("module."): v for k, v in weights.items() if k != "n_averaged"}
    model.load_state_dict(weights)
    kind = "Polyak-averaged" if averaged else "raw"
    model.meta.source = f"{path} ({kind} weights, epoch {state.get('epoch')})"
    return model.to(device).eval()


def load_model(ref: ModelRef, device: str = "cpu", *, averaged: bool = True) -> GoogLeNet:
    """The model ``ref`` points to, in eval mode. A training checkpoint gives its Polyak-averaged
    weights unless ``averaged=False``."""
    if ref.kind == "training-checkpoint":
        return model_from_checkpoint(ref.path, averaged=averaged, device=device)
    from ..weights.store import load_weights

    return load_weights(ref.path, device=device)


def load_named_model(arg: str | Path, device: str = "cpu") -> GoogLeNet:
    """The one model ``arg`` names (weights file, run directory, training checkpoint; not an
    ensemble of several), in eval mode."""
    return load_model(resolve_checkpoint(arg), device)
