"""Section 7 test crops: geometry checked against boxes this file computes by its own arithmetic."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from googlenet.data.datasets import open_image
from googlenet.data.multicrop import (
    crop_boxes_144,
    crop_views,
    multicrop,
    normalize_crops,
    num_crops,
)

SIZE = 32


def coordinate_image(width: int, height: int, seed: int = 0) -> PIL.Image.Image:
    """Every pixel distinct enough to reveal where a crop came from: R = x, G = y, B = noise."""
    rng = np.random.default_rng(seed)
    x = np.broadcast_to(np.arange(width)[None, :] * 255 // max(width - 1, 1), (height, width))
    y = np.broadcast_to(np.arange(height)[:, None] * 255 // max(height - 1, 1), (height, width))
    noise = rng.integers(0, 256, (height, width))
    return PIL.Image.fromarray(np.stack([x, y, noise], -1).astype(np.uint8))


def expected_144(image: PIL.Image.Image, size: int) -> torch.Tensor:
    """The paper's 144 crops, with every box derived here from the paper's text by hand."""
    pixels = F.pil_to_tensor(image)
    width, height = image.size
    views = []
    for paper_side in (256, 288, 320, 352):
        side = round(paper_side * size / 224)
        if width >= height:
            w, h = (side * width) // height, side
        else:
            w, h = side, (side * height) // width
        scaled = F.resize(pixels, [h, w], antialias=True)
        q = min(w, h)
        if width >= height:  # left, centre, right
            origins = [(0, 0), (round((w - q) / 2), 0), (w - q, 0)]
        else:  # top, centre, bottom
            origins = [(0, 0), (0, round((h - q) / 2)), (0, h - q)]
        for x0, y0 in origins:
            square = scaled[:, y0 : y0 + q, x0 : x0 + q]
            c = round((q - size) / 2)
            for dx, dy in [(0, 0), (q - size, 0), (0, q - size), (q - size, q - size), (c, c)]:
                views.append(square[:, dy : dy + size, dx : dx + size])
            views.append(F.resize(square[None], [size, size], antialias=True)[0])
    unmirrored = torch.stack(views)
    return torch.cat([unmirrored, unmirrored.flip(-1)])


def as_uint8(batch: torch.Tensor) -> torch.Tensor:
    return (batch * 255).round().to(torch.uint8)


@pytest.mark.parametrize("width,height", [(90, 60), (60, 90), (70, 70), (61, 97)])
def test_144_crops_match_hand_computed_boxes(width: int, height: int) -> None:
    image = coordinate_image(width, height)
    out = multicrop(image, "144", SIZE)
    assert out.shape == (144, 3, SIZE, SIZE) and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(as_uint8(out), expected_144(image, SIZE))


def test_144_structure_is_4_scales_3_squares_6_views_2_mirrors() -> None:
    views = crop_views(90, 60, "144", SIZE)
    assert len(views) == 144 == 4 * 3 * 6 * 2
    assert len({v.shorter_side for v in views}) == 4
    assert [v.mirrored for v in views] == [False] * 72 + [True] * 72
    assert sum(v.whole_square for v in views) == 4 * 3 * 2
    for v in views:
        left, top, right, bottom = v.box
        w, h = v.resized
        assert 0 <= left < right <= w and 0 <= top < bottom <= h
        if v.whole_square:
            assert right - left == bottom - top == min(w, h)
        else:
            assert right - left == bottom - top == SIZE
    # Landscape: squares move along x only; portrait: along y only.
    assert {b[1] for _, b in crop_boxes_144(90, 60, SIZE)[5::6]} == {0}
    assert {b[0] for _, b in crop_boxes_144(60, 90, SIZE)[5::6]} == {0}
    boxes = crop_boxes_144(90, 60, SIZE)
    assert [s for s, _ in boxes] == [i // 18 for i in range(72)]
    # scale 0 (shorter side 37 -> 55 x 37): left, centre, right squares at x = 0, 9, 18
    assert [b for _, b in boxes[:18:6]] == [(0, 0, 32, 32), (9, 0, 41, 32), (18, 0, 50, 32)]


def test_square_image_keeps_three_coinciding_squares() -> None:
    out = multicrop(coordinate_image(70, 70), "144", SIZE)
    for scale in range(4):
        first = out[18 * scale : 18 * scale + 6]
        assert torch.equal(first, out[18 * scale + 6 : 18 * scale + 12])
        assert torch.equal(first, out[18 * scale + 12 : 18 * scale + 18])


def test_paper_scales_at_224() -> None:
    views = crop_views(500, 375, "144", 224)
    assert sorted({v.shorter_side for v in views}) == [256, 288, 320, 352]
    assert {v.resized for v in views} == {(341, 256), (384, 288), (426, 320), (469, 352)}
    assert [num_crops(s) for s in ("1", "10", "144", 10)] == [1, 10, 144, 10]
    with pytest.raises(ValueError, match="crop scheme"):
        num_crops("12")


@pytest.mark.parametrize("width,height", [(90, 60), (60, 90)])
def test_10_and_1_crops(width: int, height: int) -> None:
    image = coordinate_image(width, height, seed=1)
    side = round(256 * SIZE / 224)  # 37
    w, h = ((side * width) // height, side) if width >= height else (side, (side * height) // width)
    scaled = F.resize(F.pil_to_tensor(image), [h, w], antialias=True)
    cx, cy = round((w - SIZE) / 2), round((h - SIZE) / 2)
    corners = [(0, 0), (w - SIZE, 0), (0, h - SIZE), (w - SIZE, h - SIZE), (cx, cy)]
    five = torch.stack([scaled[:, y : y + SIZE, x : x + SIZE] for x, y in corners])
    ten = multicrop(image, "10", SIZE)
    assert ten.shape == (10, 3, SIZE, SIZE)
    assert torch.equal(as_uint8(ten), torch.cat([five, five.flip(-1)]))
    assert torch.equal(as_uint8(multicrop(image, 1, SIZE)), five[4:])
    # The red channel encodes x: a mirrored crop's red runs right-to-left.
    assert ten[5, 0, 0, 0] > ten[5, 0, 0, -1] and ten[0, 0, 0, 0] < ten[0, 0, 0, -1]


def test_exif_orientation_is_applied(tmp_path) -> None:
    # Upright: 120 x 60, left half red, right half blue. Stored rotated, with EXIF orientation 6
    # ("rotate 90 CW to display"), as phone cameras write it.
    upright = np.zeros((60, 120, 3), np.uint8)
    upright[:, :60, 0] = 255
    upright[:, 60:, 2] = 255
    stored = PIL.Image.fromarray(upright).transpose(PIL.Image.Transpose.ROTATE_90)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    assert PIL.Image.open(path).size == (60, 120)
    ten = multicrop(open_image(path), "10", SIZE)
    tl, tr = ten[0].mean((1, 2)), ten[1].mean((1, 2))
    assert tl[0] > 0.9 and tl[2] < 0.1, tl  # top-left crop is red
    assert tr[2] > 0.9 and tr[0] < 0.1, tr  # top-right crop is blue
    with PIL.Image.open(path) as raw:
        assert torch.equal(multicrop(raw, "10", SIZE), ten)


@pytest.mark.parametrize(
    "mode,value,expected",
    [("L", 128, 128), ("RGBA", (128, 128, 128, 0), 128), ("CMYK", (0, 0, 0, 0), 255), ("I;16", 32768, 128)],
)
def test_modes(mode: str, value, expected: int) -> None:
    image = PIL.Image.new(mode, (50, 40), value)
    out = multicrop(image, "144", SIZE)
    assert out.shape == (144, 3, SIZE, SIZE)
    assert torch.allclose(out, torch.full_like(out, expected / 255), atol=1 / 255)


def test_palette_image() -> None:
    image = PIL.Image.new("P", (50, 40), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    out = multicrop(image, "10", SIZE)
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([10, 200, 30]) / 255)


def test_normalize_crops_from_uint8_and_float() -> None:
    crops = multicrop(coordinate_image(50, 40), "10", SIZE, dtype=torch.uint8)
    assert crops.dtype == torch.uint8
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    want = (crops.double() / 255 - torch.tensor(mean).double().view(1, 3, 1, 1)) / torch.tensor(
        std
    ).double().view(1, 3, 1, 1)
    for source in (crops, crops.float() / 255):
        got = normalize_crops(source, mean, std)
        assert got.dtype == torch.float32 and got.shape == crops.shape
        assert torch.allclose(got.double(), want, atol=1e-5)
    assert crops.dtype == torch.uint8 and int(crops.max()) > 1  # the input is left alone


def test_too_elongated_image_is_refused() -> None:
    strip = PIL.Image.new("RGB", (300_000, 1))  # fine for PIL, 37 x 11,100,000 once resized
    with pytest.raises(ValueError, match="300000x1 is too elongated"):
        multicrop(strip, "1", SIZE)


def test_single_crop_agrees_with_the_eval_transform() -> None:
    # Two implementations of section 7's single crop: PIL resize (data.transforms) and tensor
    # resize (here). Same geometry; the antialiasing filters differ by at most a grey level or two.
    import googlenet
    from googlenet.data.builtin import render_image
    from googlenet.data.transforms import eval_transform

    meta = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False).meta
    picture = render_image(1, np.random.default_rng(0), 96).crop((0, 10, 96, 76))  # 96 x 66, landscape
    reference = eval_transform(meta, SIZE)(picture)
    ours = normalize_crops(multicrop(picture, "1", SIZE, dtype=torch.uint8), meta.mean, meta.std)[0]
    std = torch.tensor(meta.std).view(3, 1, 1)
    assert ours.shape == reference.shape
    assert ((ours - reference) * std).abs().max() <= 3 / 255  # a one-pixel shift gives ~200 / 255


def test_tensor_input() -> None:
    image = coordinate_image(50, 40)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # H x W x 3 memory, as PIL gives
    assert torch.equal(multicrop(pixels, "144", SIZE), multicrop(image, "144", SIZE))
    assert torch.equal(multicrop(pixels.contiguous(), "10", SIZE), multicrop(image, "10", SIZE))
    with pytest.raises(ValueError, match="uint8"):
        multicrop(pixels.float() / 255, "1", SIZE)


def test_geometry_follows_the_model_data_config() -> None:
    # Issue 9 point 2: multi-crop and the eval transform read one data config (resize ratio,
    # interpolation), resolved from the model's metadata; a plain size is the paper's config.
    from dataclasses import replace

    import googlenet
    from googlenet.data.config import resolve_data_config
    from googlenet.data.multicrop import paper_config, scale_sides
    from googlenet.data.transforms import eval_transform

    meta = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False).meta
    assert scale_sides("144", resolve_data_config(meta)) == (256, 288, 320, 352)
    assert scale_sides("1", paper_config(64)) == scale_sides("1", 64) == (73,)
    meta.resize_ratio, meta.interpolation = 1.5, "bicubic"
    config = replace(resolve_data_config(meta), image_size=SIZE)
    assert scale_sides("1", config) == (48,)  # round(32 * 1.5)
    assert scale_sides("144", config) == tuple(round(s * 48 / 256) for s in (256, 288, 320, 352))
    assert crop_views(60, 90, "1", config)[0].resized == (48, 72)
    picture = coordinate_image(90, 60, seed=3)
    reference = eval_transform(meta, SIZE)(picture)  # PIL, bicubic, shorter side 48
    ours = normalize_crops(multicrop(picture, "1", config, dtype=torch.uint8), meta.mean, meta.std)[0]
    std = torch.tensor(meta.std).view(3, 1, 1)
    assert ((ours - reference) * std).abs().max() <= 6 / 255
    bilinear = normalize_crops(
        multicrop(picture, "1", replace(config, interpolation="bilinear")), meta.mean, meta.std
    )
    assert not torch.equal(bilinear, ours[None])  # the filter is the config's, not a fixed bilinear
    with pytest.raises(ValueError, match="Got interpolation 'lanczos'"):
        multicrop(picture, "1", replace(config, interpolation="lanczos"))
