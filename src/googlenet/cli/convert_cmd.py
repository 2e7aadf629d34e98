"""``googlenet convert``: torchvision or BVLC Caffe GoogLeNet weights -> the package's safetensors file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert torchvision (.pth) or BVLC Caffe (.caffemodel) GoogLeNet weights to .safetensors",
        description=(
            "torchvision: googlenet-*.pth or a torchvision.models.googlenet state dict -> googlenet_tv. "
            "caffe: bvlc_googlenet.caffemodel -> googlenet (the paper's network, RGB input). "
            "See docs/weights.md."
        ),
    )
    p.add_argument("source_format", choices=("torchvision", "caffe"), help="format of SRC")
    p.add_argument("source", type=Path, metavar="SRC", help="the .pth or .caffemodel file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the file to write")
    p.add_argument(
        "--transform-input",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torchvision only: re-normalise input inside the model as torchvision's ImageNet weights "
        "expect (default: on for 1000 classes, off otherwise)",
    )
    p.add_argument("--no-aux", action="store_true", help="leave the auxiliary heads out even if present")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import GoogLeNetError
    from ..weights.importers import import_caffe, import_torchvision
    from ..weights.store import save_weights

    aux = False if args.no_aux else None
    if args.source_format == "torchvision":
        model, report = import_torchvision(args.source, transform_input=args.transform_input, aux_logits=aux)
    else:
        if args.transform_input is not None:
            raise GoogLeNetError("--transform-input applies to torchvision weights only")
        model, report = import_caffe(args.source, aux_logits=aux)
    out = save_weights(model, args.output)
    print(report.summary())
    print(f"wrote {out} (source sha256 {report.source_sha256})")
    return 0
