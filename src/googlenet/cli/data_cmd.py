"""``googlenet data``: dataset commands. ``data make-builtin DIR`` writes the built-in set,
``data make-builtin-detection DIR`` the built-in detection set.

The built-in set (:mod:`googlenet.data.builtin`) is the project's stand-in for ILSVRC 2012
(paper section 5); ``--data builtin`` in other commands makes the same set in the cache. The
built-in detection set (:mod:`googlenet.detection.builtin`, PASCAL VOC layout) stands in for
ILSVRC 2014 DET (section 8).
"""

from __future__ import annotations

import argparse
import time

from .common import add_out_argument, positional_or_flag

# The library's flag names, so its errors name what the user typed.
_FLAGS = {
    "classes": "--classes",
    "train_per_class": "--train-per-class",
    "val_per_class": "--val-per-class",
    "image_size": "--image-size",
    "seed": "--seed",
    "workers": "--workers",
}
_DETECTION_FLAGS = {
    "classes": "--classes",
    "train_images": "--train-images",
    "val_images": "--val-images",
    "image_size": "--image-size",
    "seed": "--seed",
    "workers": "--workers",
}


ORDER = 20  # googlenet --help lists the commands by layer (data)


def add_dir_arguments(p: argparse.ArgumentParser) -> None:
    """The output directory, as the positional DIR or as -o/--out DIR (the other commands' flag)."""
    what = "output directory (must be empty or hold the same set)"
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help=what)
    add_out_argument(p, dest="dir_flag", metavar="DIR", default=None, help=f"{what}; the same as DIR")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset tools (the built-in procedurally generated set)")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    m = data_sub.add_parser(
        "make-builtin",
        help="write the built-in dataset (JPEG, ImageFolder layout) into DIR",
        description="Write the built-in dataset into DIR: DIR/train/<class>/*.jpg, DIR/val/<class>/*.jpg, "
        "DIR/classes.txt, DIR/builtin.json. A DIR holding the same set is reused; any other non-empty "
        "DIR is refused (nothing is deleted).",
    )
    add_dir_arguments(m)
    m.add_argument("--classes", type=int, default=10, help="number of classes, the first K (default 10)")
    m.add_argument("--train-per-class", type=int, default=500, help="training images per class (default 500)")
    m.add_argument("--val-per-class", type=int, default=100, help="validation images per class (default 100)")
    m.add_argument("--image-size", type=int, default=128, help="shorter side, pixels (default 128, min 32)")
    m.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    m.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, CPUs))")
    m.set_defaults(func=run_make_builtin)

    from ..detection.builtin import DEFAULT_DETECTION_PARAMS as det

    d = data_sub.add_parser(
        "make-builtin-detection",
        help="write the built-in detection set (JPEG, PASCAL VOC layout) into DIR",
        description="Write the built-in detection set into DIR: DIR/Annotations/<id>.xml, "
        "DIR/JPEGImages/<id>.jpg, DIR/ImageSets/Main/{train,val}.txt, DIR/classes.txt, "
        "DIR/builtin_detection.json. A DIR holding the same set is reused; any other non-empty DIR is "
        "refused (nothing is deleted).",
    )
    add_dir_arguments(d)
    d.add_argument("--seed", type=int, default=det["seed"], help=f"generation seed (default {det['seed']})")
    d.add_argument(
        "--classes",
        type=int,
        default=det["classes"],
        help=f"object classes, the first K (default {det['classes']})",
    )
    d.add_argument(
        "--train-images",
        type=int,
        default=det["train_images"],
        help=f"training images (default {det['train_images']})",
    )
    d.add_argument(
        "--val-images",
        type=int,
        default=det["val_images"],
        help=f"validation images (default {det['val_images']})",
    )
    d.add_argument(
        "--image-size",
        type=int,
        default=det["image_size"],
        help=f"shorter side, pixels (default {det['image_size']})",
    )
    d.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, CPUs))")
    d.set_defaults(func=run_make_builtin_detection)


def run_make_builtin(args: argparse.Namespace) -> int:
    from ..data.builtin import check_params, is_complete, make_builtin, read_builtin_info

    args.dir = positional_or_flag(args, "dir", "--out", "DIR")
    params = {k: getattr(args, k) for k in _FLAGS}
    full = check_params(params, names=_FLAGS)  # errors name the flag, e.g. "--classes 1: ..."
    t0 = time.perf_counter()
    reused = is_complete(args.dir, full)
    root = make_builtin(args.dir, workers=args.workers, **full)
    info = read_builtin_info(root) or {}
    counts = info.get("counts", {})
    verb = "reused existing" if reused else "wrote"
    print(
        f"{verb} built-in set {root}: {full['classes']} classes, {counts.get('train')} train / "
        f"{counts.get('val')} val images, shorter side {full['image_size']} px, seed {full['seed']} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0


def run_make_builtin_detection(args: argparse.Namespace) -> int:
    from ..detection.builtin import (
        check_detection_params,
        is_complete,
        make_builtin_detection,
        read_detection_info,
    )

    args.dir = positional_or_flag(args, "dir", "--out", "DIR")
    params = {k: getattr(args, k) for k in _DETECTION_FLAGS}
    full = check_detection_params(params, names=_DETECTION_FLAGS)  # errors name the flag
    t0 = time.perf_counter()
    reused = is_complete(args.dir, full)
    root = make_builtin_detection(args.dir, workers=args.workers, **full)
    stats = (read_detection_info(root) or {}).get("statistics", {})
    objects = {split: stats.get(split, {}).get("objects") for split in ("train", "val")}
    verb = "reused existing" if reused else "wrote"
    print(
        f"{verb} built-in detection set {root}: {full['classes']} classes, {full['train_images']} train / "
        f"{full['val_images']} val images ({objects['train']} / {objects['val']} objects), shorter side "
        f"{full['image_size']} px, seed {full['seed']} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0
