"""``googlenet export``: a saved model to ONNX or a ``torch.export`` program (:mod:`..inference.export`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX or a torch.export program (.pt2), dynamic batch",
        description="Export the inference network (no auxiliary heads) of a googlenet checkpoint.",
    )
    p.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="a .safetensors written by googlenet.save, or a run directory with model.safetensors",
    )
    p.add_argument(
        "--format",
        choices=("onnx", "exported-program"),
        default="onnx",
        help="onnx (default) or exported-program (torch.export .pt2)",
    )
    p.add_argument("-o", "--output", required=True, help="output file (.onnx or .pt2)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="square input size baked into the graph (default: the model's input size)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import GoogLeNetError
    from ..inference.export import DEFAULT_OPSET, export_onnx, export_program
    from ..runs import resolve_checkpoint

    model = resolve_checkpoint(args.checkpoint).load()
    image_size = args.image_size or model.meta.input_size[-1]
    if args.format == "onnx":
        path = export_onnx(model, args.output, opset=args.opset or DEFAULT_OPSET, image_size=image_size)
    else:
        if args.opset is not None:
            raise GoogLeNetError("--opset applies to --format onnx only")
        path = export_program(model, args.output, image_size=image_size)
    print(f"wrote {path} ({args.format}, {model.meta.variant}, {image_size}x{image_size}, dynamic batch)")
    return 0
