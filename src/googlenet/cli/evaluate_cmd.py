"""``googlenet evaluate``: the paper's test protocol (section 7) and its Table 3 on your data."""

from __future__ import annotations

import argparse
import os
import sys

from .common import (
    STDOUT,
    add_estimate_arguments,
    add_json_argument,
    add_model_arguments,
    check_json_output,
    estimate_printer,
    write_json,
)

ORDER = 40  # googlenet --help lists the commands by layer (evaluation)


def register(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.parts import DEFAULT_CHUNK_IMAGES

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
    add_estimate_arguments(p)
    p.add_argument(
        "--work-dir",
        default=None,
        metavar="DIR",
        help="where finished chunks are kept until the result is written, so that the same command run "
        "again after a kill continues (default: FILE.parts beside --json FILE, else in the cache)",
    )
    p.add_argument(
        "--chunk-images",
        type=int,
        default=DEFAULT_CHUNK_IMAGES,
        metavar="N",
        help=f"images scored together and written as one part (default {DEFAULT_CHUNK_IMAGES}); the "
        "numbers depend on it in their last bits, never on the number of processes",
    )
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import estimate_evaluation, evaluate
    from ..evaluation.parts import default_work_dir
    from ..evaluation.tables import format_effects, format_spread, format_table3
    from ..training.distributed import launch_position

    check_json_output(args, example="evaluation.json", parent_must_exist=True)
    json_file = None if args.json in (None, STDOUT) else args.json
    # What the same command names wherever it is run from: the parts of `evaluate --data val/` run
    # in two folders must not meet.
    data = args.data if args.data == "builtin" else os.path.abspath(args.data)
    identity = {
        "data": data,
        "split": args.split,
        "checkpoint": [os.path.abspath(c) for c in args.checkpoint],
    }
    work_dir = args.work_dir or default_work_dir(json_file, identity)
    settings = dict(
        split=args.split,
        layout=args.layout,
        crops=args.crops,
        combine=args.combine,
        limit=args.limit,
        image_size=args.image_size,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        allow_class_mismatch=args.allow_class_mismatch,
        chunk_images=args.chunk_images,
        work_dir=work_dir,
    )
    main_rank = launch_position()[0] == 0
    if args.dry_run:
        estimate = estimate_evaluation(args.data, args.checkpoint, **settings)
        if main_rank:
            print(estimate.format())
        return 0
    # The estimate goes to stderr with the progress: stdout keeps the table (or the JSON).
    result = evaluate(
        args.data,
        args.checkpoint,
        model_counts=args.model_counts,
        on_estimate=estimate_printer(args),
        progress=True,
        **settings,
    )
    if not main_rank:  # rank 0 alone prints and writes
        return 0
    for image in result.unreadable:
        print(f"googlenet evaluate: warning: {image['error']} (counted as an error)", file=sys.stderr)
    # With --json on stdout the tables go to stderr, so that stdout is one JSON document.
    table_file = sys.stderr if args.json == STDOUT else sys.stdout
    print(format_table3(result.rows, title=result.title), file=table_file)
    if result.spread:
        print(file=table_file)
        print(
            format_spread(
                result.spread,
                title="Mean ± standard deviation over every k-subset of the models (none picked on these "
                "images; for seed-only ensembles, the spread over seeds)",
            ),
            file=table_file,
        )
    if result.effects:
        print(file=table_file)
        title = f"The paper's effects, paired over the same {result.num_images} images"
        print(format_effects(result.effects, title=title), file=table_file)
    if result.unreadable:
        print(
            f"{result.num_unreadable} of {result.num_images} images unreadable, counted as errors",
            file=sys.stderr,
        )
    if args.json is not None:
        write_json(args, result.to_json())
    return 0
