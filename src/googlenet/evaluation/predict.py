"""The classes of images, with the paper's test crops (section 7), as one call: ``googlenet.predict``.

What ``googlenet predict`` runs, from Python: each image (a file, or a PIL image already in
memory) is seen through 1, 10 or 144 crops; the softmax probabilities are averaged over the crops
and over the models; the top classes come back as one :class:`Prediction` per image, in order. An
image that cannot be read or used (not an image, truncated, a decompression bomb, too elongated to
crop) gets a :class:`Prediction` with its ``error``; the others are still predicted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import PIL.Image
import torch

from ..errors import GoogLeNetError
from ..progress import Progress, progress_callback
from .loading import ModelSource
from .protocol import DEFAULT_BATCH

__all__ = ["ClassScore", "Prediction", "predict"]

PROGRESS_DELAY_S = 2.0  # progress=True: a bar only for inputs that take longer (short runs stay quiet)

ImageInput = str | os.PathLike[str] | PIL.Image.Image


class ClassScore(NamedTuple):
    """One of an image's top classes: its index in the model's output, its name, its probability."""

    class_index: int
    class_name: str
    probability: float


@dataclass
class Prediction:
    """The top classes of one image, best first, or why it has none.

    ``path``: the file as given (None for a PIL image); ``predictions``: :class:`ClassScore` s,
    most probable first; ``error``: one line naming the file, when it could not be read or used
    (then ``predictions`` is empty).
    """

    path: str | None
    predictions: list[ClassScore] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The record ``googlenet predict --json`` writes: ``{path, predictions: [{class_index,
        class_name, probability}]}``, or ``{path, error}``."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "predictions": [score._asdict() for score in self.predictions]}


def predict(
    images: ImageInput | Sequence[ImageInput],
    checkpoint: ModelSource | Sequence[ModelSource],
    *,
    crops: int | str = 1,
    topk: int = 5,
    image_size: int | None = None,
    backend: str | None = None,
    precision: str = "fp32",
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    workers: int = 0,
    calibration: str | os.PathLike[str] | None = None,
    progress: Progress = None,
) -> list[Prediction]:
    """The ``topk`` classes of each image, probabilities averaged over crops and models (section 7).

    Args:
        images: one image or a list: file paths (decoded as ``googlenet predict`` decodes them,
            EXIF orientation applied) and PIL images (any mode), mixed as you like. Folders and
            globs are not expanded here (:func:`googlenet.data.datasets.find_images` does that).
        checkpoint: one model or a list of them, averaged: a ``.safetensors`` weights file, a
            training run directory, a training checkpoint (``.pt``), an ensemble directory (every
            member), a :class:`googlenet.runs.ModelRef`, or a :class:`googlenet.GoogLeNet` in memory.
        crops: 1, 10 or 144 crops per image (section 7).
        topk: classes per image (at most the model's class count).
        image_size: the crop side; default the models' trained size.
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"auto"``; default ``"torch"``,
            or ``"auto"`` with int8 (which torch does not run).
        precision: ``"fp32"``, ``"bf16"``, ``"int8"`` or ``"auto"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: crops per forward pass (one image's crops are never split).
        workers: processes decoding and cropping images (0: in this process).
        calibration: with int8, a folder of training images to calibrate on (a dataset with
            ``train/``, or any folder of images); default the training data that the first run's
            ``config.yaml`` names.
        progress: ``True`` for a progress bar on stderr (shown once a run lasts a few seconds), a
            callable ``progress(n)`` called after every ``n`` images, or None for silence.

    Returns:
        One :class:`Prediction` per image, in the order given (``to_dict()`` is the record of
        ``googlenet predict --json``). An image that cannot be read has ``error`` set.

    Raises:
        GoogLeNetError: one line naming the value or file: a bad argument (checked before any model
            is loaded), a checkpoint that cannot be loaded, a backend whose package is not
            installed, int8 without calibration images, models that cannot be averaged. Values
            the command also takes are named by its flags (``--topk``, ``--calibration``).
    """
    from ..data.multicrop import parse_scheme
    from .loading import check_run_arguments, load_models, resolve_models
    from .protocol import crop_probabilities

    items = _images(images)
    try:
        scheme = parse_scheme(crops)
    except ValueError as exc:
        raise GoogLeNetError(f"crops: {exc}") from None
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise GoogLeNetError(f"--topk must be at least 1. Got {topk}")
    if calibration is not None and precision != "int8":
        raise GoogLeNetError(f"--calibration applies to --precision int8, not {precision}")
    if backend is None:
        backend = "auto" if precision == "int8" else "torch"
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
    loaded = load_models(
        checkpoints,
        image_size=image_size,
        backend=backend,
        precision=precision,
        device=device,
        calibration=_calibration(calibration, precision, checkpoints),
    )
    if not items:
        return []
    with progress_callback(
        progress, len(items), "predict", piped_every_s=None, delay=PROGRESS_DELAY_S
    ) as update:
        result = crop_probabilities(
            [os.fspath(i) if isinstance(i, os.PathLike) else i for i in items],
            loaded.models,
            [scheme],
            loaded.data_config,
            batch_size=batch_size,
            workers=workers,
            progress=update,
        )
    paths = [None if isinstance(i, PIL.Image.Image) else os.fspath(i) for i in items]
    unreadable = dict(result.unreadable)
    if not result.probs:  # nothing could be read: no forward ran
        return [Prediction(path, error=unreadable[i]) for i, path in enumerate(paths)]
    # Section 7: probabilities averaged over crops (done) and over the models.
    probs = torch.stack([result.probs[(m, scheme)] for m in range(len(loaded.models))]).mean(0)
    k = min(topk, probs.shape[-1])
    names = loaded.class_names
    out = []
    for i, path in enumerate(paths):
        if i in unreadable:
            out.append(Prediction(path, error=unreadable[i]))
            continue
        top = torch.topk(probs[i], k)
        scores = [
            ClassScore(int(c), names[int(c)] if names and int(c) < len(names) else str(int(c)), float(p))
            for p, c in zip(top.values, top.indices, strict=True)
        ]
        out.append(Prediction(path, scores))
    return out


def _images(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    items = [images] if isinstance(images, (str, os.PathLike, PIL.Image.Image)) else list(images)
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike, PIL.Image.Image)):
            raise GoogLeNetError(
                f"images[{i}]: expected a file path or a PIL image. Got {type(item).__name__}"
            )
    return items


def _calibration(
    folder: str | os.PathLike[str] | None, precision: str, checkpoints: Sequence[Any]
) -> Callable[[Any, int], list[torch.Tensor]] | None:
    """The int8 calibration loader: ``folder``, else the first run's training data (its config.yaml)."""
    from ..inference.calibration import calibration_loader, run_calibration_data
    from ..runs import ModelRef

    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a folder"
            raise GoogLeNetError(
                f"--calibration {os.fspath(folder)} {what}: pass a dataset folder with train/ or a folder "
                "of training images"
            )
        return calibration_loader(path)
    if precision != "int8":
        return None
    for ref in checkpoints:
        found = run_calibration_data(ref.run_dir) if isinstance(ref, ModelRef) else None
        if found is not None:
            return calibration_loader(*found)
    first = checkpoints[0]
    source = first.source if isinstance(first, ModelRef) else f"the {first.meta.variant} in memory"
    raise GoogLeNetError(
        f"--precision int8 calibrates on training images, and the run config of {source} names none "
        "that exist here: pass --calibration DIR (a dataset folder with train/ or a folder of training "
        "images)"
    )
