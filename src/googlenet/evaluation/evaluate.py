"""The paper's test protocol (section 7) on a dataset, as one call: ``googlenet.evaluate``.

What ``googlenet evaluate`` runs, from Python: every image of a split (or ``limit`` of them,
spread evenly) is seen through 1, 10 or 144 crops by every model; the softmax probabilities are
averaged over the crops and the models; Table 3 (models x crops -> cost, top-k and top-1 error),
its spread over every k-subset of the models and the paper's two effects with paired intervals
come back in one :class:`~googlenet.evaluation.result.EvaluationResult`, the object
``evaluate --json`` writes and ``googlenet report --evaluation`` reads.

The steps are :mod:`googlenet.evaluation.protocol`'s pure functions over the models that
:mod:`googlenet.evaluation.loading` puts behind Predictors; this module checks the arguments first
and records what was evaluated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import torch

from ..errors import GoogLeNetError
from ..progress import Progress, progress_callback
from .loading import ModelSource
from .protocol import DEFAULT_BATCH
from .result import EvaluationResult

__all__ = ["evaluate"]

SPLITS = ("val", "train")
LAYOUTS = ("auto", "imagefolder", "ilsvrc")
COMBINES = ("mean", "max")
MODEL_COUNTS = ("paper", "every")


def evaluate(
    data: str | os.PathLike[str],
    checkpoint: ModelSource | Sequence[ModelSource],
    *,
    split: str = "val",
    layout: str = "auto",
    crops: Sequence[int | str] = (1, 10, 144),
    combine: str = "mean",
    model_counts: str = "paper",
    limit: int | None = None,
    image_size: int | None = None,
    backend: str = "torch",
    precision: str = "fp32",
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    workers: int = 2,
    allow_class_mismatch: bool = False,
    progress: Progress = None,
) -> EvaluationResult:
    """Evaluate models with the paper's test protocol (section 7) and return Table 3.

    Args:
        data: a dataset folder (ImageFolder, or ILSVRC2012 with its synset list and ground truth)
            or ``"builtin"`` (the built-in set, made once in the cache).
        checkpoint: one model or a list of them, averaged: a ``.safetensors`` weights file, a
            training run directory, a training checkpoint (``.pt``, its Polyak-averaged weights),
            an ensemble directory (every member), a :class:`googlenet.runs.ModelRef`, or a
            :class:`googlenet.GoogLeNet` already in memory.
        split: ``"val"`` or ``"train"``.
        layout: ``"auto"``, ``"imagefolder"`` or ``"ilsvrc"``.
        crops: crop schemes among 1, 10 and 144 (section 7); each gets its rows.
        combine: ``"mean"`` over crops (the paper) or ``"max"`` (the paper's worse alternative).
        model_counts: ``"paper"`` (the best single model and all models) or ``"every"``
            (the best 1, 2, ..., all).
        limit: evaluate this many images spread evenly over the split (every class sampled);
            None for all.
        image_size: the crop side; default the models' trained size (their metadata, else their
            run's ``config.yaml``). Models trained at different sizes need it.
        backend: ``"torch"`` (exact fp32 reference numbers), ``"onnxruntime"``, ``"openvino"``
            or ``"auto"`` (timed, :class:`googlenet.Predictor`).
        precision: ``"fp32"``, ``"bf16"``, ``"int8"`` (calibrated on the data's train split) or
            ``"auto"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: crops per forward pass (one image's crops are never split).
        workers: processes decoding and cropping images (0: in this process).
        allow_class_mismatch: score models whose class names differ from the data's folders by
            position (the counts must agree); by default that is refused.
        progress: ``True`` for a progress bar on stderr, a callable ``progress(n)`` called after
            every ``n`` images, or None for silence.

    Returns:
        An :class:`~googlenet.evaluation.result.EvaluationResult`: the Table 3 rows, the spread
        over every k-subset of the models (with two or more models), the paired effects, each
        model's own errors, the checkpoints (with their tensor hashes), the data, the ``title``
        ``googlenet evaluate`` prints above the table, the ``unreadable`` images (index, path,
        message; counted as errors) and the wall time, date and versions. ``result.to_json()``
        is the file ``evaluate --json`` writes.

    Raises:
        GoogLeNetError: one line naming the value or file: a bad argument (checked before any
            model is loaded or image read), a checkpoint or data folder that cannot be used, a
            backend whose package is not installed, models that cannot be averaged or whose
            classes differ from the data's, or no readable image at all. Values the command also
            takes are named by its flags (``--limit``, ``--image-size``, ``--batch-size``).
    """
    from ..data.builtin import resolve_data
    from ..data.datasets import build_dataset
    from ..inference.calibration import calibration_loader
    from .loading import check_run_arguments, load_models, resolve_models
    from .metrics import topk_errors
    from .protocol import (
        check_models_fit_data,
        crop_probabilities,
        paired_effects,
        select_images,
        table3,
        table3_spread,
    )

    schemes = _check_choices(crops, split, layout, combine, model_counts)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise GoogLeNetError(f"--limit must be at least 1. Got {limit}")
    device = check_run_arguments(
        image_size=image_size,
        batch_size=batch_size,
        workers=workers,
        backend=backend,
        precision=precision,
        device=device,
        progress=progress,
    )
    checkpoints = resolve_models(checkpoint)
    root = resolve_data(data)
    dataset = build_dataset(root, split, layout=layout)  # type: ignore[arg-type]
    loaded = load_models(
        checkpoints,
        image_size=image_size,
        backend=backend,
        precision=precision,
        device=device,
        calibration=calibration_loader(root, layout),
    )
    check_models_fit_data(
        loaded,
        dataset.classes,
        model=loaded.label,
        data=f"{root} ({split})",
        allow_mismatch=allow_class_mismatch,
    )
    picked = [dataset.samples[i] for i in select_images(len(dataset.samples), limit)]
    if not picked:
        raise GoogLeNetError(f"{root} ({split}) holds no images")
    paths = [str(p) for p, _ in picked]
    labels = torch.tensor([label for _, label in picked])
    start = time.perf_counter()
    with progress_callback(progress, len(paths), f"evaluate {'/'.join(schemes)} crops") as update:
        result = crop_probabilities(
            paths,
            loaded.models,
            schemes,
            loaded.data_config,
            combine,  # type: ignore[arg-type]
            batch_size=batch_size,
            workers=workers,
            progress=update,
        )
    wall = time.perf_counter() - start
    if not result.probs:
        raise GoogLeNetError(
            f"none of the {len(paths)} images could be read (first: {result.unreadable[0][1]})"
        )
    rows = table3(result, labels, model_counts=model_counts)  # type: ignore[arg-type]
    k = rows[0].k
    names = ", ".join(m.name for m in loaded.models)
    title = (
        f"Table 3 (section 7) on {len(paths)} images of {root} [{split}], {loaded.image_size}px crops, "
        f"{combine} over crops; models: {names}"
    )
    per_model = [
        dict(
            zip(("top1_err", "topk_err"), topk_errors(result.probs[(m, s)], labels, (1, k)), strict=True),
            name=loaded.models[m].name,
            crops=int(s),
        )
        for m in range(len(loaded.models))
        for s in schemes
    ]
    return EvaluationResult(
        rows=rows,
        spread=table3_spread(result, labels) if len(loaded.models) > 1 else [],
        effects=[e.to_dict() for e in paired_effects(result, labels)],
        per_model=per_model,
        checkpoints=loaded.info,
        top_k=k,
        data=str(root),
        data_arg=str(data),
        split=split,
        layout=dataset.layout,
        num_images=len(paths),
        num_classes=loaded.num_classes,
        class_names=list(dataset.classes),
        limit=limit,
        image_size=loaded.image_size,
        schemes=[int(s) for s in schemes],
        combine=combine,
        model_counts=model_counts,
        backend=backend,
        precision=precision,
        device=device,
        batch_size=batch_size,
        unreadable=[{"index": i, "path": paths[i], "error": msg} for i, msg in result.unreadable],
        title=title,
        wall_time_s=round(wall, 3),
        images_per_s=round(len(paths) / wall, 3) if wall > 0 else None,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        googlenet_version=_package_version(),
        torch_version=torch.__version__,
    )


def _package_version() -> str | None:
    """The installed package's version (its distribution metadata: the package root, which holds
    ``__version__``, is above this layer); None when it runs from a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("googlenet")
    except PackageNotFoundError:
        return None


def _one_of(value: Any, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise GoogLeNetError(f"{name} must be one of {', '.join(choices)}. Got {value!r}")


def _check_choices(
    crops: Sequence[int | str], split: str, layout: str, combine: str, model_counts: str
) -> list[str]:
    """The crop schemes in crop order, once each; every choice checked."""
    from ..data.multicrop import parse_scheme

    _one_of(split, "split", SPLITS)
    _one_of(layout, "layout", LAYOUTS)
    _one_of(combine, "combine", COMBINES)
    _one_of(model_counts, "model_counts", MODEL_COUNTS)
    if isinstance(crops, (str, int)):
        crops = [crops]
    try:
        schemes = sorted({parse_scheme(c) for c in crops}, key=int)
    except ValueError as exc:
        raise GoogLeNetError(f"crops: {exc}") from None
    if not schemes:
        raise GoogLeNetError("crops: give at least one crop scheme (1, 10 or 144)")
    return schemes
