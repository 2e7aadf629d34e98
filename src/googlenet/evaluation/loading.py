"""The models of an evaluation or a prediction, loaded behind Predictors (section 7: several models
are averaged, so they must share the crop geometry and the classes).

:func:`resolve_models` turns what a user passes (paths a ``--checkpoint`` accepts, resolved
:class:`googlenet.runs.ModelRef` s, GoogLeNets already in memory) into one list;
:func:`load_models` reads each file through :func:`googlenet.training.loading.load_model`, checks
that the models can be averaged, and wraps each in a :class:`googlenet.inference.predictor.Predictor`
as an :class:`~googlenet.evaluation.protocol.EvalModel`, ready for
:func:`~googlenet.evaluation.protocol.crop_probabilities`. What an evaluation records about each
model (its file, its tensor hash, the backend that ran it) comes with them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch

from ..data.config import DataConfig
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from ..progress import Progress
from ..runs import ModelRef
from .protocol import EvalModel, check_class_names

__all__ = [
    "LoadedModels",
    "ModelSource",
    "check_run_arguments",
    "classifier_classes",
    "load_models",
    "resolve_models",
]

# What a ``checkpoint`` argument may hold: anything ``--checkpoint`` accepts (a .safetensors file, a
# run directory, a training checkpoint, an ensemble directory), a resolved ModelRef, or a model.
ModelSource = Union[str, "os.PathLike[str]", ModelRef, GoogLeNet]

IN_MEMORY = "in memory"  # the source and kind recorded for a model passed as an object


@dataclass
class LoadedModels:
    """Models ready for :func:`~googlenet.evaluation.protocol.crop_probabilities`, with what the
    evaluation records about them.

    ``data_config``: the crop geometry every model shares (pass it to ``crop_probabilities``);
    each :class:`~googlenet.evaluation.protocol.EvalModel` keeps its own mean / std. ``info``: one
    dict per model (name, source, weights, kind, sha256, variant, num_classes, backend, precision).
    """

    models: list[EvalModel]
    data_config: DataConfig
    class_names: list[str] | None
    num_classes: int
    info: list[dict[str, Any]]

    @property
    def image_size(self) -> int:
        return self.data_config.image_size

    @property
    def label(self) -> str:
        """The first model as errors name it: its weights file, or its name when it has none."""
        first = self.info[0]
        return first["weights"] or f"the {first['variant']} in memory"


def classifier_classes(model: Any) -> int:
    """The number of classes a model predicts, read from its classifier (never a copy kept beside it)."""
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if fc is not None else int(model.num_classes)


def resolve_models(checkpoint: ModelSource | Sequence[ModelSource]) -> list[ModelRef | GoogLeNet]:
    """One entry per model ``checkpoint`` names, in order: paths resolved by
    :func:`googlenet.runs.resolve_checkpoints` (an ensemble directory gives every member), ModelRefs
    and GoogLeNets kept as they are. Nothing is loaded. Errors name the path or the value."""
    from ..runs import resolve_checkpoints

    single = isinstance(checkpoint, (str, os.PathLike, ModelRef, GoogLeNet))
    items = [checkpoint] if single else list(checkpoint)  # type: ignore[arg-type]
    if not items:
        raise GoogLeNetError("no checkpoint given")
    found: list[ModelRef | GoogLeNet] = []
    for item in items:
        if isinstance(item, (ModelRef, GoogLeNet)):
            found.append(item)
        elif isinstance(item, (str, os.PathLike)):
            found += resolve_checkpoints([item])
        else:
            raise GoogLeNetError(
                "checkpoint: expected a weights file, run or ensemble directory, training checkpoint or "
                f"GoogLeNet. Got {type(item).__name__}"
            )
    return found


def check_run_arguments(
    *,
    image_size: int | None,
    batch_size: int,
    workers: int,
    backend: str,
    precision: str,
    device: str,
    progress: Progress,
) -> str:
    """Check what the models will run with, before anything is loaded; returns the resolved device.

    The backend and precision must be runnable here (a missing package is named with the extra that
    installs it); int8 counts as calibrated (the caller supplies the images). Errors name the values
    by the command-line flags (``--image-size``, ``--batch-size``), as the commands report them.
    """
    from ..data.config import check_image_size
    from ..device import resolve_device
    from ..inference.predictor import candidates

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1 or workers < 0:
        raise GoogLeNetError("--batch-size must be at least 1 and --workers at least 0")
    if image_size is not None:
        try:
            check_image_size(image_size, "--image-size")
        except ValueError as exc:
            raise GoogLeNetError(str(exc)) from None
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise GoogLeNetError(f"progress must be True, False, None or a callable. Got {progress!r}")
    resolved = resolve_device(device)
    candidates(backend, precision, device=resolved, calibrated=precision == "int8")
    return resolved


def load_models(
    checkpoints: Sequence[ModelRef | GoogLeNet],
    *,
    image_size: int | None = None,
    backend: str = "torch",
    precision: str = "fp32",
    device: str = "cpu",
    calibration: Callable[[Any, int], list[torch.Tensor]] | None = None,
) -> LoadedModels:
    """Load :class:`googlenet.runs.ModelRef` s (and take GoogLeNets as given) behind
    :class:`googlenet.inference.predictor.Predictor` s.

    Each model's data config comes from :func:`googlenet.data.config.resolve_data_config`
    (``image_size`` if given, else the trained size its metadata records, else its run's
    ``config.yaml``); the models are cropped once for all, so they must agree on the geometry (crop
    side, resize ratio, interpolation): checkpoints that disagree on the size need an explicit
    ``image_size``. ``calibration(meta, image_size)`` supplies normalised batches when ``precision``
    is int8. All models must predict the same classes (they are averaged).
    """
    from ..data.config import resolve_data_config
    from ..inference.predictor import Predictor
    from ..training.loading import load_model

    if not checkpoints:
        raise GoogLeNetError("no checkpoint given")
    loaded = [(c, c if isinstance(c, GoogLeNet) else load_model(c)) for c in checkpoints]
    configs = [
        resolve_data_config(m.meta, image_size=image_size, run_image_size=_run_image_size(c))
        for c, m in loaded
    ]
    sizes = sorted({c.image_size for c in configs})
    if len(sizes) > 1:
        raise GoogLeNetError(
            f"checkpoints were trained at different image sizes {sizes}; choose one with --image-size"
        )
    geometry = {(c.resize_size, c.interpolation) for c in configs}
    if len(geometry) > 1:
        raise GoogLeNetError(
            "checkpoints resize differently (shorter side, interpolation): "
            + ", ".join(
                f"{_where(c, m)} ({d.resize_size}, {d.interpolation})"
                for (c, m), d in zip(loaded, configs, strict=True)
            )
        )
    first_ref, first = loaded[0]
    num_classes = classifier_classes(first)
    for ref, model in loaded[1:]:
        if classifier_classes(model) != num_classes:
            raise GoogLeNetError(
                "checkpoints predict different numbers of classes: "
                + ", ".join(f"{_where(c, m)} ({classifier_classes(m)})" for c, m in loaded)
            )
        if (
            model.meta.class_names
            and first.meta.class_names
            and model.meta.class_names != first.meta.class_names
        ):
            check_class_names(
                model.meta.class_names,
                first.meta.class_names,
                model=_where(ref, model),
                data=_where(first_ref, first),
            )
    data_config = configs[0]
    batches = (
        calibration(first.meta, data_config.image_size)
        if precision == "int8" and calibration is not None
        else None
    )
    models, info = [], []
    names_seen: dict[str, int] = {}
    for checkpoint, model in loaded:
        predictor = Predictor(
            model, backend, precision, image_size=data_config.image_size, calibration=batches, device=device
        )
        name = model.meta.variant if isinstance(checkpoint, GoogLeNet) else checkpoint.name
        names_seen[name] = names_seen.get(name, 0) + 1
        if names_seen[name] > 1:  # two runs with the same folder name in different places
            name = f"{name}#{names_seen[name]}"
        # The torch backend takes its batch on its device; the others read CPU memory.
        target = predictor.device if predictor.backend == "torch" else "cpu"
        models.append(EvalModel.from_model(model, name=name, forward=predictor, device=target))
        in_memory = isinstance(checkpoint, GoogLeNet)
        info.append(
            {
                "name": name,
                "source": IN_MEMORY if in_memory else checkpoint.source,
                "weights": None if in_memory else str(checkpoint.weights),
                "kind": IN_MEMORY if in_memory else checkpoint.kind,
                "sha256": _weights_sha256(checkpoint, model),
                "variant": model.meta.variant,
                "num_classes": classifier_classes(model),
                "backend": predictor.backend,
                "precision": predictor.precision,
            }
        )
    class_names = list(first.meta.class_names) if first.meta.class_names else None
    return LoadedModels(models, data_config, class_names, num_classes, info)


def _run_image_size(checkpoint: ModelRef | GoogLeNet) -> int | None:
    return None if isinstance(checkpoint, GoogLeNet) else checkpoint.image_size


def _where(checkpoint: ModelRef | GoogLeNet, model: GoogLeNet) -> str:
    """How errors name a model: its weights file, else (a model in memory) its variant."""
    if isinstance(checkpoint, GoogLeNet):
        return f"the {model.meta.variant} in memory"
    return str(checkpoint.weights)


def _weights_sha256(checkpoint: ModelRef | GoogLeNet, model: GoogLeNet) -> str:
    """The tensor hash that identifies a model whatever its path (what ``report`` matches on)."""
    from ..weights.store import read_metadata, tensors_sha256

    if isinstance(checkpoint, ModelRef) and checkpoint.kind == "weights":
        recorded = read_metadata(checkpoint.weights).get("sha256")
        if recorded:
            return recorded
    return tensors_sha256({k: v for k, v in model.state_dict().items()})
