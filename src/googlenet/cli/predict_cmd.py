"""``googlenet predict``: class names and probabilities for image files (section 7 test crops)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import GoogLeNetError
from .common import STDOUT, add_json_argument, add_model_arguments, check_json_output, write_json

PROGRESS_DELAY_S = 2.0  # a bar only for inputs that take longer than this (short runs stay quiet)


ORDER = 50  # googlenet --help lists the commands by layer (inference)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes for images (files, folders, globs), averaged over crops and models",
        description="Predict the classes of images with the paper's test crops (section 7). A file that "
        "cannot be read gets a one-line error on stderr; the others are still predicted and the exit "
        "status is 1.",
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files, folders (searched recursively), globs"
    )
    p.add_argument("--crops", default="1", choices=("1", "10", "144"), help="crop scheme (default 1)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    add_json_argument(
        p,
        what="a list of one record per image, with 'predictions' or 'error' (instead of text)",
        out_alias=True,
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        default=None,
        help="--precision int8: training images to calibrate on (a dataset folder with train/, or a "
        "folder of images; default: the training data named in the checkpoint's run config)",
    )
    add_model_arguments(p, workers=0)
    # int8 runs on onnxruntime / OpenVINO: with --precision int8 and no --backend, auto picks one.
    p.set_defaults(func=run, backend=None)


def calibration_for(args: argparse.Namespace, checkpoints: list[Any]) -> Any:
    """The int8 calibration loader: ``--calibration DIR``, else the first checkpoint's training data."""
    from ..inference.calibration import calibration_loader, run_calibration_data

    if args.calibration is not None:
        from pathlib import Path

        folder = Path(args.calibration).expanduser()
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise GoogLeNetError(
                f"--calibration {args.calibration} {what}: pass a dataset folder with train/ or a folder of "
                "training images"
            )
        return calibration_loader(folder)
    if args.precision != "int8":
        return None
    for ref in checkpoints:
        found = run_calibration_data(ref.run_dir)
        if found is not None:
            return calibration_loader(*found)
    raise GoogLeNetError(
        f"--precision int8 calibrates on training images, and the run config of {checkpoints[0].source} "
        "names none that exist here: pass --calibration DIR (a dataset folder with train/ or a folder of "
        "training images)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.datasets import find_images
    from ..device import resolve_device
    from ..evaluation.loading import load_models
    from ..evaluation.protocol import crop_probabilities
    from ..progress import progress_bar
    from ..runs import resolve_checkpoints

    if args.topk < 1:
        raise GoogLeNetError(f"--topk must be at least 1. Got {args.topk}")
    if args.calibration is not None and args.precision != "int8":
        raise GoogLeNetError(f"--calibration applies to --precision int8, not {args.precision}")
    if args.backend is None:
        args.backend = "auto" if args.precision == "int8" else "torch"
    device = resolve_device(args.device)
    check_json_output(args, example="predictions.json")
    checkpoints = resolve_checkpoints(args.checkpoint)
    calibration = calibration_for(args, checkpoints)
    paths, errors = find_images(args.images)
    loaded = load_models(
        checkpoints,
        image_size=args.image_size,
        backend=args.backend,
        precision=args.precision,
        device=device,
        calibration=calibration,
    )
    for _, message in errors:
        print(f"googlenet predict: error: {message}", file=sys.stderr)
    if not paths:
        if args.json is not None:
            write_json(args, json.dumps([{"path": arg, "error": m} for arg, m in errors], indent=1))
        return 1
    with progress_bar(len(paths), "predict", piped_every_s=None, delay=PROGRESS_DELAY_S) as bar:
        result = crop_probabilities(
            paths,
            loaded.models,
            [args.crops],
            loaded.image_size,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=bar.update,
        )
    for _, message in result.unreadable:
        print(f"googlenet predict: error: {message}", file=sys.stderr)
    unreadable = dict(result.unreadable)
    records: list[dict[str, Any]] = []
    if result.probs:
        # Section 7: probabilities averaged over crops (done) and over the models.
        probs = torch.stack([result.probs[(m, args.crops)] for m in range(len(loaded.models))]).mean(0)
        k = min(args.topk, probs.shape[-1])
        names = loaded.class_names
        for i, path in enumerate(paths):
            if i in unreadable:
                records.append({"path": path, "error": unreadable[i]})
                continue
            top = torch.topk(probs[i], k)
            records.append(
                {
                    "path": path,
                    "predictions": [
                        {
                            "class_index": int(c),
                            "class_name": names[int(c)] if names and int(c) < len(names) else str(int(c)),
                            "probability": float(p),
                        }
                        for p, c in zip(top.values, top.indices, strict=True)
                    ],
                }
            )
    else:
        records = [{"path": path, "error": unreadable[i]} for i, path in enumerate(paths)]
    # Inputs that named no image (a missing file, an empty folder or pattern) after the images.
    records += [{"path": arg, "error": message} for arg, message in errors]
    if args.json is not None:
        write_json(args, json.dumps(records, indent=1))
    if args.json != STDOUT:
        for record in records:
            if "error" in record:
                continue  # already on stderr
            print(record["path"])
            for pred in record["predictions"]:
                print(f"  {pred['probability']:.4f}  {pred['class_name']} ({pred['class_index']})")
    return 1 if errors or unreadable else 0
