"""Tests for googlenet.data.transforms: the section 6 training recipe and the section 7 centre crop."""

from __future__ import annotations

import collections

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from googlenet import create_model
from googlenet.data.transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    AugmentConfig,
    PCALighting,
    RandomInterpolationResizedCrop,
    ToRGB,
    eval_transform,
    normalize,
    train_transform,
)

SIZE = 32


@pytest.fixture(scope="module")
def metas():
    return {name: create_model(name, aux_logits=False).meta for name in ("googlenet", "googlenet_bn")}


def noise_image(height: int = 40, width: int = 56, seed: int = 0) -> PIL.Image.Image:
    rng = np.random.RandomState(seed)
    return PIL.Image.fromarray(rng.randint(0, 256, (height, width, 3), dtype=np.uint8))


def unnormalize(x: torch.Tensor, meta) -> torch.Tensor:
    mean = torch.tensor(meta.mean).view(3, 1, 1)
    std = torch.tensor(meta.std).view(3, 1, 1)
    return x * std + mean


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_train_transform_output_is_normalised_float_chw(metas, name):
    meta = metas[name]
    transform = train_transform(meta, SIZE)
    torch.manual_seed(0)
    for seed in range(5):
        x = transform(noise_image(seed=seed))
        assert type(x) is torch.Tensor
        assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
        pixels = unnormalize(x, meta)
        # Lighting is clamped, so undoing the normalisation gives back an image in [0, 1].
        assert pixels.min() >= -1e-4 and pixels.max() <= 1 + 1e-4
    if name == "googlenet":  # Caffe preprocessing: 0-255 pixels minus the mean
        assert x.abs().max() > 2


def test_train_transform_is_deterministic_under_torch_seed(metas):
    transform = train_transform(metas["googlenet"], SIZE)
    image = noise_image()
    torch.manual_seed(123)
    a = [transform(image) for _ in range(4)]
    torch.manual_seed(123)
    b = [transform(image) for _ in range(4)]
    torch.manual_seed(124)
    c = [transform(image) for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_crop_area_and_aspect_ratio_stay_in_section6_bounds():
    crop = RandomInterpolationResizedCrop(SIZE)
    image = PIL.Image.new("RGB", (560, 400))
    torch.manual_seed(0)
    areas, ratios = [], []
    for _ in range(2000):
        p = crop.make_params([image])
        areas.append(p["height"] * p["width"] / (400 * 560))
        ratios.append(p["width"] / p["height"])
    # Rounding h and w to pixels moves the ratio by at most ~1/h (h >= ~130 here).
    assert min(areas) >= 0.08 - 0.003 and max(areas) <= 1.0
    assert min(ratios) >= 3 / 4 - 0.01 and max(ratios) <= 4 / 3 + 0.01
    # The whole range is used, not just a corner of it.
    assert min(areas) < 0.1 and max(areas) > 0.9
    assert min(ratios) < 0.77 and max(ratios) > 1.3


def test_all_four_interpolations_are_drawn_and_used():
    crop = RandomInterpolationResizedCrop(SIZE)
    image = noise_image(80, 96)
    torch.manual_seed(0)
    counts = collections.Counter()
    outputs = {}
    modes = {"bilinear": "bilinear", "area": "box", "nearest": "nearest", "bicubic": "bicubic"}
    for _ in range(400):
        params = crop.make_params([image])
        counts[params["interpolation"]] += 1
        out = crop.transform(image, params)
        box = {k: params[k] for k in ("top", "left", "height", "width")}
        expected = F.resized_crop(
            image, **box, size=[SIZE, SIZE], interpolation=modes[params["interpolation"]]
        )
        assert np.array_equal(np.asarray(out), np.asarray(expected))
        outputs.setdefault(params["interpolation"], (box, np.asarray(out)))
    assert set(counts) == {"bilinear", "area", "nearest", "bicubic"}
    assert min(counts.values()) > 60  # 100 expected each
    # The four filters give different pixels for the same crop.
    box = outputs["nearest"][0]
    results = [
        np.asarray(crop.transform(image, {**box, "interpolation": name})).astype(int) for name in modes
    ]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(results[i] - results[j]).sum() > 0


def test_area_on_tensors_is_average_pooling():
    crop = RandomInterpolationResizedCrop(8)
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    params = {"top": 4, "left": 10, "height": 16, "width": 16, "interpolation": "area"}
    out = crop.transform(image, params)
    expected = (
        torch.nn.functional.avg_pool2d(image[:, 4:20, 10:26].float()[None], 2)[0].round().to(torch.uint8)
    )
    assert out.dtype == torch.uint8 and torch.equal(out, expected)


def test_pca_lighting_adds_small_zero_mean_per_channel_offsets():
    lighting = PCALighting(0.1)
    image = torch.full((3, 8, 8), 0.5)
    torch.manual_seed(0)
    offsets = []
    for _ in range(500):
        out = lighting(image)
        delta = out - image
        # One offset per channel, the same at every pixel.
        assert torch.allclose(delta, delta[:, :1, :1].expand_as(delta), atol=1e-6)
        offsets.append(delta[:, 0, 0])
    offsets = torch.stack(offsets)
    assert offsets.abs().max() < 0.12 and offsets.abs().max() > 0.01
    assert offsets.mean(0).abs().max() < 0.003
    # Spread along the first eigenvector: std = 0.1 * eigval * |eigvec column| (~0.0125 for R).
    expected_std = 0.1 * (torch.tensor(IMAGENET_EIGVEC) ** 2 @ torch.tensor(IMAGENET_EIGVAL) ** 2).sqrt()
    assert torch.allclose(offsets.std(0), expected_std, rtol=0.15)
    assert torch.equal(PCALighting(0.0)(image), image)


def test_pca_lighting_rejects_uint8_and_bad_arguments():
    with pytest.raises(TypeError, match=r"Got dtype torch\.uint8"):
        PCALighting()(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="Got -1"):
        PCALighting(-1)
    with pytest.raises(ValueError, match="Got"):
        PCALighting(eigval=(1.0, 2.0))
    assert repr(PCALighting()) == (
        "PCALighting(alphastd=0.1, eigval=(0.2175, 0.0188, 0.0045), eigvec=((-0.5675, 0.7192, 0.4009), "
        "(-0.5808, -0.0045, -0.814), (-0.5836, -0.6948, 0.4203)))"
    )


def test_every_switch_off_is_a_plain_random_resized_crop(metas):
    meta = metas["googlenet_bn"]
    off = AugmentConfig(random_interpolation=False, photometric=False, hflip=False)
    transform = train_transform(meta, SIZE, augment=off)
    plain = v2.Compose(
        [
            v2.RandomResizedCrop(SIZE, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(meta.mean), list(meta.std)),
        ]
    )
    image = noise_image()
    for seed in range(5):
        torch.manual_seed(seed)
        a = transform(image)
        torch.manual_seed(seed)
        b = plain(image)
        assert torch.equal(a, b)
    text = repr(transform)
    for name in ("ColorJitter", "PCALighting", "RandomHorizontalFlip", "RandomInterpolationResizedCrop"):
        assert name not in text
    full = repr(train_transform(meta, SIZE))
    for name in ("ColorJitter", "PCALighting", "RandomHorizontalFlip", "RandomInterpolationResizedCrop"):
        assert name in full
    assert "PCALighting" not in repr(train_transform(meta, SIZE, augment=AugmentConfig(lighting=0)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": (0.0, 1.0)}, r"Got \(0.0, 1.0\)"),
        ({"scale": (0.5, 1.5)}, r"Got \(0.5, 1.5\)"),
        ({"ratio": (4 / 3, 3 / 4)}, "Got"),
        ({"brightness": -0.1}, "Got -0.1"),
        ({"saturation": 2.0}, "Got 2.0"),
    ],
)
def test_augment_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**kwargs)


def test_bad_arguments_say_got(metas):
    with pytest.raises(ValueError, match="Got 0"):
        train_transform(metas["googlenet"], 0)
    with pytest.raises(ValueError, match="Got 'lanczos'"):
        RandomInterpolationResizedCrop(SIZE, interpolations=("bilinear", "lanczos"))
    assert "interpolations=('bilinear', 'area', 'nearest', 'bicubic')" in repr(
        RandomInterpolationResizedCrop(8)
    )
    assert repr(ToRGB()) == "ToRGB()"


def test_normalize_matches_meta(metas):
    meta = metas["googlenet"]
    x = torch.full((3, 2, 2), 123 / 255)
    y = normalize(meta)(x)
    assert torch.allclose(y[0], torch.zeros(2, 2), atol=1e-4)  # R mean is 123 on 0-255
    assert torch.allclose(y[1], torch.full((2, 2), 6.0), atol=1e-3)  # 123 - 117


def _save(image: PIL.Image.Image, path, **kwargs) -> PIL.Image.Image:
    image.save(path, **kwargs)
    return PIL.Image.open(path)


def test_eval_transform_handles_shapes_and_modes(metas, tmp_path):
    meta = metas["googlenet_bn"]
    transform = eval_transform(meta, SIZE)
    rgb = noise_image(40, 56)
    images = {
        "landscape": _save(rgb, tmp_path / "landscape.jpg"),
        "portrait": _save(noise_image(56, 40), tmp_path / "portrait.png"),
        "grayscale": _save(rgb.convert("L"), tmp_path / "gray.png"),
        "rgba": _save(rgb.convert("RGBA"), tmp_path / "rgba.png"),
        "palette": _save(rgb.convert("P"), tmp_path / "palette.png"),
        "cmyk": _save(rgb.convert("CMYK"), tmp_path / "cmyk.jpg"),
        "gray16": _save(PIL.Image.fromarray(np.full((40, 56), 32768, np.uint16)), tmp_path / "g16.png"),
    }
    assert images["gray16"].mode.startswith("I")
    outputs = {}
    for name, image in images.items():
        x = transform(image)
        assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32, name
        outputs[name] = unnormalize(x, meta)
    assert torch.allclose(outputs["grayscale"][0], outputs["grayscale"][2], atol=1e-5)
    # 16-bit mid-grey stays mid-grey rather than clipping to white.
    assert abs(outputs["gray16"].mean().item() - 128 / 255) < 0.01
    # RGBA and palette versions of the same picture give (almost) the same pixels as the RGB PNG.
    reference = unnormalize(transform(rgb), meta)
    assert torch.allclose(outputs["rgba"], reference, atol=1e-5)
    assert (outputs["palette"] - reference).abs().mean() < 0.1


def test_eval_transform_resizes_shorter_side_then_centre_crops(metas):
    meta = metas["googlenet_bn"]
    # Left quarter red, the rest blue: after resize (shorter side 37) and a centre 32 crop of the
    # 37 x 52 image, columns 0..2 of the crop come from x in [10, 13) of the resize -> still red
    # only if the crop starts at (52 - 32) // 2 = 10 and red covers 52 / 4 = 13 columns.
    array = np.zeros((40, 56, 3), np.uint8)
    array[:, :14, 0] = 255
    array[:, 14:, 2] = 255
    x = unnormalize(eval_transform(meta, SIZE)(PIL.Image.fromarray(array)), meta)
    assert x[0, :, 0].min() > 0.9 and x[2, :, 0].max() < 0.1
    assert x[2, :, 5:].min() > 0.9
    assert round(SIZE * meta.resize_ratio) == 37


def test_eval_transform_applies_exif_orientation(metas, tmp_path):
    meta = metas["googlenet_bn"]
    array = np.zeros((40, 56, 3), np.uint8)
    array[:20] = 255  # stored: top half white
    image = PIL.Image.fromarray(array)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    rotated = _save(image, tmp_path / "rotated.jpg", exif=exif, quality=95)
    plain = _save(image, tmp_path / "plain.jpg", quality=95)
    transform = eval_transform(meta, SIZE)
    r = unnormalize(transform(rotated), meta).mean(0)
    p = unnormalize(transform(plain), meta).mean(0)
    # Displayed upright, the white half is on the right.
    assert r[:, -4:].mean() > 0.9 and r[:, :4].mean() < 0.1
    assert p[:4].mean() > 0.9 and p[-4:].mean() < 0.1
