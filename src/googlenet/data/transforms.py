"""Training and evaluation transforms: the paper's image sampling recipe (section 6) as switches.

Section 6 of Szegedy et al. (2014) describes the augmentation that worked best for the
competition models:

* "sampling of various sized patches of the image whose size is distributed evenly between 8% and
  100% of the image area with aspect ratio constrained to the interval [3/4, 4/3]"
  -> :class:`torchvision.transforms.v2.RandomResizedCrop` (``AugmentConfig.scale``, ``.ratio``);
* "the photometric distortions of Andrew Howard [8] were useful to combat overfitting to the
  imaging conditions of training data" -> random brightness, contrast and saturation in random
  order (:class:`torchvision.transforms.v2.ColorJitter`) plus AlexNet-style PCA lighting noise
  (:class:`PCALighting`) (``AugmentConfig.photometric``, ``.brightness``, ``.contrast``,
  ``.saturation``, ``.lighting``);
* "random interpolation methods (bilinear, area, nearest neighbor and cubic, with equal
  probability) for resizing" -> :class:`RandomInterpolationResizedCrop`
  (``AugmentConfig.random_interpolation``);
* horizontal mirroring (not stated in section 6 but used by the BVLC reproduction,
  ``mirror: true``, and by the section 7 test crops) -> ``AugmentConfig.hflip``.

Evaluation (section 7, single crop): resize the shorter side to the model's data config's
``resize_size`` (``round(image_size * meta.resize_ratio)``, 256 for 224; :mod:`googlenet.data.config`)
and take the centre ``image_size`` square.

Every random draw comes from torch's global RNG (the torchvision v2 transforms and the two
transforms written here), never from Python's ``random`` or numpy, so DataLoader worker seeding
makes the batches of a run reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..models.model import ModelMeta
from .config import DataConfig, resolve_data_config

__all__ = [
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "PAPER_INTERPOLATIONS",
    "AugmentConfig",
    "PCALighting",
    "RandomInterpolationResizedCrop",
    "ToRGB",
    "eval_transform",
    "interpolation_mode",
    "normalize",
    "train_transform",
]

# Section 6: "bilinear, area, nearest neighbor and cubic, with equal probability".
PAPER_INTERPOLATIONS: tuple[str, ...] = ("bilinear", "area", "nearest", "bicubic")

# PCA of ImageNet RGB pixels on the [0, 1] scale, as used for AlexNet's lighting noise
# (Krizhevsky et al. 2012, section 4.1). Values from fb.resnet.torch, datasets/imagenet.lua
# (`pca.eigval`, `pca.eigvec`), the copy every PyTorch reimplementation uses. Columns of
# IMAGENET_EIGVEC are the eigenvectors, rows are the R, G, B channels.
IMAGENET_EIGVAL: tuple[float, float, float] = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC: tuple[tuple[float, float, float], ...] = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# "area" is not an InterpolationMode. On PIL images it maps to PIL's BOX filter, which averages
# every source pixel covering a destination pixel with equal weight: OpenCV's INTER_AREA when
# shrinking. On tensors RandomInterpolationResizedCrop uses torch's "area" mode instead.
_INTERPOLATION_MODES: dict[str, v2.InterpolationMode] = {
    "bilinear": v2.InterpolationMode.BILINEAR,
    "area": v2.InterpolationMode.BOX,
    "box": v2.InterpolationMode.BOX,
    "nearest": v2.InterpolationMode.NEAREST,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "lanczos": v2.InterpolationMode.LANCZOS,
    "hamming": v2.InterpolationMode.HAMMING,
}


def interpolation_mode(name: str) -> v2.InterpolationMode:
    """Map a metadata interpolation name (``"bilinear"``, ``"area"``, ...) to torchvision's enum."""
    try:
        return _INTERPOLATION_MODES[name]
    except KeyError:
        raise ValueError(
            f"interpolation must be one of {sorted(_INTERPOLATION_MODES)}. Got {name!r}"
        ) from None


# Written by hand: v2 has no transform that applies EXIF orientation or maps every PIL mode
# (16-bit greyscale, float, palette, CMYK) to 8-bit RGB; torchvision's ImageFolder loader only
# calls convert("RGB"), which clips 16-bit greyscale to white.
class ToRGB(v2.Transform):
    """Upright 8-bit RGB PIL image from any PIL image: EXIF orientation applied, any mode converted.

    16-bit and 32-bit integer greyscale (``I;16``, ``I``) is rescaled to 8 bits, float (``F``) is
    read as [0, 1] when its maximum is at most 1 and as 0-255 otherwise. Transparency is dropped
    the way ``convert("RGB")`` drops it (the colour under the alpha channel is kept), matching
    torchvision's ImageFolder loader. Tensors pass through unchanged.
    """

    _transformed_types = (PIL.Image.Image,)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return to_rgb(inpt)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """Function form of :class:`ToRGB`."""
    image = PIL.ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16"):
        # 16-bit greyscale (PNG, TIFF): keep the high byte.
        image = image.point(lambda v: v / 256, "L") if image.mode == "I;16" else image.convert("I")
    if image.mode == "I":
        extrema = image.getextrema()
        scale = 1 / 256 if extrema[1] > 255 else 1.0
        image = image.point(lambda v: v * scale, "L")  # type: ignore[arg-type]
    elif image.mode == "F":
        extrema = image.getextrema()
        scale = 255.0 if extrema[1] <= 1.0 else 1.0
        image = image.point(lambda v: v * scale).convert("L")  # type: ignore[arg-type]
    if image.mode == "P" and "transparency" in image.info:
        # Palette images with a transparent index warn on direct RGB conversion; go via RGBA.
        image = image.convert("RGBA")
    return image.convert("RGB")


# Written by hand: v2.RandomResizedCrop takes one fixed interpolation; section 6 draws one of four
# per image. The crop parameters still come from RandomResizedCrop.make_params.
class RandomInterpolationResizedCrop(v2.RandomResizedCrop):
    """Random-size, random-aspect crop resized with an interpolation drawn per image (section 6).

    Args:
        size: output size, an int (square) or (height, width).
        scale: bounds of the crop area as a fraction of the image area; section 6: (0.08, 1.0).
        ratio: bounds of the crop aspect ratio (width / height); section 6: (3/4, 4/3).
        interpolations: names drawn with equal probability; section 6: bilinear, area, nearest,
            bicubic. ``"area"`` is PIL's BOX filter on PIL images and torch's ``area`` mode on tensors.
        antialias: passed to the resize of tensors (PIL always antialiases).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolations: Sequence[str] = PAPER_INTERPOLATIONS,
        antialias: bool = True,
    ) -> None:
        _check_range("scale", scale, upper=1.0)
        _check_range("ratio", ratio)
        super().__init__(size, scale=scale, ratio=ratio, antialias=antialias)
        if isinstance(interpolations, str) or not interpolations:
            raise ValueError(f"interpolations must be a non-empty sequence of names. Got {interpolations!r}")
        for name in interpolations:
            if name not in PAPER_INTERPOLATIONS:
                raise ValueError(f"interpolations must be among {PAPER_INTERPOLATIONS}. Got {name!r}")
        self.interpolations = tuple(interpolations)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        index = int(torch.randint(len(self.interpolations), (1,)).item())
        params["interpolation"] = self.interpolations[index]
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        name = params["interpolation"]
        box = {k: params[k] for k in ("top", "left", "height", "width")}
        if name == "area" and isinstance(inpt, torch.Tensor) and _is_image_tensor(inpt):
            return _area_resized_crop(inpt, **box, size=list(self.size))
        mode = _INTERPOLATION_MODES[name]
        if name == "area" and not isinstance(inpt, PIL.Image.Image):
            mode = v2.InterpolationMode.BILINEAR  # boxes/masks: the kernels ignore or override it
        return self._call_kernel(
            F.resized_crop, inpt, **box, size=self.size, interpolation=mode, antialias=self.antialias
        )

    def __repr__(self) -> str:
        scale = tuple(round(s, 4) for s in self.scale)
        ratio = tuple(round(r, 4) for r in self.ratio)
        return (
            f"{type(self).__name__}(size={tuple(self.size)}, scale={scale}, ratio={ratio}, "
            f"interpolations={self.interpolations}, antialias={self.antialias})"
        )


def _is_image_tensor(inpt: torch.Tensor) -> bool:
    if isinstance(inpt, tv_tensors.TVTensor):
        return isinstance(inpt, tv_tensors.Image | tv_tensors.Video)
    return True


def _area_resized_crop(
    image: torch.Tensor, top: int, left: int, height: int, width: int, size: list[int]
) -> torch.Tensor:
    # torch's "area" mode is adaptive average pooling: the tensor counterpart of PIL's BOX filter.
    crop = image[..., top : top + height, left : left + width]
    shape = crop.shape
    flat = crop.reshape(-1, *shape[-3:]).float()
    out = nnf.interpolate(flat, size=tuple(size), mode="area")
    if not image.is_floating_point():
        out = out.round_().clamp_(0, torch.iinfo(image.dtype).max)
    out = out.to(image.dtype).reshape(*shape[:-2], *size)
    return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out


# Written by hand: v2 has ColorJitter for Howard's brightness/contrast/saturation but no AlexNet
# PCA lighting noise.
class PCALighting(v2.Transform):
    """AlexNet lighting noise: add ``eigvec @ (alpha * eigval)``, ``alpha ~ N(0, alphastd)`` per image.

    Krizhevsky et al. (2012), section 4.1, used by Howard (2013) and fb.resnet.torch
    (``Lighting(0.1, pca.eigval, pca.eigvec)``). Works on float RGB tensors in [0, 1] (shape
    ``(..., 3, H, W)``), before normalisation; the result is clamped back to [0, 1] so that it
    stays an image (fb.resnet.torch does not clamp; the difference is a few out-of-range pixels).
    """

    _transformed_types = (torch.Tensor,)

    def __init__(
        self,
        alphastd: float = 0.1,
        eigval: Sequence[float] = IMAGENET_EIGVAL,
        eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
    ) -> None:
        super().__init__()
        if not isinstance(alphastd, int | float) or alphastd < 0:
            raise ValueError(f"alphastd must be a non-negative number. Got {alphastd!r}")
        eigval_t = torch.as_tensor(eigval, dtype=torch.float32)
        eigvec_t = torch.as_tensor(eigvec, dtype=torch.float32)
        if eigval_t.shape != (3,) or eigvec_t.shape != (3, 3):
            raise ValueError(
                f"eigval must have 3 values and eigvec 3x3. Got {tuple(eigval_t.shape)} and "
                f"{tuple(eigvec_t.shape)}"
            )
        self.alphastd = float(alphastd)
        self.eigval = eigval_t
        self.eigvec = eigvec_t

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        alpha = torch.randn(3) * self.alphastd
        return {"rgb": self.eigvec @ (alpha * self.eigval)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not _is_image_tensor(inpt):
            return inpt
        if not inpt.is_floating_point():
            raise TypeError(
                f"PCALighting expects a float image in [0, 1] (use v2.ToDtype(torch.float32, scale=True) "
                f"first). Got dtype {inpt.dtype}"
            )
        if inpt.ndim < 3 or inpt.shape[-3] != 3:
            raise ValueError(
                f"PCALighting expects an RGB tensor of shape (..., 3, H, W). Got {tuple(inpt.shape)}"
            )
        rgb = params["rgb"].to(inpt.device, inpt.dtype).view(3, 1, 1)
        out = (inpt.as_subclass(torch.Tensor) + rgb).clamp_(0.0, 1.0)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    def __repr__(self) -> str:
        eigval = tuple(round(v, 4) for v in self.eigval.tolist())
        eigvec = tuple(tuple(round(v, 4) for v in row) for row in self.eigvec.tolist())
        return f"{type(self).__name__}(alphastd={self.alphastd}, eigval={eigval}, eigvec={eigvec})"


def _check_range(name: str, value: Sequence[float], upper: float | None = None) -> None:
    ok = (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
        and 0 < value[0] <= value[1]
        and (upper is None or value[1] <= upper)
    )
    if not ok:
        bound = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high{bound}. Got {value!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """Every switch of the training recipe; the defaults are the paper's recipe (section 6).

    ``photometric=False`` turns off all of Howard's distortions (colour jitter and lighting);
    ``brightness``, ``contrast``, ``saturation`` or ``lighting`` set to 0 turns off one of them.
    """

    scale: tuple[float, float] = (0.08, 1.0)  # section 6: 8%-100% of the image area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # section 6: aspect ratio in [3/4, 4/3]
    random_interpolation: bool = True  # section 6: bilinear/area/nearest/bicubic, equal probability
    photometric: bool = True  # section 6: Howard (2013) photometric distortions
    brightness: float = 0.4  # fb.resnet.torch ColorJitter values (after Howard 2013)
    contrast: float = 0.4
    saturation: float = 0.4
    lighting: float = 0.1  # AlexNet / fb.resnet.torch PCA lighting alphastd
    hflip: bool = True  # BVLC train_val.prototxt `mirror: true`

    def __post_init__(self) -> None:
        _check_range("scale", self.scale, upper=1.0)
        _check_range("ratio", self.ratio)
        for name in ("brightness", "contrast", "saturation", "lighting"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"AugmentConfig.{name} must be a non-negative number. Got {value!r}")
        for name in ("brightness", "contrast", "saturation"):
            # ColorJitter draws a factor in [1 - v, 1 + v]; a factor below 0 is meaningless.
            if getattr(self, name) > 1:
                raise ValueError(f"AugmentConfig.{name} must be at most 1. Got {getattr(self, name)!r}")


def _check_image_size(image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int. Got {image_size!r}")


def normalize(meta: ModelMeta) -> v2.Normalize:
    """``(x - meta.mean) / meta.std`` on [0, 1] RGB float tensors (googlenet: 0-255 mean-subtracted)."""
    if meta.channel_order != "RGB":
        raise ValueError(f"only RGB channel order is supported. Got channel_order={meta.channel_order!r}")
    return v2.Normalize(mean=list(meta.mean), std=list(meta.std))


def train_transform(
    meta: ModelMeta, image_size: int, *, augment: AugmentConfig = AugmentConfig()
) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """The section 6 training transform: PIL image of any mode -> normalised float32 ``3 x S x S``."""
    _check_image_size(image_size)
    steps: list[Callable[..., Any]] = [ToRGB()]
    if augment.random_interpolation:
        steps.append(RandomInterpolationResizedCrop(image_size, scale=augment.scale, ratio=augment.ratio))
    else:
        steps.append(
            v2.RandomResizedCrop(
                image_size,
                scale=augment.scale,
                ratio=augment.ratio,
                interpolation=interpolation_mode(meta.interpolation),
                antialias=True,
            )
        )
    if augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    # Crop and flip on the PIL image (cheap, and PIL has the BOX filter); colour work on [0, 1]
    # floats so that jitter and lighting do not round to 8 bits in between.
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if augment.photometric:
        if augment.brightness or augment.contrast or augment.saturation:
            # ColorJitter applies its distortions in a random order, as Howard (2013) does.
            steps.append(
                v2.ColorJitter(
                    brightness=augment.brightness or None,
                    contrast=augment.contrast or None,
                    saturation=augment.saturation or None,
                )
            )
        if augment.lighting:
            steps.append(PCALighting(augment.lighting))
    steps += [normalize(meta), v2.ToPureTensor()]
    return v2.Compose(steps)


def eval_transform(
    meta: ModelMeta | DataConfig, image_size: int | None = None
) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """Single centre crop (section 7): shorter side -> ``resize_size``, centre ``image_size`` square.

    ``meta``: a model's :class:`googlenet.ModelMeta`, resolved by
    :func:`googlenet.data.config.resolve_data_config` (its resize ratio, interpolation, mean and
    std; crop ``image_size``, else its trained size), or an already resolved
    :class:`googlenet.data.config.DataConfig`, used as it is.
    """
    if isinstance(meta, DataConfig):
        config = meta if image_size is None else replace(meta, image_size=image_size)
    else:
        if meta.channel_order != "RGB":
            raise ValueError(f"only RGB channel order is supported. Got channel_order={meta.channel_order!r}")
        # The model's own config; the crop side is replaced as given, without the network's 64 px
        # minimum, which is the caller's business (the transform works at any size).
        config = resolve_data_config(meta)
        config = config if image_size is None else replace(config, image_size=image_size)
    _check_image_size(config.image_size)
    if config.resize_size < config.image_size:
        raise ValueError(f"meta.resize_ratio must be at least 1. Got {config.resize_ratio!r}")
    return v2.Compose(
        [
            ToRGB(),
            v2.Resize(
                config.resize_size, interpolation=interpolation_mode(config.interpolation), antialias=True
            ),
            v2.CenterCrop(config.image_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
            v2.ToPureTensor(),
        ]
    )
