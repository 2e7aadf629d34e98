"""``googlenet evaluate``: the paper's test protocol (section 7) and its Table 3 on your data."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from ..device import resolve_device
from ..errors import GoogLeNetError
from .common import STDOUT, add_json_argument, add_model_arguments, check_json_output, write_json

ORDER = 40  # googlenet --help lists the commands by layer (evaluation)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="the paper's test protocol: 1/10/144 crops x models -> Table 3 (top-5/top-1 error, cost)",
        description="Section 7 of the paper: softmax probabilities averaged over crops and models; prints "
        "Table 3 (models, crops, cost, top-5 error, top-1 error, change against 1 model / 1 crop).",
    )
    p.add_argument(
        "--data", required=True, help="dataset folder (ImageFolder or ILSVRC2012 layout) or 'builtin'"
    )
    p.add_argument("--split", default="val", choices=("val", "train"), help="split to evaluate (default val)")
    p.add_argument(
        "--layout",
        default="auto",
        choices=("auto", "imagefolder", "ilsvrc"),
        help="dataset layout (default auto)",
    )
    p.add_argument(
        "--crops",
        nargs="+",
        default=["1", "10", "144"],
        choices=("1", "10", "144"),
        help="crop schemes (default: 1 10 144)",
    )
    p.add_argument(
        "--combine",
        default="mean",
        choices=("mean", "max"),
        help="combine crops by mean (the paper) or max (the paper's worse alternative)",
    )
    p.add_argument(
        "--model-counts",
        default="paper",
        choices=("paper", "every"),
        help="ensemble rows: 'paper' = best single model and all models; 'every' = best 1, 2, ... all",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="evaluate N images spread evenly over the split (every k-th sample: classes sampled evenly)",
    )
    add_json_argument(
        p,
        what="the evaluation (rows, spread, checkpoints, data), for googlenet report (on stdout the "
        "table goes to stderr)",
        out_alias=True,
    )
    p.add_argument(
        "--allow-class-mismatch",
        action="store_true",
        help="score models whose class names differ from the data's folders by position (default: refuse)",
    )
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__
    from ..data.builtin import resolve_data
    from ..data.config import check_image_size
    from ..data.datasets import build_dataset
    from ..evaluation.loading import load_models
    from ..evaluation.metrics import topk_errors
    from ..evaluation.protocol import (
        check_models_fit_data,
        crop_probabilities,
        paired_effects,
        select_images,
        table3,
        table3_spread,
    )
    from ..evaluation.result import EvaluationResult
    from ..evaluation.tables import format_effects, format_spread, format_table3
    from ..inference.calibration import calibration_loader
    from ..progress import progress_bar
    from ..runs import resolve_checkpoints

    # Every argument and output path is checked before a model is loaded or an image read.
    if args.limit is not None and args.limit < 1:
        raise GoogLeNetError(f"--limit must be at least 1. Got {args.limit}")
    if args.batch_size < 1 or args.workers < 0:
        raise GoogLeNetError("--batch-size must be at least 1 and --workers at least 0")
    if args.image_size is not None:
        check_image_size(args.image_size, "--image-size")
    check_json_output(args, example="evaluation.json", parent_must_exist=True)
    checkpoints = resolve_checkpoints(args.checkpoint)
    root = resolve_data(args.data)
    dataset = build_dataset(root, args.split, layout=args.layout)
    schemes = sorted(set(args.crops), key=int)
    device = resolve_device(args.device)
    loaded = load_models(
        checkpoints,
        image_size=args.image_size,
        backend=args.backend,
        precision=args.precision,
        device=device,
        calibration=calibration_loader(root, args.layout),
    )
    check_models_fit_data(
        loaded,
        dataset.classes,
        model=str(checkpoints[0].weights),
        data=f"{root} ({args.split})",
        allow_mismatch=args.allow_class_mismatch,
    )
    picked = [dataset.samples[i] for i in select_images(len(dataset.samples), args.limit)]
    paths = [p for p, _ in picked]
    labels = torch.tensor([label for _, label in picked])
    start = time.perf_counter()
    with progress_bar(len(paths), f"evaluate {'/'.join(schemes)} crops") as bar:
        result = crop_probabilities(
            paths,
            loaded.models,
            schemes,
            loaded.data_config,
            args.combine,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=bar.update,
        )
    wall = time.perf_counter() - start
    for _, message in result.unreadable:
        print(f"googlenet evaluate: warning: {message} (counted as an error)", file=sys.stderr)
    if not result.probs:
        raise GoogLeNetError(
            f"none of the {len(paths)} images could be read (first: {result.unreadable[0][1]})"
        )
    rows = table3(result, labels, model_counts=args.model_counts)
    k = rows[0].k
    names = ", ".join(m.name for m in loaded.models)
    title = (
        f"Table 3 (section 7) on {len(paths)} images of {root} [{args.split}], {loaded.image_size}px crops, "
        f"{args.combine} over crops; models: {names}"
    )
    # With --json on stdout the tables go to stderr, so that stdout is one JSON document.
    table_file = sys.stderr if args.json == STDOUT else sys.stdout
    print(format_table3(rows, title=title), file=table_file)
    spread_rows = table3_spread(result, labels) if len(loaded.models) > 1 else []
    if spread_rows:
        print(file=table_file)
        print(
            format_spread(
                spread_rows,
                title="Mean ± standard deviation over every k-subset of the models (none picked on these "
                "images; for seed-only ensembles, the spread over seeds)",
            ),
            file=table_file,
        )
    effects = paired_effects(result, labels)
    if effects:
        print(file=table_file)
        print(format_effects(effects, title=f"The paper's effects, paired over the same {len(paths)} images"),
              file=table_file)  # fmt: skip
    if result.unreadable:
        print(
            f"{len(result.unreadable)} of {len(paths)} images unreadable, counted as errors", file=sys.stderr
        )
    if args.json is not None:
        per_model = [
            dict(
                zip(("top1_err", "topk_err"), topk_errors(result.probs[(m, s)], labels, (1, k)), strict=True),
                name=loaded.models[m].name,
                crops=int(s),
            )
            for m in range(len(loaded.models))
            for s in schemes
        ]
        evaluation = EvaluationResult(
            rows=rows,
            spread=spread_rows,
            effects=[e.to_dict() for e in effects],
            per_model=per_model,
            checkpoints=loaded.info,
            top_k=k,
            data=str(root),
            data_arg=str(args.data),
            split=args.split,
            layout=dataset.layout,
            num_images=len(paths),
            num_classes=loaded.num_classes,
            class_names=list(dataset.classes),
            limit=args.limit,
            image_size=loaded.image_size,
            schemes=[int(s) for s in schemes],
            combine=args.combine,
            model_counts=args.model_counts,
            backend=args.backend,
            precision=args.precision,
            device=device,
            batch_size=args.batch_size,
            unreadable=[{"index": i, "path": paths[i], "error": msg} for i, msg in result.unreadable],
            wall_time_s=round(wall, 3),
            images_per_s=round(len(paths) / wall, 3) if wall > 0 else None,
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            googlenet_version=__version__,
            torch_version=torch.__version__,
        )
        write_json(args, evaluation.to_json())
    return 0
