"""int8 calibration data: a few hundred *training* images, fed as the model's data config says.

Static int8 quantisation (:mod:`.int8`) needs each activation's range, measured on images like the
ones the model will see; never the images it will be evaluated on. They are single centre crops
(section 7's 1-crop view) normalised with the model's mean / std, from :func:`calibration_batches`:

- a dataset root with a ``train/`` split (ImageFolder or ILSVRC2012 layout): its training images;
- any other folder: the image files under it (searched recursively);

and, for a checkpoint of a training run, :func:`run_calibration_data` names the run's own
training data (its ``config.yaml``'s ``data`` / ``layout`` / ``builtin``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.config import DataConfig, resolve_data_config
from ..errors import GoogLeNetError

CALIBRATION_IMAGES = 256  # "a few hundred": onnxruntime's and NNCF's guides use 100-300
CALIBRATION_BATCH = 32


def _image_files(folder: Path) -> list[Path]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sorted(
        Path(d) / f
        for d, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(tuple(IMG_EXTENSIONS)) and not f.startswith(".")
    )


def calibration_batches(
    source: str | Path,
    data_config: DataConfig,
    *,
    layout: str = "auto",
    count: int = CALIBRATION_IMAGES,
    batch_size: int = CALIBRATION_BATCH,
) -> list[torch.Tensor]:
    """Up to ``count`` normalised centre crops from ``source`` (see the module docstring), in
    batches of ``batch_size``; unreadable files are skipped, none readable is an error."""
    from ..data.datasets import (
        build_dataset,
        open_image,
        select_images,  # the one "N spread evenly over a sorted set"
    )
    from ..data.transforms import eval_transform

    root = Path(source).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise GoogLeNetError(
            f"calibration data {root} {what}: pass a dataset folder with train/ or a folder of training "
            "images"
        )
    if (root / "train").is_dir():
        files = [Path(p) for p, _ in build_dataset(root, "train", layout=layout).samples]  # type: ignore[arg-type]
    else:
        files = _image_files(root)
    if not files:
        raise GoogLeNetError(f"calibration data {root}: no image files found")
    transform = eval_transform(data_config)
    images = []
    for i in select_images(len(files), count):
        try:
            images.append(transform(open_image(files[i])))
        except OSError:
            continue  # a broken file among hundreds changes no range; the count says how many were used
    if not images:
        raise GoogLeNetError(f"calibration data {root}: none of the {len(files)} images could be read")
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


def calibration_loader(source: str | Path, layout: str = "auto") -> Callable[[Any, int], list[torch.Tensor]]:
    """``batches(meta, image_size)`` for :func:`googlenet.evaluation.loading.load_models`."""

    def batches(meta: Any, image_size: int) -> list[torch.Tensor]:
        try:
            return calibration_batches(
                source, resolve_data_config(meta, image_size=image_size), layout=layout
            )
        except GoogLeNetError as exc:
            raise GoogLeNetError(f"precision int8 calibrates on training images: {exc}") from None

    return batches


def run_calibration_data(run_dir: str | Path | None) -> tuple[Path, str] | None:
    """``(dataset root, layout)`` the run in ``run_dir`` trained on, or None when unknown."""
    if run_dir is None:
        return None
    from ..runs import read_run_config

    config = read_run_config(run_dir)
    data = config.get("data")
    if not isinstance(data, str) or not data:
        return None
    from ..data.builtin import resolve_data

    builtin = config.get("builtin") if isinstance(config.get("builtin"), dict) else {}
    try:
        root = resolve_data(data, **(builtin or {}))
    except GoogLeNetError:
        return None  # the training data moved or was deleted: the caller asks for --calibration
    layout = config.get("layout") if config.get("layout") in ("auto", "imagefolder", "ilsvrc") else "auto"
    return root, layout
