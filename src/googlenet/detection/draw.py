"""Drawing boxes on images: detections (``googlenet detect --draw``, the detector report) and ground
truth (the built-in set's contact sheet). Boxes are inclusive 1-based pixel indices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .boxes import to_continuous

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
BOX_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
               (204, 121, 167))  # fmt: skip
GROUND_TRUTH_COLOUR = (255, 255, 255)
DIFFICULT_COLOUR = (200, 200, 200)


def font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def colour_of(label: int) -> tuple[int, int, int]:
    return BOX_COLOURS[label % len(BOX_COLOURS)]


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
) -> Image.Image:
    """Draw each box with its text (on a black label) onto ``image`` in place, and return it.

    A box covers the pixel edges it spans, scaled by ``scale`` and moved by ``offset`` (for
    thumbnails pasted into a sheet); labels stay inside ``clip`` (default: the image).
    """
    draw = ImageDraw.Draw(image)
    face = font()
    ox, oy = offset
    cx0, cy0, cx1, _ = clip or (0, 0, image.width, image.height)
    # A box's pixel edges, scaled; PIL's rectangle then includes its far corner, hence the - 1.
    edges = to_continuous(boxes) * scale
    for k, ((x0, y0, x1, y1), text, colour) in enumerate(zip(edges.tolist(), texts, colours, strict=True)):
        box = (ox + x0, oy + y0, ox + x1 - 1, oy + y1 - 1)
        draw.rectangle(box, outline=colour, width=widths[k] if widths is not None else 2)
        if not text:
            continue
        width = draw.textlength(text, font=face)
        tx = max(cx0, min(box[0] + 2, cx1 - width - 1))
        ty = max(box[1] - 12, cy0)
        left, top, right, bottom = draw.textbbox((tx, ty), text, font=face)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=colour, font=face)
    return image


def draw_detections(
    image: Image.Image,
    detections: object,
    class_names: Sequence[str],
    *,
    ground_truth: object | None = None,
    min_score: float = 0.0,
) -> Image.Image:
    """A copy of ``image`` with ``detections`` (a :class:`~.scoring.ScoredBoxes`) drawn in their
    class's colour with ``name score``, and optionally the ground truth (a DetectionTarget) in white."""
    out = image.convert("RGB").copy()
    if ground_truth is not None and len(ground_truth.boxes):
        n = len(ground_truth.boxes)
        draw_boxes(out, ground_truth.boxes.tolist(), [""] * n, [GROUND_TRUTH_COLOUR] * n, widths=[1] * n)
    keep = [i for i, s in enumerate(detections.scores) if s >= min_score]
    draw_boxes(
        out,
        [detections.boxes[i].tolist() for i in keep],
        [f"{class_names[int(detections.labels[i])]} {detections.scores[i]:.2f}" for i in keep],
        [colour_of(int(detections.labels[i])) for i in keep],
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
