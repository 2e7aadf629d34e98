"""The built-in dataset: a procedurally generated, ImageNet-shaped stand-in for ILSVRC 2012.

The paper trains and tests on ILSVRC 2012 (section 5: 1000 classes, 1.2 M training and 50 k
validation images; section 6 trains on patches of 8-100% of the image area, section 7 tests on
crops of the shorter side). That set cannot be shipped or trained on a laptop CPU, so every
command that takes ``--data`` also accepts ``builtin``: this module draws a small set with the
same *shape*, written as JPEG files in the ImageFolder layout::

    root/train/<class>/<class>_<index>.jpg
    root/val/<class>/<class>_<index>.jpg
    root/classes.txt      one class name per line, in label order
    root/builtin.json     generation parameters and counts; written last, the completion marker

What keeps it from being a toy (see docs/builtin_dataset.md for the numbers):

- images are not square (aspect ratio 3:4 .. 16:9, both orientations); ``image_size`` is the
  shorter side, so the resize-shorter-side-then-crop pipelines of sections 6 and 7 have work to do;
- one target object per image at a random scale (35-95% of the shorter side), position (it may be
  cut a little by the border), rotation and aspect; clutter of smaller or partly visible shapes of
  *other* classes, sometimes in front of the target;
- textured backgrounds (smooth noise, gradients, stripes, checks, blurred blobs) in random colours;
- classes differ by shape and fill texture only. Every colour is drawn from the uniform RGB cube,
  every constraint on colours depends only on their differences, and every rendering step is
  affine in the colours, so the whole generator is symmetric under colour inversion c -> 1 - c:
  the expected value of every pixel is mid-grey for every class. Mean colour carries no signal by
  construction (benchmarks/builtin_baselines.py measures it).

Each image is drawn from its own random stream seeded by (seed, split, class, index), so the
files are byte-identical whatever the number of worker processes. The drawing itself (shapes,
fills, backgrounds, :func:`render_image`) lives in :mod:`googlenet.data.scenes`; this module owns
the set: its parameters, seeds, files, cache and completion marker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import cache
from ..atomic import atomic_write, atomic_write_text
from ..errors import GoogLeNetError
from ..manifest import write_json
from .scenes import BUILTIN_CLASSES, CLASS_SPECS, render_image, render_in_workers

# Bumped whenever the generator's output changes; part of the cache key and of builtin.json, so a
# cached set from older code is never mistaken for the current one.
BUILTIN_VERSION = 4
# Names this generator's random streams (kept when the version changes).
_STREAM_TAG = 1
BUILTIN_FORMAT = "googlenet-builtin"
MARKER_NAME = "builtin.json"
CLASSES_NAME = "classes.txt"
SPLITS = ("train", "val")
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
JPEG_QUALITY = 90
DEFAULT_PARAMS: dict[str, int] = {
    "classes": 10,
    "train_per_class": 500,
    "val_per_class": 100,
    "image_size": 128,
    "seed": 0,
}


# ----------------------------------------------------------------------------------------------
# Writing a set.


def image_seed(seed: int, split: str, class_index: int, index: int) -> np.random.SeedSequence:
    """The random stream of one image: a function of (seed, split, class, index) only."""
    stream = CLASS_SPECS[class_index].stream
    return np.random.SeedSequence([_STREAM_TAG, seed, SPLITS.index(split), stream, index])


def _file_name(name: str, index: int, count: int) -> str:
    return f"{name}_{index:0{max(4, len(str(count - 1)))}d}.jpg"


def _render_chunk(root: str, params: dict[str, int], tasks: list[tuple[str, int, int]]) -> int:
    counts = {"train": params["train_per_class"], "val": params["val_per_class"]}
    for split, class_index, index in tasks:
        rng = np.random.default_rng(image_seed(params["seed"], split, class_index, index))
        image = render_image(class_index, rng, params["image_size"])
        name = BUILTIN_CLASSES[class_index]
        path = os.path.join(root, split, name, _file_name(name, index, counts[split]))
        # optimize=False and no EXIF/ICC keep the bytes a function of the pixels only.
        image.save(path, format="JPEG", quality=JPEG_QUALITY)
    return len(tasks)


def check_params(params: Mapping[str, Any], names: Mapping[str, str] | None = None) -> dict[str, int]:
    """Validate and complete generation parameters (defaults from :data:`DEFAULT_PARAMS`).

    ``names`` maps a parameter to the name the user typed (``{"classes": "--classes"}``) so the
    error message names what the user can change.
    """
    unknown = set(params) - set(DEFAULT_PARAMS) - {"workers"}
    if unknown:
        raise GoogLeNetError(f"unknown built-in dataset parameter(s): {', '.join(sorted(unknown))}")
    out = {**DEFAULT_PARAMS, **{k: v for k, v in params.items() if k != "workers" and v is not None}}
    label = (names or {}).get

    def bad(key: str, why: str) -> GoogLeNetError:
        shown = label(key, key)
        sep = " " if shown.startswith("-") else "="
        return GoogLeNetError(f"{shown}{sep}{out[key]!r}: {why}")

    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise bad(key, "must be an integer")
        out[key] = int(value)
    if not 2 <= out["classes"] <= len(BUILTIN_CLASSES):
        raise bad("classes", f"must be between 2 and {len(BUILTIN_CLASSES)} (the built-in classes)")
    for key in ("train_per_class", "val_per_class"):
        if out[key] < 1:
            raise bad(key, "must be at least 1")
    if not MIN_IMAGE_SIZE <= out["image_size"] <= MAX_IMAGE_SIZE:
        raise bad("image_size", f"must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels")
    if out["seed"] < 0:
        raise bad("seed", "must be non-negative")
    workers = params.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        shown = label("workers", "workers")
        raise GoogLeNetError(f"{shown}{' ' if shown.startswith('-') else '='}{workers!r}: must be at least 1")
    return out


def read_builtin_info(root: str | Path) -> dict[str, Any] | None:
    """The contents of ``root/builtin.json`` if ``root`` holds a complete built-in set, else None."""
    marker = Path(root) / MARKER_NAME
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != BUILTIN_FORMAT:
        return None
    return info


def is_complete(root: str | Path, params: Mapping[str, Any] | None = None) -> bool:
    """True if ``root`` holds a finished set of this generator version (with ``params``, if given)."""
    info = read_builtin_info(root)
    if info is None or info.get("version") != BUILTIN_VERSION:
        return False
    return params is None or info.get("params") == check_params(params)


def make_builtin(
    root: str | Path,
    *,
    classes: int = 10,
    train_per_class: int = 500,
    val_per_class: int = 100,
    image_size: int = 128,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Generate the built-in set into ``root`` and return it.

    The set is written into a temporary sibling directory and renamed into place when complete,
    so a killed run leaves ``root`` untouched. If ``root`` already holds a complete set with the
    same parameters it is reused; any other non-empty ``root`` is an error (user files are never
    deleted). Byte-identical output for equal parameters, whatever ``workers`` is.
    """
    params = check_params(
        dict(
            classes=classes,
            train_per_class=train_per_class,
            val_per_class=val_per_class,
            image_size=image_size,
            seed=seed,
            workers=workers,
        )
    )
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    return cache.build_directory(
        root,
        is_complete=lambda path: is_complete(path, params),
        check_target=lambda path: _check_target(path, params),
        generate=lambda tmp: _generate(tmp, params, workers),
    )


def _check_target(root: Path, params: dict[str, int]) -> None:
    if root.exists() and not root.is_dir():
        raise GoogLeNetError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        info = read_builtin_info(root)
        if info is not None:
            raise GoogLeNetError(
                f"{root} holds a built-in set made with other parameters ({_describe(info.get('params'))}, "
                f"version {info.get('version')}); choose another directory or delete it yourself"
            )
        raise GoogLeNetError(f"{root} is not empty and not a complete built-in set; choose another directory")


def _describe(params: Any) -> str:
    if not isinstance(params, dict):
        return "unknown"
    return " ".join(f"{k}={v}" for k, v in params.items())


def _generate(tmp: Path, params: dict[str, int], workers: int) -> None:
    names = BUILTIN_CLASSES[: params["classes"]]
    counts = {"train": params["train_per_class"], "val": params["val_per_class"]}
    for split in SPLITS:
        for name in names:
            (tmp / split / name).mkdir(parents=True)
    tasks = [(split, c, i) for split in SPLITS for c in range(len(names)) for i in range(counts[split])]
    done = render_in_workers(_render_chunk, (str(tmp), params), tasks, workers)
    if sum(done) != len(tasks):
        raise AssertionError("built-in dataset: a worker lost images")
    atomic_write_text(tmp / CLASSES_NAME, "".join(f"{n}\n" for n in names))
    info = {
        "format": BUILTIN_FORMAT,
        "version": BUILTIN_VERSION,
        "params": params,
        "classes": list(names),
        "counts": {split: counts[split] * len(names) for split in SPLITS},
        "image_size": "shorter side in pixels",
    }
    # Written last: its presence is what makes the directory a complete set.
    write_json(tmp / MARKER_NAME, info)


# ----------------------------------------------------------------------------------------------
# The cache behind ``--data builtin``.


def builtin_key(**params: Any) -> str:
    """Short hash of the generation parameters (and generator version): the cache directory's name."""
    return cache.parameter_key(BUILTIN_VERSION, check_params(params))


def ensure_builtin(cache_dir: str | Path | None = None, **params: Any) -> Path:
    """The cached built-in set for ``params`` (keywords of :func:`make_builtin`), made on first use.

    Safe against concurrent callers (torchrun ranks): one generates under a lock, the others wait
    and reuse it. A killed generation leaves only a temporary directory, removed by the next call.
    """
    workers = params.pop("workers", None)
    full = check_params(params)
    return cache.cached_set(
        "builtin",
        builtin_key(**full),
        cache_dir,
        lambda target: is_complete(target, full),
        lambda target: make_builtin(target, workers=workers, **full),
    )


def resolve_data(data: str | Path, **builtin_params: Any) -> Path:
    """``"builtin"`` -> :func:`ensure_builtin` (``builtin_params`` passed on); else the existing directory."""
    return cache.data_folder(
        data,
        "data directory",
        "give a folder with train/ and val/, or 'builtin'",
        lambda: ensure_builtin(**builtin_params),
    )


# ----------------------------------------------------------------------------------------------
# A picture of the set, for the docs.


def contact_sheet(
    root: str | Path, out: str | Path, *, per_class: int = 8, thumb: int = 96, split: str = "train"
) -> Path:
    """Write a PNG grid: one row per class (name on the left), ``per_class`` images letterboxed."""
    root, out = Path(root), Path(out)
    names = (root / CLASSES_NAME).read_text(encoding="utf-8").split()
    label_w = 120
    sheet = Image.new("RGB", (label_w + per_class * (thumb + 4), len(names) * (thumb + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=14)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        font = ImageFont.load_default()
    for row, name in enumerate(names):
        y = row * (thumb + 4) + 2
        draw.text((4, y + thumb // 2 - 8), name, fill=(0, 0, 0), font=font)
        for col, path in enumerate(sorted((root / split / name).glob("*.jpg"))[:per_class]):
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((thumb, thumb), Image.BICUBIC)
            x = label_w + col * (thumb + 4) + (thumb - im.width) // 2
            sheet.paste(im, (x, y + (thumb - im.height) // 2))
    # A dithered 256-colour palette keeps the picture small in the repository (PIL dithers only
    # when mapping onto a given palette, hence the two steps).
    palette = sheet.quantize(256)
    small = sheet.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    return atomic_write(out, lambda tmp: small.save(tmp, format="PNG", optimize=True))
