"""``googlenet train-multibox``: train the MultiBox proposal network (paper section 8, Erhan et al. 2014).

Wiring only: :mod:`googlenet.detection.multibox` computes. The folder written by ``--out`` is what
``googlenet proposals --method multibox|paper --multibox DIR`` reads; docs/detection.md
("MultiBox") lists its files and the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from .common import add_out_argument

# Flag -> (config field, type, help); the defaults are the config dataclass's, shown in --help.
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--model", "model", str, "registered variant for a fresh backbone (ignored with --init-from)"),
    ("--num-priors", "num_priors", int, "K: boxes predicted per image (k-means priors)"),
    ("--alpha", "alpha", float, "weight of F_match in F = F_conf + alpha F_match"),
    ("--nms-iou", "nms_iou", float, "IoU above which a lower-scoring proposal is suppressed"),
    ("--epochs", "epochs", int, "epochs to train (with --resume: the new total)"),
    ("--batch-size", "batch_size", int, "images per step"),
    ("--lr", "lr", float, "Adam learning rate"),
    ("--image-size", "image_size", int, "side the whole image is warped to"),
    ("--seed", "seed", int, "seed of the priors, the initial weights, the data order and the flips"),
    ("--workers", "workers", int, "DataLoader worker processes"),
    ("--train-split", "train_split", str, "split to train on"),
    ("--top", "top", int, "proposals per image kept for the validation coverage (section 8: 200)"),
)


ORDER = 61  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.multibox import MultiBoxTrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(MultiBoxTrainConfig)}
    p = sub.add_parser(
        "train-multibox",
        help="train MultiBox (class-agnostic box proposals) on a detection dataset",
        description="Train the MultiBox proposal network of the paper's detector (section 8; Erhan et "
        "al. 2014): k-means priors of the training boxes, the Inception backbone with one linear layer "
        "to K box residuals and K confidences, loss F_conf + alpha F_match. The folder is read by "
        "`googlenet proposals --method multibox --multibox DIR`.",
    )
    p.add_argument(
        "--data", default=None, help="detection dataset folder (VOC, ILSVRC DET, COCO) or 'builtin'"
    )
    add_out_argument(p, required=True, type=Path, metavar="DIR", help="folder to write the model to")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="WEIGHTS",
        help="classifier whose backbone starts the network (weights file, run directory, checkpoint)",
    )
    for flag, field, kind, text in _FLAGS:
        p.add_argument(flag, dest=field, type=kind, default=None, help=f"{text} (default {defaults[field]})")
    p.add_argument(
        "--val-split",
        default=None,
        help="split to report loss and coverage on after each epoch, 'none' to skip "
        f"(default {defaults['val_split']})",
    )
    p.add_argument("--no-flip", dest="flip", action="store_false", default=None, help="no horizontal flips")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last epoch (its saved settings; --epochs may grow)",
    )
    p.set_defaults(func=run)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    fields = [field for _, field, _, _ in _FLAGS] + ["data", "init_from", "flip"]
    given = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    if args.val_split is not None:
        given["val_split"] = None if args.val_split.lower() == "none" else args.val_split
    return given


def run(args: argparse.Namespace) -> int:
    from ..detection.multibox import MultiBoxTrainConfig, resume_config, train_multibox
    from ..device import resolve_device

    given = _given(args)
    given["device"] = resolve_device(args.device)
    if args.init_from is not None:
        from ..runs import resolve_checkpoint

        resolve_checkpoint(args.init_from)  # a missing or wrong path, before the priors are fitted
    if args.resume:
        config = resume_config(args.out, given)
    else:
        if "data" not in given:
            raise ValueError("--data is required (a detection dataset folder or 'builtin') unless --resume")
        config = MultiBoxTrainConfig(out=str(args.out), **given)

    def report(record: dict[str, Any]) -> None:
        line = (
            f"epoch {record['epoch']}/{config.epochs}: loss {record['loss']:.4f} "
            f"(conf {record['conf']:.4f}, match {record['match']:.4f})"
        )
        if "val_loss" in record:
            line += (
                f"; val loss {record['val_loss']:.4f}, coverage of the val boxes by the top {config.top} "
                f"(IoU >= 0.5) {100 * record[f'val_coverage_at_{config.top}']:.1f}%"
            )
        print(f"{line}; {record['seconds']:.1f} s", flush=True)

    if args.resume:
        print(f"resuming {args.out} (to {config.epochs} epochs)", flush=True)
    result = train_multibox(config, resume=args.resume, on_epoch=report)
    print(f"MultiBox model ({config.num_priors} priors) written to {result.out}")
    return 0
