"""``googlenet predict``: class names and probabilities for image files (section 7 test crops)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import STDOUT, add_json_argument, add_model_arguments, check_json_output, write_json

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


def run(args: argparse.Namespace) -> int:
    from ..data.datasets import find_images
    from ..evaluation.predict import Prediction, predict

    check_json_output(args, example="predictions.json")
    paths, errors = find_images(args.images)
    predictions = predict(
        paths,
        args.checkpoint,
        crops=args.crops,
        topk=args.topk,
        image_size=args.image_size,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        calibration=args.calibration,
        progress=True,
    )
    # Inputs that named no image (a missing file, an empty folder or pattern) after the images.
    predictions += [Prediction(arg, error=message) for arg, message in errors]
    for message in [m for _, m in errors] + [p.error for p in predictions[: len(paths)] if p.error]:
        print(f"googlenet predict: error: {message}", file=sys.stderr)
    if args.json is not None:
        write_json(args, json.dumps([p.to_dict() for p in predictions], indent=1))
    if args.json != STDOUT:
        for prediction in predictions:
            if prediction.error is not None:
                continue  # already on stderr
            print(prediction.path)
            for score in prediction.predictions:
                print(f"  {score.probability:.4f}  {score.class_name} ({score.class_index})")
    return 1 if any(p.error is not None for p in predictions) else 0
