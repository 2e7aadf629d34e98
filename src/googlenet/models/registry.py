"""Named models: ``create_model(name)``, ``list_models()`` and each model's metadata."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .model import CAFFE_MEAN, CAFFE_STD, IMAGENET_MEAN, IMAGENET_STD, GoogLeNet, ModelMeta
from .spec import BATCHNORM, PAPER, TORCHVISION, GoogLeNetConfig


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config: GoogLeNetConfig
    description: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "googlenet",
            PAPER,
            "the paper's network: bias + ReLU convolutions, LRN, real 5x5 branches, "
            "BVLC (Caffe) preprocessing: 0-255 RGB minus the mean, no std",
            CAFFE_MEAN,
            CAFFE_STD,
        ),
        ModelEntry(
            "googlenet_bn",
            BATCHNORM,
            "the paper's topology with BatchNorm after every convolution and no LRN",
            IMAGENET_MEAN,
            IMAGENET_STD,
        ),
        ModelEntry(
            "googlenet_tv",
            TORCHVISION,
            "state-dict compatible with torchvision.models.googlenet (3x3 '5x5' branch, BN eps 1e-3)",
            IMAGENET_MEAN,
            IMAGENET_STD,
        ),
    )
}

_CONFIG_FIELDS = {f.name for f in fields(GoogLeNetConfig)}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None


def _model_config(name: str, config_overrides: dict[str, Any]) -> GoogLeNetConfig:
    entry = model_entry(name)
    unknown = set(config_overrides) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)} for {name!r}")
    return replace(entry.config, **config_overrides)


def model_meta(
    name: str,
    num_classes: int = 1000,
    class_names: list[str] | None = None,
    **config_overrides: Any,
) -> ModelMeta:
    """The metadata :func:`create_model` gives the model (preprocessing, classes), without building it."""
    entry = model_entry(name)
    config = _model_config(name, config_overrides)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names given for num_classes={num_classes}")
    return ModelMeta(
        variant=name,
        num_classes=num_classes,
        mean=entry.mean,
        std=entry.std,
        class_names=list(class_names) if class_names is not None else None,
        transform_input=config.transform_input,
    )


def create_model(
    name: str,
    num_classes: int = 1000,
    aux_logits: bool = True,
    class_names: list[str] | None = None,
    **config_overrides: Any,
) -> GoogLeNet:
    """Build a registered GoogLeNet variant with random weights.

    ``config_overrides`` replace fields of the variant's :class:`~googlenet.models.spec.GoogLeNetConfig`
    (for example ``dropout=0.5`` or, for ``googlenet_tv``, ``transform_input=True``).
    """
    meta = model_meta(name, num_classes, class_names, **config_overrides)
    config = _model_config(name, config_overrides)
    return GoogLeNet(config, num_classes=num_classes, aux_logits=aux_logits, meta=meta)
