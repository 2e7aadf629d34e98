"""Test-time views of one image: the paper's 1, 10 and 144 crops (section 7, "Testing").

Section 7 of Szegedy et al. (2014): "we resize the image to 4 scales where the shorter dimension
(height or width) is 256, 288, 320 and 352 respectively, take the left, center and right square of
these resized images (in the case of portrait images, we take the top, center and bottom squares).
For each square, we then take the 4 corners and the center 224x224 crop as well as the square
resized to 224x224, and their mirrored versions. This results in 4x3x6x2 = 144 crops per image."

Geometry comes from the model's data config (:class:`googlenet.data.config.DataConfig`, resolved
from its metadata by :func:`googlenet.data.config.resolve_data_config`), the same one that
:func:`googlenet.data.transforms.eval_transform` follows: its ``image_size`` is the crop side ``S``,
its ``resize_size`` (``round(S * resize_ratio)``, 256 for 224) the single-crop shorter side, and
its ``interpolation`` the resize filter. A plain int ``S`` stands for the paper's config at that
crop side (``resize_ratio`` 256 / 224, bilinear).

``"1"``
    shorter side resized to ``resize_size``, the centre ``S`` square (the eval preset of
    :func:`googlenet.data.transforms.eval_transform`).
``"10"``
    the same resize; the 4 corner crops and the centre crop of the resized image, then their mirrors.
``"144"``
    the paper's protocol quoted above, its four shorter sides in the paper's proportions to the
    single-crop side (256 : 288 : 320 : 352, so 256, 288, 320 and 352 for the paper's config at 224).

Crop order (the order of the returned batch, also the order of :func:`crop_views`):

* ``"10"``: ``[tl, tr, bl, br, centre]`` then the mirror of each, so view ``i + 5`` is view ``i``
  flipped left-right (this differs from torchvision's ``ten_crop``, whose second half crops the
  flipped image, listing the same ten views in another order).
* ``"144"``: the 72 unmirrored views, then their 72 mirrors (view ``i + 72`` mirrors view ``i``).
  The 72 are ordered scale-major: for each shorter side (256, 288, 320, 352), for each square
  (left, centre, right; top, centre, bottom for portrait images), ``[tl, tr, bl, br, centre,
  whole square resized]``. Index ``= 72 * mirrored + 18 * scale + 6 * square + position``.

An exactly square image (and any image whose resized longer side equals the shorter) has three
coinciding squares; they are kept, so the count stays 144 and each such view weighs three times
in the average, as a literal reading of the paper gives.

Resized sizes follow torchvision's ``Resize(int)``: shorter side ``s``, longer side
``int(s * long / short)``. Centre offsets follow torchvision's ``center_crop``:
``int(round((outer - inner) / 2))``.

Cost: the image is decoded once and turned into one ``uint8`` tensor once; each scale costs one
antialiased bilinear resize of that tensor, and its three squares one batched resize to ``size``
(the whole-square views); every other crop is a slice (a view), copied once into the output
buffer, and each mirror is one flip of a copied crop. ``benchmarks/crops.py`` measures this
against the network's time (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import PIL.Image
import torch
from torchvision.transforms.v2 import functional as F

from .config import PAPER_CROP_SIZE, DataConfig
from .transforms import interpolation_mode, to_rgb

__all__ = [
    "PAPER_CROP_SIZE",
    "PAPER_SCALES",
    "SCHEMES",
    "CropView",
    "Scheme",
    "crop_boxes_144",
    "crop_views",
    "multicrop",
    "normalize_crops",
    "num_crops",
    "paper_config",
    "parse_scheme",
    "scale_sides",
]

Scheme = Literal["1", "10", "144"]
SCHEMES: tuple[str, ...] = ("1", "10", "144")
# Section 7: shorter side 256, 288, 320 and 352 for 224 x 224 crops.
PAPER_SCALES: tuple[int, ...] = (256, 288, 320, 352)
# The single- and 10-crop resize, 256 for a 224 crop (section 7; BVLC's 256 x 256 training images).
SINGLE_SCALE = 256
# Resize filters the uint8 tensor kernels have (PIL's box / lanczos / hamming have no tensor form).
TENSOR_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


@dataclass(frozen=True)
class CropView:
    """One test-time view: resize the shorter side to ``shorter_side`` (giving ``resized``,
    ``(width, height)``), cut ``box`` out of it, resize the cut to ``size`` when ``whole_square``
    (otherwise it already is ``size x size``), and flip it left-right when ``mirrored``."""

    shorter_side: int
    resized: tuple[int, int]
    box: Box
    whole_square: bool = False
    mirrored: bool = False


def parse_scheme(scheme: str | int) -> str:
    """``"1"``, ``"10"`` or ``"144"`` from a string or an int; anything else is a ValueError."""
    text = str(scheme).strip()
    if isinstance(scheme, bool) or text not in SCHEMES:
        raise ValueError(f"crop scheme must be one of {', '.join(SCHEMES)}. Got {scheme!r}")
    return text


def num_crops(scheme: str | int) -> int:
    """Views per image: 1, 10 or 144."""
    return int(parse_scheme(scheme))


def paper_config(size: int = PAPER_CROP_SIZE) -> DataConfig:
    """The paper's geometry at crop side ``size``: shorter side 256 / 224 of the crop, bilinear
    (mean / std are the model's business; these are placeholders)."""
    _check_size(size)
    return DataConfig(size, SINGLE_SCALE / PAPER_CROP_SIZE, "bilinear", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _geometry(size: int | DataConfig) -> DataConfig:
    if isinstance(size, DataConfig):
        _check_size(size.image_size)
        if size.resize_size < size.image_size:
            raise ValueError(f"resize_ratio must be at least 1. Got {size.resize_ratio!r}")
        return size
    return paper_config(size)


def scale_sides(scheme: str | int, size: int | DataConfig = PAPER_CROP_SIZE) -> tuple[int, ...]:
    """The shorter-side lengths a scheme resizes to: the config's ``resize_size``, and for 144 crops
    the paper's four in their proportions to it (``round(side * S * resize_ratio / 256)``)."""
    scheme = parse_scheme(scheme)
    config = _geometry(size)
    if scheme != "144":
        return (config.resize_size,)
    return tuple(round(s * config.image_size * config.resize_ratio / SINGLE_SCALE) for s in PAPER_SCALES)


def resized_shape(width: int, height: int, shorter_side: int) -> tuple[int, int]:
    """``(width, height)`` after resizing the shorter side to ``shorter_side`` (torchvision's rule)."""
    if width <= height:
        return shorter_side, int(shorter_side * height / width)
    return int(shorter_side * width / height), shorter_side


def _centre_offset(outer: int, inner: int) -> int:
    return round((outer - inner) / 2.0)  # torchvision's center_crop anchor


def _five_boxes(left: int, top: int, width: int, height: int, size: int) -> list[Box]:
    """tl, tr, bl, br, centre ``size`` boxes inside the region at (left, top), in five_crop's order."""
    r, b = left + width - size, top + height - size
    cx, cy = left + _centre_offset(width, size), top + _centre_offset(height, size)
    corners = [(left, top), (r, top), (left, b), (r, b), (cx, cy)]
    return [(x, y, x + size, y + size) for x, y in corners]


def _square_origins(width: int, height: int) -> list[tuple[int, int]]:
    """Top-left corners of the left/centre/right (top/centre/bottom for portrait) squares."""
    side = min(width, height)
    if width >= height:
        return [(0, 0), (_centre_offset(width, side), 0), (width - side, 0)]
    return [(0, 0), (0, _centre_offset(height, side)), (0, height - side)]


def crop_views(
    width: int, height: int, scheme: str | int, size: int | DataConfig = PAPER_CROP_SIZE
) -> list[CropView]:
    """Every view of a ``width x height`` image for ``scheme``, in the order :func:`multicrop` returns."""
    scheme = parse_scheme(scheme)
    config = _geometry(size)
    sides, size = scale_sides(scheme, config), config.image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive. Got {width}x{height}")
    views: list[CropView] = []
    for side in sides:
        w, h = resized_shape(width, height, side)
        if scheme == "1":
            (box,) = _five_boxes(0, 0, w, h, size)[4:]
            views.append(CropView(side, (w, h), box))
        elif scheme == "10":
            views += [CropView(side, (w, h), box) for box in _five_boxes(0, 0, w, h, size)]
        else:
            q = min(w, h)
            for x, y in _square_origins(w, h):
                views += [CropView(side, (w, h), box) for box in _five_boxes(x, y, q, q, size)]
                views.append(CropView(side, (w, h), (x, y, x + q, y + q), whole_square=True))
    if scheme != "1":
        views += [
            CropView(v.shorter_side, v.resized, v.box, v.whole_square, mirrored=True) for v in list(views)
        ]
    return views


def crop_boxes_144(
    width: int, height: int, size: int | DataConfig = PAPER_CROP_SIZE
) -> list[tuple[int, Box]]:
    """The 72 unmirrored 144-crop boxes as ``(scale_index, box)``; boxes are in the resized image at
    that scale, and every sixth (the whole square) is resized to ``size``. Views 72-143 mirror them."""
    sides = scale_sides("144", size)
    return [(sides.index(v.shorter_side), v.box) for v in crop_views(width, height, "144", size)[:72]]


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"crop size must be a positive int. Got {size!r}")


def _hwc(chw: torch.Tensor) -> torch.Tensor:
    return chw.permute(1, 2, 0)


def _stack_hwc(views: list[torch.Tensor], *, mirrored: bool = False) -> torch.Tensor:
    """``3 x S x S`` uint8 views -> one dense ``N x S x S x 3`` buffer (then their mirrors).

    Written by hand rather than ``torch.stack`` + ``torch.cat(flip)``: one buffer, filled once,
    in PIL's pixel layout so that each copy moves whole rows; the caller's ``permute(0, 3, 1, 2)``
    is then an ``N x 3 x S x S`` batch in channels_last memory format, the format the inference
    backends convert to anyway. The copies go through numpy, which copies on one thread: torch
    splits each 150 KB copy over its intra-op threads, which buys nothing at this size and stalls
    for milliseconds whenever one of those threads is descheduled (measured on a loaded 2-core
    machine, 120 crops of 224: ``torch.stack`` median 2.5 s, this loop 1.2 ms).
    """
    n = len(views)
    height, width = views[0].shape[-2:]
    buffer = np.empty((2 * n if mirrored else n, height, width, 3), dtype=np.uint8)
    out = torch.from_numpy(buffer)
    for i, view in enumerate(views):
        buffer[i] = _hwc(view).numpy()
        if mirrored:
            # torch's flip moves whole 3-byte pixels; numpy's [:, ::-1] measured about 40x slower.
            out[n + i] = out[i].flip(1)
    return out


def _as_uint8_tensor(image: PIL.Image.Image | torch.Tensor) -> torch.Tensor:
    if isinstance(image, PIL.Image.Image):
        return F.pil_to_tensor(to_rgb(image))  # 3 x H x W uint8, one copy
    if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
        raise ValueError(
            f"image tensor must be 3 x H x W uint8. Got shape {tuple(image.shape)}, dtype {image.dtype}"
        )
    return image


def multicrop(
    image: PIL.Image.Image | torch.Tensor,
    scheme: str | int,
    size: int | DataConfig = PAPER_CROP_SIZE,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``scheme``'s views of ``image`` as a float batch ``N x 3 x size x size`` in [0, 1].

    ``dtype=torch.uint8`` returns the 0-255 pixels instead (a quarter of the bytes, for passing
    crops between processes).

    ``image`` is a PIL image of any mode (EXIF orientation applied, converted to RGB by
    :func:`googlenet.data.transforms.to_rgb`) or an upright RGB ``3 x H x W`` uint8 tensor.
    The batch is not normalised: apply the model's mean/std afterwards. ``size``: a crop side (the
    paper's geometry) or a :class:`googlenet.data.config.DataConfig` (crop side, resize ratio,
    interpolation). Order: see the module docstring; ``crop_views(width, height, scheme, size)[i]``
    describes row ``i``.
    """
    scheme = parse_scheme(scheme)
    config = _geometry(size)
    if config.interpolation not in TENSOR_INTERPOLATIONS:
        raise ValueError(
            f"multi-crop resizes tensors, with one of {', '.join(TENSOR_INTERPOLATIONS)}. "
            f"Got interpolation {config.interpolation!r}"
        )
    mode = interpolation_mode(config.interpolation)
    size = config.image_size
    pixels = _as_uint8_tensor(image)
    height, width = pixels.shape[-2:]
    crops: list[torch.Tensor] = []  # 3 x size x size views
    for side in scale_sides(scheme, config):
        w, h = resized_shape(width, height, side)
        limit = PIL.Image.MAX_IMAGE_PIXELS  # PIL's decompression-bomb limit (None: disabled by the user)
        if limit is not None and w * h > limit:
            # A 1 x 100000 strip passes PIL's decompression-bomb check but would resize to gigabytes.
            raise ValueError(
                f"image of {width}x{height} is too elongated: its shorter side at {side} gives {w}x{h} pixels"
            )
        scaled = F.resize(pixels, [h, w], interpolation=mode, antialias=True)
        if scheme == "1":
            crops.append(F.center_crop(scaled, [size, size]))
        elif scheme == "10":
            crops += F.five_crop(scaled, [size, size])
        else:
            q = min(w, h)
            squares = [scaled[:, y : y + q, x : x + q] for x, y in _square_origins(w, h)]
            # One batched resize per scale for the three whole-square views (the only extra resize),
            # on a dense copy in PIL's channels-last layout, which the uint8 antialiased kernel reads
            # as it is.
            dense = _stack_hwc(squares).permute(0, 3, 1, 2)
            whole = F.resize(dense, [size, size], interpolation=mode, antialias=True)
            for square, resized_square in zip(squares, whole, strict=True):
                crops += F.five_crop(square, [size, size])
                crops.append(resized_square)
    out = _stack_hwc(crops, mirrored=scheme != "1")
    batch = out.permute(0, 3, 1, 2)
    return batch if dtype == torch.uint8 else F.to_dtype(batch, dtype, scale=True)


def normalize_crops(
    crops: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """``(x - mean) / std`` as a new float32 batch, from uint8 (0-255) or float ([0, 1]) crops.

    One allocation and two in-place passes (a 144-crop batch at 224 is 87 MB of floats; fresh
    allocations of that size cost as much as the arithmetic). Memory format is kept.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=crops.device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=crops.device).view(1, 3, 1, 1)
    pixel = 255.0 if crops.dtype == torch.uint8 else 1.0
    x = crops.to(torch.float32, copy=True)
    return x.mul_(1.0 / (pixel * std)).sub_(mean / std)
