"""Drawing boxes on images: detections (``googlenet detect --draw``, the detector report, paper
section 8) and ground truth (the built-in set's contact sheet). Boxes are inclusive 1-based pixel
indices.

Every box and label is edged in black and every label sits on a filled background, so they read on
light and dark images alike; labels are kept inside the picture and off each other where there is
room (:func:`place_label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .boxes import to_continuous

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
BOX_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
               (204, 121, 167))  # fmt: skip
# Ground truth: dashed white and black, a colour no class has and a line no detection has; it reads on
# light and dark images alike.
GROUND_TRUTH_COLOUR = (255, 255, 255)
GROUND_TRUTH_DASH = 5  # px
DIFFICULT_COLOUR = (200, 200, 200)
EDGE_COLOUR = (0, 0, 0)
# detect --draw enlarges an image whose longer side is below this, so its labels leave room for the
# objects (the built-in set's images are 96-256 px); larger images keep their size.
MIN_DRAWN_SIDE = 480

Rect = tuple[float, float, float, float]


def font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def colour_of(label: int) -> tuple[int, int, int]:
    return BOX_COLOURS[label % len(BOX_COLOURS)]


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    r, g, b = ((c / 255) ** 2.2 for c in background)  # gamma 2.2 approximates sRGB's curve
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else (255, 255, 255)


def fit_into(image: Image.Image, side: int) -> tuple[Image.Image, float]:
    """``image`` scaled (up or down, bicubic) so that its longer side is ``side``, and the scale."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return (image if size == image.size else image.resize(size, Image.BICUBIC)), scale


def _overlap(a: Rect, b: Rect) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_label(box: Rect, size: tuple[float, float], clip: Rect, placed: Sequence[Rect]) -> Rect:
    """Where a label of ``size`` (w, h) goes for ``box``: above its top edge, inside its top, below
    its bottom edge or inside its bottom, left- then right-aligned; the first place inside ``clip``
    that covers no label in ``placed``, else the place inside ``clip`` that covers the least.

    Hand-written: torchvision's draw_bounding_boxes and PIL put every label at its box's corner, cut
    at the image edge and over each other; this greedy search is the usual remedy (labels placed in
    order of importance) without a layout library.
    """
    w, h = size
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = clip
    best: Rect | None = None
    best_cover = float("inf")
    # Next to the box first, then stacked one label further out (crowded boxes share an edge).
    for top in (y0 - h, y0, y1, y1 - h, y0 - 2 * h, y1 + h):
        for left in (x0, x1 - w):
            # Slid into the clip rectangle (a label wider or taller than it starts at its corner).
            lx = max(cx0, min(left, cx1 - w))
            ly = max(cy0, min(top, cy1 - h))
            rect = (lx, ly, lx + w, ly + h)
            cover = sum(_overlap(rect, other) for other in placed)
            moved = (lx, ly) != (left, top)  # slid away from its box: worse than a place that fits
            if cover == 0 and not moved:
                return rect
            if cover + moved * 0.5 < best_cover:
                best, best_cover = rect, cover + moved * 0.5
    assert best is not None
    return best


def _dashes(
    draw: ImageDraw.ImageDraw, rect: Rect, colour: tuple[int, int, int], width: int, dash: int
) -> None:
    # PIL draws no dashed lines: dashes of the colour along each side, the gaps left black.
    x0, y0, x1, y1 = (round(v) for v in rect)
    for x in range(x0, x1 + 1, 2 * dash):
        end = min(x + dash - 1, x1)
        draw.rectangle((x, y0, end, y0 + width - 1), fill=colour)
        draw.rectangle((x, y1 - width + 1, end, y1), fill=colour)
    for y in range(y0, y1 + 1, 2 * dash):
        end = min(y + dash - 1, y1)
        draw.rectangle((x0, y, x0 + width - 1, end), fill=colour)
        draw.rectangle((x1 - width + 1, y, x1, end), fill=colour)


def draw_boxes(
    image: Image.Image,
    boxes: Sequence[Sequence[float]],
    texts: Sequence[str],
    colours: Sequence[tuple[int, int, int]],
    *,
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    widths: Sequence[int] | None = None,
    clip: tuple[float, float, float, float] | None = None,
    text_size: int = 11,
    placed: list[Rect] | None = None,
    dash: int = 0,
) -> Image.Image:
    """Draw each box, edged in black, with its text on a label of the box's colour onto ``image`` in
    place, and return it.

    A box covers the pixel edges it spans, scaled by ``scale`` and moved by ``offset`` (for
    thumbnails pasted into a sheet). Earlier boxes are drawn on top and choose their label's place
    first (:func:`place_label`), so give the most important first; labels stay inside ``clip``
    (default: the image) and off the labels in ``placed``, which gets the new ones. ``dash`` > 0
    draws the boxes dashed (coloured dashes of that length on the black edge).
    """
    draw = ImageDraw.Draw(image)
    face = font(text_size)
    ox, oy = offset
    clip = clip or (0, 0, image.width, image.height)
    placed = [] if placed is None else placed
    # A box's pixel edges, scaled; PIL's rectangle then includes its far corner, hence the - 1.
    edges = to_continuous(boxes) * scale
    rects = [(ox + x0, oy + y0, ox + x1 - 1, oy + y1 - 1) for x0, y0, x1, y1 in edges.tolist()]
    line_widths = list(widths) if widths is not None else [2] * len(rects)
    for rect, colour, width in reversed(list(zip(rects, colours, line_widths, strict=True))):
        x0, y0, x1, y1 = rect
        # A black line each side of the coloured one: the box reads on any background.
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=EDGE_COLOUR, width=width + 2)
        if dash > 0:
            _dashes(draw, rect, colour, width, dash)
        else:
            draw.rectangle(rect, outline=colour, width=width)
    for rect, text, colour in zip(rects, texts, colours, strict=True):
        if not text:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
        pad = 2
        size = (right - left + 2 * pad, bottom - top + 2 * pad)
        label = place_label((rect[0] - 1, rect[1] - 1, rect[2] + 2, rect[3] + 2), size, clip, placed)
        placed.append(label)
        draw.rectangle((label[0], label[1], label[2] - 1, label[3] - 1), fill=colour, outline=EDGE_COLOUR)
        draw.text((label[0] + pad - left, label[1] + pad - top), text, fill=text_colour(colour), font=face)
    return image


def draw_detections(
    image: Image.Image,
    detections: object,
    class_names: Sequence[str],
    *,
    ground_truth: object | None = None,
    min_score: float = 0.0,
    side: int | None = None,
) -> Image.Image:
    """A copy of ``image`` with ``detections`` (a :class:`~.scoring.ScoredBoxes`) scoring at least
    ``min_score`` drawn in their class's colour with ``name score`` (best first), and optionally the
    ground truth (a DetectionTarget) dashed white and black.

    ``side``: the picture's longer side (the image scaled up or down to it); by default an image
    smaller than :data:`MIN_DRAWN_SIDE` is enlarged to it and a larger one keeps its size.
    """
    rgb = image.convert("RGB")
    out, scale = fit_into(rgb, side if side is not None else max(MIN_DRAWN_SIDE, *rgb.size))
    longer = max(out.size)
    # Lines and text grow with large pictures, so they stay visible in a thumbnail of them.
    width, text_size = max(2, round(longer / 240)), max(11, round(longer / 40))
    if ground_truth is not None and len(ground_truth.boxes):
        n = len(ground_truth.boxes)
        draw_boxes(out, ground_truth.boxes.tolist(), [""] * n, [GROUND_TRUTH_COLOUR] * n, scale=scale,
                   widths=[width] * n, dash=GROUND_TRUTH_DASH)  # fmt: skip
    scores = [float(s) for s in detections.scores]
    keep = sorted((i for i, s in enumerate(scores) if s >= min_score), key=lambda i: -scores[i])
    draw_boxes(
        out,
        [detections.boxes[i].tolist() for i in keep],
        [f"{class_names[int(detections.labels[i])]} {scores[i]:.2f}" for i in keep],
        [colour_of(int(detections.labels[i])) for i in keep],
        scale=scale,
        widths=[width] * len(keep),
        text_size=text_size,
    )
    return out


def drawn_image_path(folder: str | Path, image_path: str | Path, taken: set[Path]) -> Path:
    """``folder/<stem>.png`` for a drawn image, ``<stem>_2.png`` ... when images of two folders share
    a stem (both survive); ``taken`` holds the paths already given and gets this one."""
    stem = Path(image_path).stem
    out, n = Path(folder) / f"{stem}.png", 1
    while out in taken:
        n += 1
        out = Path(folder) / f"{stem}_{n}.png"
    taken.add(out)
    return out
