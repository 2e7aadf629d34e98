"""A model's data config: the one place that decides how images are fed to a model.

The pattern is timm's ``resolve_data_config`` (``timm/data/config.py``): an explicit argument wins,
then the model's own metadata, then the defaults. For a GoogLeNet the metadata is
:class:`googlenet.ModelMeta`: ``input_size`` is the size it was trained at (``googlenet train``
records it), ``resize_ratio`` the shorter side per crop side (section 7: 256 for 224), and
``interpolation``, ``mean`` / ``std`` its preprocessing. An older weights file whose meta still
says 224 can be given the run's ``config.yaml`` size as ``run_image_size``. Every command and
library path that resizes, crops or normalises asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_IMAGE_SIZE = 64  # five stride-2 stages (Table 1): below this the 7x7 map of pool5 collapses
PAPER_CROP_SIZE = 224  # section 7


@dataclass(frozen=True)
class DataConfig:
    """How to feed one model: crop ``image_size``; single-crop resize of the shorter side to
    ``resize_size``; ``interpolation``; normalisation ``(x - mean) / std`` on RGB in [0, 1]."""

    image_size: int
    resize_ratio: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def resize_size(self) -> int:
        """The shorter side a single centre crop is taken from (section 7: 256 for 224)."""
        return round(self.image_size * self.resize_ratio)

    def scaled(self, side: int) -> int:
        """A shorter side given at the paper's scale (for a 224 crop) scaled to this crop size."""
        return round(side * self.image_size / PAPER_CROP_SIZE)


def check_image_size(image_size: Any, what: str = "image size") -> int:
    """``image_size`` as an int >= :data:`MIN_IMAGE_SIZE`, else a one-line error naming it."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"{what} must be an integer of at least {MIN_IMAGE_SIZE} (five stride-2 stages, Table 1). "
            f"Got {image_size!r}"
        )
    return image_size


def resolve_data_config(
    meta: Any, *, image_size: int | None = None, run_image_size: int | None = None
) -> DataConfig:
    """The data config of a model with metadata ``meta`` (a :class:`googlenet.ModelMeta`).

    Crop size precedence: ``image_size`` (what the user asked for), else ``meta.input_size`` (the
    trained size, which ``googlenet train`` records), except that a file still carrying the default
    224 beside a run config that says otherwise (weights saved before the size was recorded, or
    by hand) takes the run's ``run_image_size``.
    """
    meta_size = int(meta.input_size[-1])
    if image_size is not None:
        size = image_size
    elif run_image_size is not None and meta_size == PAPER_CROP_SIZE and run_image_size != meta_size:
        # Weights written before train recorded meta.input_size: the run's config knows better.
        size = run_image_size
    else:
        size = meta_size
    check_image_size(size)
    if meta.resize_ratio < 1:
        raise ValueError(f"meta.resize_ratio must be at least 1. Got {meta.resize_ratio!r}")
    return DataConfig(
        image_size=size,
        resize_ratio=float(meta.resize_ratio),
        interpolation=str(meta.interpolation),
        mean=tuple(meta.mean),
        std=tuple(meta.std),
    )
