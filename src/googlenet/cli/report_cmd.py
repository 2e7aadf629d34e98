"""``googlenet report``: pictures of training runs and of Table 3 (paper sections 6 and 7)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="PNG curves, confusion matrix, predictions and Table 3 of training runs, index.md/html",
        description=(
            "Training curves of every RUN_DIR (overlaid), the confusion matrix and top-5 predictions of the "
            "first run's model (or of the ensemble of all runs' models) on the validation split, and Table 3 "
            "from `googlenet evaluate --json`. Writes OUT/index.md and OUT/index.html."
        ),
    )
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by `googlenet train`"
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--evaluation", metavar="EVAL.json", help="JSON written by `googlenet evaluate --json`")
    p.add_argument("--data", help="dataset folder or 'builtin' (default: the first run's config.yaml)")
    p.add_argument("--image-size", type=int, help="centre-crop size (default: the first run's config.yaml)")
    p.add_argument(
        "--max-images", type=int, help="use at most this many validation images, evenly spaced (default: all)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="torch device for the predictions (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import write_report

    for name in ("image_size", "max_images", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive. Got {value}")
    index = write_report(
        args.run_dirs,
        args.out,
        evaluation=args.evaluation,
        data=args.data,
        image_size=args.image_size,
        max_images=args.max_images,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(index)
    return 0
