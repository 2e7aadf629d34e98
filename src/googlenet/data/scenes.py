"""Procedural scenes: the shapes, fills, backgrounds and compositing behind the built-in data sets.

Both built-in sets draw with this module: the classification set (:mod:`googlenet.data.builtin`,
the stand-in for ILSVRC 2012, paper section 5) one target object per image with :func:`render_image`;
the detection set (:mod:`googlenet.detection.builtin`, the stand-in for ILSVRC 2014 DET, section 8)
several objects per image with :func:`render_scene`, which also returns each object's visible mask
and box.

Everything here is a pure function of a ``numpy`` random stream: the caller seeds one stream per
image, so an image does not depend on which process drew it. Classes differ by shape and fill
texture only; every colour is drawn from the uniform RGB cube, every constraint on colours depends
only on their differences, and every step is affine in the colours (symmetric under c -> 1 - c,
so mean colour carries no class signal; see docs/builtin_dataset.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Aspect ratio (longer / shorter side) range: 4:3 portrait to 16:9 landscape and back, the usual
# range of photographs in ILSVRC.
MAX_ASPECT = 16 / 9
# Supersampling factor of the shape masks: anti-aliased edges, as a camera would give.
_SUPERSAMPLE = 2

Polygon = tuple[np.ndarray, int]  # (N x 2 points in unit object coordinates, 255 = add / 0 = cut)


# ----------------------------------------------------------------------------------------------
# Shapes, in unit object coordinates (the shape fits in the disc of radius 1, y points down).
# Each takes the image's random stream so instances of one class vary (ring thickness, star
# depth, ...), as instances of an ImageNet class do.


def _ellipse(rx: float, ry: float, cx: float = 0.0, cy: float = 0.0, n: int = 64) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _regular(n: int, r: float, phase: float = -np.pi / 2) -> np.ndarray:
    a = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _star(points: int, r_out: float, r_in: float) -> np.ndarray:
    a = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _disc(rng: np.random.Generator) -> list[Polygon]:
    return [(_ellipse(1.0, 1.0), 255)]


def _ring(rng: np.random.Generator) -> list[Polygon]:
    inner = rng.uniform(0.5, 0.7)
    return [(_ellipse(1.0, 1.0), 255), (_ellipse(inner, inner), 0)]


def _square(rng: np.random.Generator) -> list[Polygon]:
    return [(_rect(-0.78, -0.78, 0.78, 0.78), 255)]


def _triangle(rng: np.random.Generator) -> list[Polygon]:
    return [(_regular(3, 1.0) + np.array([0.0, 0.2]), 255)]


def _star5(rng: np.random.Generator) -> list[Polygon]:
    return [(_star(5, 1.0, rng.uniform(0.38, 0.5)), 255)]


def _cross(rng: np.random.Generator) -> list[Polygon]:
    w = rng.uniform(0.26, 0.36)
    return [(_rect(-0.95, -w, 0.95, w), 255), (_rect(-w, -0.95, w, 0.95), 255)]


def _crescent(rng: np.random.Generator) -> list[Polygon]:
    r = rng.uniform(0.75, 0.88)
    return [(_ellipse(1.0, 1.0), 255), (_ellipse(r, r, cx=rng.uniform(0.38, 0.5)), 0)]


def _heart(rng: np.random.Generator) -> list[Polygon]:
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [(np.stack([x, y + 2.5], axis=1) / 17.0, 255)]


def _hexagon(rng: np.random.Generator) -> list[Polygon]:
    return [(_regular(6, 0.95, phase=0.0), 255)]


def _frame(rng: np.random.Generator) -> list[Polygon]:
    inner = 0.8 * rng.uniform(0.55, 0.7)
    return [(_rect(-0.8, -0.8, 0.8, 0.8), 255), (_rect(-inner, -inner, inner, inner), 0)]


def _arrow(rng: np.random.Generator) -> list[Polygon]:
    w = rng.uniform(0.16, 0.24)
    pts = [(-0.95, -w), (0.15, -w), (0.15, -0.6), (0.95, 0.0), (0.15, 0.6), (0.15, w), (-0.95, w)]
    return [(np.array(pts), 255)]


def _ellipse_shape(rng: np.random.Generator) -> list[Polygon]:
    return [(_ellipse(1.0, rng.uniform(0.4, 0.55)), 255)]


def _chevron(rng: np.random.Generator) -> list[Polygon]:
    pts = [(-0.9, -0.75), (0.0, 0.1), (0.9, -0.75), (0.9, -0.15), (0.0, 0.75), (-0.9, -0.15)]
    return [(np.array(pts), 255)]


def _hexagram(rng: np.random.Generator) -> list[Polygon]:
    return [(_regular(3, 1.0), 255), (_regular(3, 1.0, phase=np.pi / 2), 255)]


def _lshape(rng: np.random.Generator) -> list[Polygon]:
    pts = np.array([(-0.65, -0.9), (-0.15, -0.9), (-0.15, 0.4), (0.65, 0.4), (0.65, 0.9), (-0.65, 0.9)])
    if rng.random() < 0.5:  # the mirror image is the same class, as a left shoe is a shoe
        pts[:, 0] *= -1
    return [(pts, 255)]


def _pacman(rng: np.random.Generator) -> list[Polygon]:
    half = rng.uniform(0.35, 0.6)
    a = np.linspace(half, 2 * np.pi - half, 56)
    pts = np.concatenate([[[-0.0, 0.0]], np.stack([np.cos(a), np.sin(a)], axis=1)])
    return [(pts, 255)]


def _tshape(rng: np.random.Generator) -> list[Polygon]:
    w = rng.uniform(0.2, 0.28)
    return [(_rect(-0.9, -0.9, 0.9, -0.9 + 2 * w), 255), (_rect(-w, -0.9, w, 0.9), 255)]


def _semicircle(rng: np.random.Generator) -> list[Polygon]:
    a = np.linspace(0, np.pi, 48)
    return [(np.stack([np.cos(a), np.sin(a) - 0.45], axis=1), 255)]


@dataclass(frozen=True)
class BuiltinClass:
    """One class: a shape and the texture that fills it (``plain`` = one colour with soft shading).

    ``stream`` numbers the class's random streams; it never changes when classes are renamed or
    added, so an image is a function of (seed, split, stream, index) only.
    """

    name: str
    shape: str
    fill: str
    stream: int


_SHAPES: dict[str, Callable[[np.random.Generator], list[Polygon]]] = {
    "disc": _disc,
    "ring": _ring,
    "square": _square,
    "triangle": _triangle,
    "star": _star5,
    "cross": _cross,
    "crescent": _crescent,
    "heart": _heart,
    "hexagon": _hexagon,
    "frame": _frame,
    "arrow": _arrow,
    "ellipse": _ellipse_shape,
    "chevron": _chevron,
    "hexagram": _hexagram,
    "lshape": _lshape,
    "pacman": _pacman,
    "tshape": _tshape,
    "semicircle": _semicircle,
}

# Label order is alphabetical, because that is the order in which torchvision's ImageFolder
# (and any directory listing) numbers the class folders; the names are chosen so that the first
# ten, the default set, are eight outlines plus two textured versions of outlines already in it
# (fill texture, not only outline, must matter for some classes). All later names sort after
# "heart", so BUILTIN_CLASSES[:K] is the label order of a K-class set for every K.
CLASS_SPECS: tuple[BuiltinClass, ...] = tuple(
    BuiltinClass(name, shape, fill, stream)
    for stream, (name, shape, fill) in sorted(
        enumerate(
            (
                ("disc", "disc", "plain"),
                ("donut", "ring", "plain"),
                ("block", "square", "plain"),
                ("delta", "triangle", "plain"),
                ("five_point_star", "star", "plain"),
                ("cross", "cross", "plain"),
                ("crescent", "crescent", "plain"),
                ("heart", "heart", "plain"),
                ("banded_disc", "disc", "stripes"),
                ("checked_square", "square", "checks"),
                ("hexagon", "hexagon", "plain"),
                ("hollow_square", "frame", "plain"),
                ("pointer", "arrow", "plain"),
                ("oval", "ellipse", "plain"),
                ("spotted_disc", "disc", "dots"),
                ("striped_square", "square", "stripes"),
                ("v_shape", "chevron", "plain"),
                ("hexagram", "hexagram", "plain"),
                ("l_shape", "lshape", "plain"),
                ("pacman", "pacman", "plain"),
                ("spotted_triangle", "triangle", "dots"),
                ("tiled_disc", "disc", "checks"),
                ("t_shape", "tshape", "plain"),
                ("semicircle", "semicircle", "plain"),
            )
        ),
        key=lambda item: item[1][0],
    )
)
BUILTIN_CLASSES: tuple[str, ...] = tuple(c.name for c in CLASS_SPECS)
# Distractors are drawn from this list (stream order), so adding a class never changes them.
_BY_STREAM: tuple[BuiltinClass, ...] = tuple(sorted(CLASS_SPECS, key=lambda c: c.stream))

# ----------------------------------------------------------------------------------------------
# Rendering one image. Colours are float RGB in [0, 1]; every step below is affine in them (see
# the module docstring for why that matters).


def _colours(
    rng: np.random.Generator,
    n: int,
    min_dist: Mapping[tuple[int, int], float],
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` colours uniform in the RGB cube, redrawn until the listed pairs are far enough apart.

    The first ``len(fixed)`` colours are ``fixed`` (not drawn). The condition depends on colour
    differences only, so it keeps the symmetry c -> 1 - c.
    """
    for _ in range(200):
        c = rng.random((n, 3)) if fixed is None else np.concatenate([fixed, rng.random((n - len(fixed), 3))])
        if all(np.linalg.norm(c[i] - c[j]) >= d for (i, j), d in min_dist.items()):
            return c
    return c  # practically unreachable (every condition holds with probability > 0.5)


def _unit_field(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """A class-independent background pattern with values in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    if kind == "gradient":
        return ((u - u.min()) / max(float(u.max() - u.min()), 1.0)).astype(np.float32)
    if kind == "stripes":
        period = rng.uniform(0.06, 0.3) * min(h, w)
        return (0.5 + 0.5 * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))).astype(np.float32)
    if kind == "checks":
        v = -xx * np.sin(theta) + yy * np.cos(theta)
        cell = rng.uniform(0.08, 0.3) * min(h, w)
        return ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    if kind == "noise":
        cells = int(rng.integers(3, 14))
        small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        return np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0
    if kind == "blobs":
        img = Image.new("L", (w, h), int(rng.integers(0, 256)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 10))):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            rx, ry = rng.uniform(0.05, 0.3, size=2) * min(h, w)
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=int(rng.integers(0, 256)))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 0.05 * min(h, w) + 1.0)))
        return np.asarray(img, dtype=np.float32) / 255.0
    raise AssertionError(kind)


_BACKGROUNDS = ("gradient", "stripes", "checks", "noise", "blobs")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Mixing weight in [0, 1] between the two background colours: one or two patterns."""
    field = np.zeros((h, w), np.float32)
    kinds = rng.choice(len(_BACKGROUNDS), size=int(rng.integers(1, 3)), replace=False)
    for k in kinds:
        field += rng.uniform(0.3, 1.0) * _unit_field(rng, h, w, _BACKGROUNDS[k])
    return np.clip(field, 0.0, 1.0)


def _object_coords(h: int, w: int, cx: float, cy: float, angle: float, radius: float):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = math.cos(angle), math.sin(angle)
    return (dx * c + dy * s) / radius, (-dx * s + dy * c) / radius


def _fill(rng: np.random.Generator, kind: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Mixing weight in [0, 1] between an object's two colours, in the object's own frame."""
    # Soft edges of about one pixel, so textures alias like a photograph, not like a bitmap.
    sharp = max(radius, 1.0)
    if kind == "plain":  # one colour with soft shading (a lit 3-D object)
        a = rng.uniform(0, 2 * np.pi)
        return (rng.uniform(0.0, 0.3) * (0.5 + 0.5 * (u * math.cos(a) + v * math.sin(a)) / 1.5)).clip(0, 1)
    if kind == "stripes":
        period = rng.uniform(0.45, 0.6)
        return np.clip(0.5 + sharp * period / 4 * np.sin(2 * np.pi * u / period), 0, 1)
    if kind == "checks":
        cell = rng.uniform(0.4, 0.55)
        return np.clip(0.5 + sharp * cell / 4 * np.sin(np.pi * u / cell) * np.sin(np.pi * v / cell), 0, 1)
    if kind == "dots":
        step = rng.uniform(0.42, 0.55)
        du = (u / step + 0.5) % 1.0 - 0.5
        dv = (v / step + 0.5) % 1.0 - 0.5
        dist = np.sqrt(du * du + dv * dv) * step
        return np.clip(0.5 + sharp * (0.3 * step - dist), 0, 1)
    raise AssertionError(kind)


def _placed(
    polys: list[Polygon], cx: float, cy: float, angle: float, radius: float, stretch: float
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """The polygons in pixel coordinates: ``(x, y, value)`` each (pixel centres at +0.5)."""
    c, s = math.cos(angle), math.sin(angle)
    out = []
    for pts, value in polys:
        x, y = pts[:, 0] * radius * stretch, pts[:, 1] * radius / stretch
        out.append((cx + x * c - y * s, cy + x * s + y * c, value))
    return out


def _shape_mask(
    polys: list[Polygon], h: int, w: int, cx: float, cy: float, angle: float, radius: float, stretch: float
) -> np.ndarray:
    """Coverage in [0, 1] of a shape placed at (cx, cy) with the given angle, radius and stretch."""
    ss = _SUPERSAMPLE
    img = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(img)
    for px, py, value in _placed(polys, cx, cy, angle, radius, stretch):
        draw.polygon(list(zip((px * ss).tolist(), (py * ss).tolist(), strict=True)), fill=value)
    img = img.resize((w, h), Image.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def _fragment_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Class-neutral clutter: a stroke or an arc, like twigs and wires in a photograph."""
    ss = _SUPERSAMPLE
    img = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(img)
    short = min(h, w) * ss
    x, y = rng.uniform(0, w * ss), rng.uniform(0, h * ss)
    length = rng.uniform(0.1, 0.45) * short
    width = max(1, int(rng.uniform(0.008, 0.03) * short))
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        draw.line((x, y, x + length * math.cos(a), y + length * math.sin(a)), fill=255, width=width)
    else:
        start = rng.uniform(0, 360)
        draw.arc(
            (x - length / 2, y - length / 2, x + length / 2, y + length / 2),
            start,
            start + rng.uniform(60, 200),
            fill=255,
            width=width,
        )
    img = img.resize((w, h), Image.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def _composite(
    img: np.ndarray, mask: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray, weight: np.ndarray | float
) -> None:
    """Paint a layer (colour_a..colour_b mixed by ``weight``) over ``img`` with coverage ``mask``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    # Only the shape's bounding box: most layers are small, and this is the generator's hot loop.
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    weight = np.asarray(weight, np.float32)
    w = weight[box] if weight.ndim else weight
    a, b = colour_a.astype(np.float32), colour_b.astype(np.float32)
    layer = a + (b - a) * np.asarray(w)[..., None]
    img[box] += (layer - img[box]) * mask[box][..., None]


def render_image(class_index: int, rng: np.random.Generator, image_size: int) -> Image.Image:
    """One image of class ``class_index`` (index into :data:`CLASS_SPECS`), shorter side ``image_size``."""
    spec = CLASS_SPECS[class_index]
    h, w = _frame_size(rng, image_size)
    short = float(image_size)

    # Colours: 0/1 background pair, 2/3 the target's two colours (fill texture or shading).
    col = _colours(rng, 4, {(0, 2): 0.5, (1, 2): 0.35, (2, 3): 0.45, (0, 3): 0.3})
    img = col[0] + (col[1] - col[0]) * _background(rng, h, w)[..., None] * rng.uniform(0.3, 1.0)
    img = img.astype(np.float32)

    # Target: diameter 35-95% of the shorter side, uniform (ILSVRC objects mostly fill a good part
    # of the photograph), centre drawn towards the middle; at most 15% of the radius may stick out
    # past the border, so the object is always recognisable in the full frame.
    diameter = short * rng.uniform(0.35, 0.95)
    radius = diameter / 2
    inside = 0.85 * radius
    cx = w / 2 + (rng.uniform(-0.5, 0.5) + rng.uniform(-0.5, 0.5)) * max(w - 2 * inside, 0.0) / 2
    cy = h / 2 + (rng.uniform(-0.5, 0.5) + rng.uniform(-0.5, 0.5)) * max(h - 2 * inside, 0.0) / 2
    angle = rng.uniform(0, 2 * np.pi)
    stretch = math.exp(rng.uniform(-0.12, 0.12))

    # Clutter: smaller shapes of other classes (or large ones mostly outside the frame) and
    # strokes, drawn before the target or, sometimes, in front of it.
    others = [c for c in _BY_STREAM if c.shape != spec.shape]
    behind: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | float]] = []
    front: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | float]] = []
    for _ in range(int(rng.integers(0, 3))):
        dcol = _colours(rng, 2, {(0, 1): 0.3})
        if rng.random() < 0.3:
            mask, weight = _fragment_mask(rng, h, w), 0.0
        else:
            other = others[int(rng.integers(len(others)))]
            d_angle = rng.uniform(0, 2 * np.pi)
            if rng.random() < 0.25:  # partial: up to 80% of the target's size, centre outside the frame
                d_radius = radius * rng.uniform(0.4, 0.8)
                out_by = d_radius * rng.uniform(0.2, 0.8)
                side = int(rng.integers(4))  # left, right, top, bottom
                if side < 2:
                    d_cx, d_cy = (-out_by if side == 0 else w + out_by), rng.uniform(0, h)
                else:
                    d_cx, d_cy = rng.uniform(0, w), (-out_by if side == 2 else h + out_by)
            else:  # smaller: 15-40% of the target's size
                d_radius = max(radius * rng.uniform(0.15, 0.4), 0.03 * short)
                d_cx, d_cy = rng.uniform(0, w), rng.uniform(0, h)
            mask = _shape_mask(_SHAPES[other.shape](rng), h, w, d_cx, d_cy, d_angle, d_radius, 1.0)
            du, dv = _object_coords(h, w, d_cx, d_cy, d_angle, d_radius)
            fill = ("plain", "plain", "stripes", "checks", "dots")[int(rng.integers(5))]
            weight = _fill(rng, fill, du, dv, d_radius)
        (front if rng.random() < 0.1 else behind).append((mask, dcol[0], dcol[1], weight))

    for layer in behind:
        _composite(img, *layer)
    mask = _shape_mask(_SHAPES[spec.shape](rng), h, w, cx, cy, angle, radius, stretch)
    u, v = _object_coords(h, w, cx, cy, angle, radius)
    _composite(img, mask, col[2], col[3], _fill(rng, spec.fill, u, v, radius))
    for layer in front:
        _composite(img, *layer)
    return _camera(rng, img)


def _frame_size(rng: np.random.Generator, image_size: int) -> tuple[int, int]:
    """``(h, w)``: shorter side ``image_size``, aspect 1 .. :data:`MAX_ASPECT`, either orientation."""
    aspect = math.exp(rng.uniform(0.0, math.log(MAX_ASPECT)))
    if rng.random() < 0.5:  # landscape or portrait, like photographs
        return image_size, round(image_size * aspect)
    return round(image_size * aspect), image_size


def _camera(rng: np.random.Generator, img: np.ndarray) -> Image.Image:
    """Lighting and sensor: a symmetric (zero-mean) brightness ramp and pixel noise, clip, sometimes blur."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * math.cos(a) + (yy - h / 2) * math.sin(a)) / max(h, w)
    img += (rng.uniform(-0.25, 0.25) * ramp)[..., None]
    img += rng.uniform(0.0, 0.04) * rng.standard_normal(img.shape, dtype=np.float32)
    out = Image.fromarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")
    if rng.random() < 0.25:  # out-of-focus shots
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    return out


# ----------------------------------------------------------------------------------------------
# A scene of several objects, with the ground truth a detector is scored against.

# Object diameter range, as fractions of the shorter side, drawn log-uniformly: from COCO-"small"
# (under 32 px at the default 256 px shorter side) to most of the frame, as in ILSVRC DET / COCO.
OBJECT_DIAMETER = (0.05, 0.9)
# A pixel belongs to an object's visible mask when the object's own colour makes up at least this
# share of it after every later layer is composited over it (its over-compositing weight).
VISIBLE_WEIGHT = 0.5


@dataclass(frozen=True)
class SceneObject:
    """One drawn object and what is left of it in the image.

    ``box`` is ``(xmin, ymin, xmax, ymax)``: inclusive, 0-based pixel indices of the tight box
    around ``mask`` (add 1 for the VOC files). ``visible`` is the visible share of the whole
    shape's area: clipping by the border and occlusion by later-drawn objects and clutter both
    count. ``truncated``: the shape crosses the image border; ``occluded``: later layers hide more
    than 5% of the part inside the frame.
    """

    class_index: int
    box: tuple[int, int, int, int]
    visible: float
    truncated: bool
    occluded: bool
    mask: np.ndarray  # (h, w) bool: the object's visible pixels


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    objects: tuple[SceneObject, ...]  # in drawing order (later ones occlude earlier ones)


def _unit_area(polys: list[Polygon]) -> float:
    """Area of a shape drawn with radius 1 and no stretch (stretch keeps area), by rasterising it
    at radius 64: holes and overlapping parts rule out the shoelace formula."""
    return float(_shape_mask(polys, 192, 192, 96.0, 96.0, 0.0, 64.0, 1.0).sum()) / 64.0**2


def render_scene(rng: np.random.Generator, image_size: int, *, classes: int, max_objects: int = 6) -> Scene:
    """A scene of 1..``max_objects`` objects of the first ``classes`` classes (label order of
    :data:`CLASS_SPECS`), shorter side ``image_size``, with each object's visible mask and box.

    Objects get log-uniform sizes (:data:`OBJECT_DIAMETER`), uniform positions (the centre may lie
    a little outside the frame, so objects are cut by the border), random rotations, and are drawn
    one over another in random order. Clutter (strokes, arcs, and shapes of classes outside the
    set) goes behind the objects or, sometimes, in front of them. An object none of whose pixels
    stays visible is left out of ``objects``.
    """
    if not 1 <= classes <= len(CLASS_SPECS):
        raise ValueError(f"classes must be between 1 and {len(CLASS_SPECS)}. Got {classes}")
    h, w = _frame_size(rng, image_size)
    short = float(image_size)
    background = _colours(rng, 2, {})
    img = background[0] + (background[1] - background[0]) * _background(rng, h, w)[..., None] * rng.uniform(
        0.3, 1.0
    )
    img = img.astype(np.float32)
    log_d = (math.log(OBJECT_DIAMETER[0]), math.log(OBJECT_DIAMETER[1]))

    # (mask, colour_a, colour_b, weight, object index or -1 for clutter), in drawing order.
    objects: list[tuple[int, float, bool]] = []  # (class_index, full area in pixels, truncated)
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | float, int]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        class_index = int(rng.integers(classes))
        spec = CLASS_SPECS[class_index]
        radius = short * math.exp(rng.uniform(*log_d)) / 2
        cx, cy = rng.uniform(-0.3 * radius, w + 0.3 * radius), rng.uniform(-0.3 * radius, h + 0.3 * radius)
        angle = rng.uniform(0, 2 * np.pi)
        stretch = math.exp(rng.uniform(-0.12, 0.12))  # as render_image: the classes look the same
        # Colours 0/1 the background pair (fixed), 2/3 the object's, kept apart as in render_image.
        col = _colours(rng, 4, {(0, 2): 0.5, (1, 2): 0.35, (2, 3): 0.45, (0, 3): 0.3}, fixed=background)
        polys = _SHAPES[spec.shape](rng)
        mask = _shape_mask(polys, h, w, cx, cy, angle, radius, stretch)
        u, v = _object_coords(h, w, cx, cy, angle, radius)
        weight = _fill(rng, spec.fill, u, v, radius)
        truncated = any(
            px.min() < 0 or py.min() < 0 or px.max() > w or py.max() > h
            for px, py, value in _placed(polys, cx, cy, angle, radius, stretch)
            if value
        )
        layers.append((mask, col[2], col[3], weight, len(objects)))
        objects.append((class_index, _unit_area(polys) * radius**2, truncated))

    # Clutter that is no object of the set: strokes and arcs, and shapes of the classes after the
    # first ``classes`` (hard negatives: a plain disc when the set has only the striped one).
    others = CLASS_SPECS[classes:]
    behind, front = [], []
    for _ in range(int(rng.integers(1, 6))):
        dcol = _colours(rng, 2, {(0, 1): 0.3})
        if not others or rng.random() < 0.4:
            layer = (_fragment_mask(rng, h, w), dcol[0], dcol[1], 0.0, -1)
        else:
            other = others[int(rng.integers(len(others)))]
            d_radius = short * math.exp(rng.uniform(log_d[0], math.log(0.5))) / 2
            d_cx, d_cy, d_angle = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi)
            d_mask = _shape_mask(_SHAPES[other.shape](rng), h, w, d_cx, d_cy, d_angle, d_radius, 1.0)
            du, dv = _object_coords(h, w, d_cx, d_cy, d_angle, d_radius)
            layer = (d_mask, dcol[0], dcol[1], _fill(rng, other.fill, du, dv, d_radius), -1)
        (front if rng.random() < 0.25 else behind).append(layer)
    layers = behind + layers + front

    for mask, colour_a, colour_b, weight, _ in layers:
        _composite(img, mask, colour_a, colour_b, weight)
    # Each object's share of each final pixel: its coverage times what every later layer lets
    # through (over-compositing), accumulated from the top layer down.
    through = np.ones((h, w), np.float32)
    shares: dict[int, np.ndarray] = {}
    for mask, _, _, _, k in reversed(layers):
        if k >= 0:
            shares[k] = mask * through
        through *= 1.0 - mask
    image = _camera(rng, img)

    found = []
    for k, (class_index, full_area, truncated) in enumerate(objects):
        share, coverage = shares[k], layers[len(behind) + k][0]
        visible = share >= VISIBLE_WEIGHT
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        if rows.size == 0:
            continue
        found.append(
            SceneObject(
                class_index=class_index,
                box=(int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])),
                visible=min(1.0, float(share.sum()) / full_area),
                truncated=truncated,
                occluded=float(share.sum()) < 0.95 * float(coverage.sum()),
                mask=visible,
            )
        )
    return Scene(image, tuple(found))


# ----------------------------------------------------------------------------------------------
# Many images at once.


def _sigint_default() -> None:
    # Ctrl-C reaches the whole process group: the workers die silently (the default action) and the
    # parent raises KeyboardInterrupt, instead of every worker printing a traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def render_in_workers(
    render_chunk: Callable[..., Any], args: Sequence[Any], tasks: list, workers: int
) -> list:
    """``render_chunk(*args, chunk)`` for interleaved chunks of ``tasks``: in-process when
    ``workers <= 1`` or there are few tasks, else in ``workers`` processes. Returns the chunks' results.

    Each image seeds its own stream, so what is drawn does not depend on the chunking.
    """
    if workers <= 1 or len(tasks) < 8:
        return [render_chunk(*args, tasks)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers need only numpy and PIL, and start in milliseconds (spawn would re-import
    # torch through the package). Interleaved chunks balance the load across workers.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    n_chunks = workers * 4
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_sigint_default) as pool:
        columns = [[a] * n_chunks for a in args]
        return list(pool.map(render_chunk, *columns, [tasks[k::n_chunks] for k in range(n_chunks)]))
