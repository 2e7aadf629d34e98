"""``googlenet summary``: the paper's Table 1 regenerated from the live model."""

from __future__ import annotations

import argparse
import json

from ..data.config import MIN_IMAGE_SIZE, check_image_size
from .common import add_json_argument, check_json_output, write_json

ORDER = 10  # googlenet --help lists the commands by layer (models: Table 1)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="print Table 1 (shapes, filters, params, multiply-adds) from the live model"
    )
    p.add_argument("--model", default="googlenet", help="registered model name (default: googlenet)")
    p.add_argument(
        "--image-size",
        type=int,
        default=224,
        help=f"square input size (default 224, minimum {MIN_IMAGE_SIZE})",
    )
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--no-aux", action="store_true", help="leave out the auxiliary classifiers")
    add_json_argument(
        p, what='{"model", "image_size", "num_classes", "rows": [...], "totals": {...}}', out_alias=True
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.registry import create_model
    from ..models.summary import format_table, summarize, totals

    check_image_size(args.image_size, "--image-size")
    check_json_output(args, example="summary.json")
    model = create_model(args.model, num_classes=args.num_classes, aux_logits=not args.no_aux)
    rows = summarize(model, args.image_size)
    if args.json is not None:
        record = {
            "model": args.model,
            "image_size": args.image_size,
            "num_classes": args.num_classes,
            "rows": [r.to_dict() for r in rows],
            "totals": totals(rows),  # the inference net's, and with the auxiliary heads
        }
        write_json(args, json.dumps(record, indent=1))
    else:
        print(
            format_table(
                rows,
                title=f"{args.model} at {args.image_size}x{args.image_size} (Table 1, from the live model)",
            )
        )
        t = totals(rows)
        print(
            f"\n{t['params']:,} parameters, {t['macs'] / 1e9:.3f} G multiply-adds per image (inference net)"
        )
    return 0
