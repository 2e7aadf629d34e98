"""``googlenet report``: pictures of training runs and of Table 3 (paper sections 6 and 7)."""

from __future__ import annotations

import argparse

from ..errors import GoogLeNetError
from .common import add_out_argument

ORDER = 41  # googlenet --help lists the commands by layer (evaluation)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="PNG curves, confusion matrix, predictions and Table 3 of training runs, index.md/html",
        description=(
            "Training curves of every RUN_DIR (overlaid), the confusion matrix and top-5 predictions of the "
            "first run's model (or of the ensemble of all runs' models) on the validation split, and Table 3 "
            "from `googlenet evaluate --json`. Given a detector directory (train-detector --out): its mAP "
            "per class, precision-recall curves and validation images with detections (section 8). "
            "Writes OUT/index.md and OUT/index.html."
        ),
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories written by `googlenet train` (its --out folder), or ensemble directories",
    )
    add_out_argument(
        p, required=True, help="output folder, created or replaced whole (an earlier report's folder)"
    )
    p.add_argument(
        "--evaluation",
        metavar="EVAL.json",
        help="JSON written by `googlenet evaluate --json` (for a detector: `evaluate-detection --json`)",
    )
    p.add_argument(
        "--detections",
        metavar="FILE.json",
        help="a detector's report only: its detections of the split from this detections file (what "
        "`evaluate-detection --detector --detections-out` writes) instead of running the detector here; "
        "its seconds per image then come from --evaluation, when that is the record of the run that "
        "wrote the file",
    )
    p.add_argument(
        "--rule",
        default="ilsvrc",
        choices=("ilsvrc", "voc07", "voc12"),
        help="a detector's mAP rule (default ilsvrc)",
    )
    p.add_argument("--data", help="dataset folder or 'builtin' (default: the first run's config.yaml)")
    p.add_argument(
        "--image-size",
        type=int,
        help="centre-crop size, at least 64 (default: the size the models were trained at)",
    )
    p.add_argument(
        "--max-images",
        type=int,
        help="use at most this many validation images, evenly spaced: the images `evaluate --limit N` "
        "picks (default: all)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="crops per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="torch device for the predictions (default cpu)")
    p.add_argument(
        "--allow-class-mismatch",
        action="store_true",
        help="accept data (or an evaluation) whose class names differ from the models' by position",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.config import check_image_size
    from ..device import resolve_device
    from ..evaluation.report import write_report
    from ..runs import DetectorLayout

    args.device = resolve_device(args.device)
    if args.image_size is not None:
        check_image_size(args.image_size, "--image-size")
    for name in ("max_images", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive. Got {value}")
    layout = DetectorLayout(args.run_dirs[0])
    if len(args.run_dirs) == 1 and (layout.is_detector() or layout.is_unfinished()):
        # An unfinished detector gets the detector's error (read_manifest), not the classifier's.
        from ..detection.report import write_detector_report

        index = write_detector_report(
            args.run_dirs[0],
            args.out,
            data=args.data,
            rule=args.rule,
            evaluation=args.evaluation,
            detections=args.detections,
            max_images=args.max_images,
        )
        print(index)
        return 0
    if args.detections is not None:
        raise GoogLeNetError(
            f"--detections applies to a detector's report only; {args.run_dirs[0]} is not a detector "
            "directory (train-detector --out)"
        )
    index = write_report(
        args.run_dirs,
        args.out,
        evaluation=args.evaluation,
        data=args.data,
        image_size=args.image_size,
        max_images=args.max_images,
        batch_size=args.batch_size,
        device=args.device,
        allow_class_mismatch=args.allow_class_mismatch,
    )
    print(index)
    return 0
