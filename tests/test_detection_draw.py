"""Drawn detections (``detect --draw``, the detector report's grid): boxes that read on light and dark
images, ground truth told apart from detections, labels inside the picture and off each other, small
images enlarged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from googlenet.detection.datasets import DetectionTarget
from googlenet.detection.draw import (
    BOX_COLOURS,
    MIN_DRAWN_SIDE,
    draw_detections,
    place_label,
    text_colour,
)
from googlenet.detection.scoring import ScoredBoxes

NAMES = ["disc", "square", "triangle", "star"]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def test_labels_stay_inside_the_picture_and_off_each_other() -> None:
    clip = (0.0, 0.0, 200.0, 150.0)
    placed: list[tuple[float, float, float, float]] = []
    # Three detections of one object, the box touching the top edge: no room above it.
    for _ in range(3):
        placed.append(place_label((10.0, 0.0, 120.0, 100.0), (60.0, 14.0), clip, placed))
    # A box at the right edge whose label is wider than the room right of its left side.
    placed.append(place_label((170.0, 40.0, 200.0, 90.0), (80.0, 14.0), clip, placed))
    for label in placed:
        assert clip[0] <= label[0] and label[2] <= clip[2] and clip[1] <= label[1] and label[3] <= clip[3]
    assert all(_overlap(a, b) == 0 for i, a in enumerate(placed) for b in placed[i + 1 :]), placed
    # With room above the box, the label sits right on its top edge, left-aligned.
    assert place_label((10.0, 50.0, 120.0, 100.0), (60.0, 14.0), clip, []) == (10.0, 36.0, 70.0, 50.0)


def test_label_text_contrasts_with_its_colour() -> None:
    assert text_colour((240, 228, 66)) == (0, 0, 0)  # yellow label: black text
    assert text_colour((0, 114, 178)) == (255, 255, 255)  # blue label: white text
    assert {text_colour(c) for c in BOX_COLOURS} == {(0, 0, 0), (255, 255, 255)}


@pytest.mark.parametrize("background", [255, 0])
def test_boxes_read_on_white_and_on_black(background: int) -> None:
    image = Image.new("RGB", (100, 80), (background,) * 3)
    truth = DetectionTarget(
        image_id="x",
        boxes=np.array([[11.0, 11.0, 50.0, 40.0]]),
        labels=np.array([1]),
        difficult=np.array([False]),
        width=100,
        height=80,
    )
    found = ScoredBoxes(
        boxes=np.array([[61.0, 1.0, 100.0, 60.0], [20.0, 50.0, 40.0, 70.0]]),
        labels=np.array([3, 0]),
        scores=np.array([0.9, 0.1]),
    )
    drawn = draw_detections(image, found, NAMES, ground_truth=truth, min_score=0.3)
    # A small image is enlarged so that its labels leave room for the objects.
    assert max(drawn.size) == MIN_DRAWN_SIDE and drawn.size[0] / drawn.size[1] == pytest.approx(100 / 80)
    pixels = np.asarray(drawn)
    scale = MIN_DRAWN_SIDE / 100
    # Ground truth: white dashes on a black edge, both visible whatever the background.
    top = pixels[round(10 * scale), round(10 * scale) : round(50 * scale)]
    assert (top == 255).all(axis=1).sum() > 20 and (top == 0).all(axis=1).sum() > 20
    # The detection in its class's colour (yellow, label 3), edged in black; the one under
    # min_score is not drawn.
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert BOX_COLOURS[3] in colours and BOX_COLOURS[0] not in colours
    right = pixels[round(30 * scale), round(60 * scale) - 3 : round(60 * scale) + 3]
    assert (right == BOX_COLOURS[3]).all(axis=1).any() and (right == 0).all(axis=1).any()
    # side= scales to a cell (the report's grid), down as well as up.
    assert draw_detections(image, found, NAMES, side=50).size == (50, 40)
