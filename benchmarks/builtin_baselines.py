"""How hard is the built-in dataset? Three baselines on its validation split.

(a) multinomial logistic regression on raw pixels (each image squashed to 32x32),
(b) a small convnet at 64x64 with random-resized-crop + flip augmentation (the paper's section 6
    sampling, milder), evaluated on the centre crop (section 7's single-crop protocol),
(c) logistic regression on the mean RGB colour of each image alone.

A set that (a) solves is a toy; one where (c) beats chance leaks the label through colour. The
numbers go into docs/builtin_dataset.md. Run from the repository root::

    timeout 900 .venv/bin/python benchmarks/builtin_baselines.py            # the default set
    .venv/bin/python benchmarks/builtin_baselines.py --contact-sheet docs/img/builtin_samples.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common as C
import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from googlenet.data.builtin import contact_sheet, resolve_data


def load_split(root: Path, split: str, classes: list[str]) -> tuple[list[Image.Image], torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / split / name).glob("*.jpg")):
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            labels.append(label)
    return images, torch.tensor(labels)


def squash(images: list[Image.Image], size: int) -> torch.Tensor:
    """N x 3*size*size floats: the whole image resized (aspect ignored) so nothing is cropped away."""
    arr = np.stack([np.asarray(im.resize((size, size), Image.BILINEAR)) for im in images])
    return torch.from_numpy(arr).float().div(255).flatten(1)


def mean_colour(images: list[Image.Image]) -> torch.Tensor:
    return torch.tensor(np.stack([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) / 255 for im in images]))


def logistic_regression(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    l2: float,
    steps: int,
) -> tuple[float, float]:
    """Full-batch L-BFGS on standardised features; returns (train error, val error)."""
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    xt, xv = (x_train - mu) / sd, (x_val - mu) / sd
    k = int(y_train.max()) + 1
    model = nn.Linear(xt.shape[1], k)
    opt = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt), y_train) + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (
            (model(xt).argmax(1) != y_train).float().mean().item(),
            (model(xv).argmax(1) != y_val).float().mean().item(),
        )


def small_convnet(num_classes: int, width: int) -> nn.Sequential:
    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    # A strided stem, as GoogLeNet's conv1 (7x7/2): full-resolution layers dominate CPU time.
    return nn.Sequential(
        *block(3, w, stride=2), *block(w, 2 * w), nn.MaxPool2d(2),  # 16 at 64 input
        *block(2 * w, 4 * w), *block(4 * w, 4 * w), nn.MaxPool2d(2),  # 8
        *block(4 * w, 8 * w), *block(8 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes),
    )  # fmt: skip


def train_convnet(
    train_images: list[Image.Image],
    y_train: torch.Tensor,
    val_images: list[Image.Image],
    y_val: torch.Tensor,
    *,
    size: int,
    epochs: int,
    width: int,
    batch: int,
    lr: float,
    seed: int,
) -> tuple[float, float, float]:
    """Returns (last-epoch train error on augmented batches, val error on the centre crop, seconds)."""
    torch.manual_seed(seed)
    resize = round(size / 0.875)  # ImageNet's 256 -> 224 ratio
    to_tensor = v2.Compose([v2.PILToTensor()])
    # Decode and shrink once; augment the small uint8 tensors every epoch.
    train_small = [to_tensor(v2.functional.resize(im, resize)) for im in train_images]
    centre = v2.Compose([v2.Resize(resize), v2.CenterCrop(size), v2.PILToTensor()])
    val_x = torch.stack([centre(im) for im in val_images])
    augment = v2.Compose(
        [v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    )
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)

    def prep(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - mean) / 0.25

    model = small_convnet(int(y_train.max()) + 1, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * ((len(train_small) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    t0 = time.perf_counter()
    train_err = float("nan")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_small))
        wrong = 0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x = prep(torch.stack([augment(train_small[j]) for j in idx.tolist()]))
            y = y_train[idx]
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            wrong += (logits.argmax(1) != y).sum().item()
        train_err = wrong / len(order)
        seconds = time.perf_counter() - t0
        print(f"  epoch {epoch + 1}/{epochs}: train error {train_err:.3f} ({seconds:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(prep(val_x[i : i + 256])).argmax(1) for i in range(0, len(val_x), 256)])
    return train_err, (pred != y_val).float().mean().item(), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", default="builtin", help="'builtin' (the default set, cached) or a dataset directory"
    )
    p.add_argument("--classes", type=int, default=10, help="built-in set only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--width", type=int, default=16, help="convnet base width (channels of the first layer)")
    p.add_argument("--size", type=int, default=64, help="convnet input size")
    p.add_argument(
        "--lr-size", type=int, default=32, help="side of the squashed image for pixel logistic regression"
    )
    p.add_argument("--only", choices=["pixels", "colour", "convnet"], action="append", help="run only these")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--contact-sheet", type=Path, help="write a PNG grid of training images here and exit")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = C.environment()
    root = (
        resolve_data(args.data, classes=args.classes) if args.data == "builtin" else resolve_data(args.data)
    )
    if args.contact_sheet:
        print(contact_sheet(root, args.contact_sheet, per_class=8, thumb=96))
        return
    classes = (root / "classes.txt").read_text().split()
    t0 = time.perf_counter()
    train_images, y_train = load_split(root, "train", classes)
    val_images, y_val = load_split(root, "val", classes)
    print(
        f"{root}: {len(train_images)} train / {len(val_images)} val images, {len(classes)} classes "
        f"(chance error {1 - 1 / len(classes):.3f}); loaded in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    only = set(args.only or ["pixels", "colour", "convnet"])
    results: dict[str, dict[str, float]] = {}
    if "colour" in only:
        tr, va = logistic_regression(
            mean_colour(train_images), y_train, mean_colour(val_images), y_val, l2=1e-4, steps=200
        )
        results["mean_colour_logreg"] = {"train_error": tr, "val_error": va}
        print(f"(c) mean-colour logistic regression: train error {tr:.3f}, val error {va:.3f}", flush=True)
    if "pixels" in only:
        t = time.perf_counter()
        tr, va = logistic_regression(
            squash(train_images, args.lr_size),
            y_train,
            squash(val_images, args.lr_size),
            y_val,
            l2=1e-3,
            steps=300,
        )
        results["pixel_logreg"] = {"train_error": tr, "val_error": va, "seconds": time.perf_counter() - t}
        print(
            f"(a) pixel logistic regression ({args.lr_size}x{args.lr_size}): train error {tr:.3f}, "
            f"val error {va:.3f}",
            flush=True,
        )
    if "convnet" in only:
        tr, va, sec = train_convnet(
            train_images,
            y_train,
            val_images,
            y_val,
            size=args.size,
            epochs=args.epochs,
            width=args.width,
            batch=64,
            lr=3e-3,
            seed=args.seed,
        )
        results["convnet"] = {"train_error": tr, "val_error": va, "seconds": sec}
        print(
            f"(b) convnet ({args.size}px, width {args.width}, {args.epochs} epochs, {sec:.0f} s): "
            f"train error {tr:.3f}, val error {va:.3f}",
            flush=True,
        )
    if args.json:
        meta = {
            "data": str(root),
            "classes": len(classes),
            "seed": args.seed,
            "epochs": args.epochs,
            "width": args.width,
            "size": args.size,
            "threads": args.threads,
        }
        env["load_average_after"] = C.load_average()
        C.write_json(args.json, {"meta": meta, "environment": env, "results": results})


if __name__ == "__main__":
    main()
