"""``googlenet convert``: torchvision or BVLC Caffe GoogLeNet weights -> the package's safetensors file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import add_out_argument, check_output_file

WEIGHTS_SUFFIX = ".safetensors"


ORDER = 11  # googlenet --help lists the commands by layer (models: weights in)


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
    add_out_argument(
        p,
        dest="output",
        aliases=("--output",),
        type=Path,
        required=True,
        metavar="OUT",
        help="the .safetensors file to write",
    )
    p.add_argument(
        "--transform-input",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torchvision only: re-normalise input inside the model as torchvision's ImageNet weights "
        "expect (default: on for 1000 classes, off otherwise)",
    )
    p.add_argument("--no-aux", action="store_true", help="leave the auxiliary heads out even if present")
    p.set_defaults(func=run)


def _training_checkpoint(path: Path) -> bool:
    """True when ``path`` is a googlenet training checkpoint (``last.pt`` / ``best.pt``)."""
    import torch

    from ..training.checkpoint import CHECKPOINT_FORMAT

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a readable torch file at all: the importer's own message stands
        return False
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT


def check_paths(source: Path, output: Path, source_format: str) -> None:
    """Refuse, before any work, what convert cannot read or would write in the wrong format."""
    from ..errors import GoogLeNetError

    expected = ".pth" if source_format == "torchvision" else ".caffemodel"
    if source.is_dir():
        raise GoogLeNetError(
            f"{source} is a directory: pass the {source_format} weights file ({expected}) in it"
        )
    if source.suffix == WEIGHTS_SUFFIX:
        raise GoogLeNetError(
            f"{source} is a .safetensors file, already this package's format: no conversion needed "
            "(use it as --checkpoint, or googlenet export it)"
        )
    if output.suffix.lower() != WEIGHTS_SUFFIX:
        hint = (
            f"; to get {output.suffix}, convert to {output.with_suffix(WEIGHTS_SUFFIX).name} and then run "
            f"googlenet export {output.with_suffix(WEIGHTS_SUFFIX).name} -o {output.name}"
            if output.suffix.lower() in (".onnx", ".pt2")
            else ""
        )
        raise GoogLeNetError(
            f"convert writes .safetensors weights: name the output {output.stem}{WEIGHTS_SUFFIX}{hint}"
        )
    check_output_file(output, "--out", example=f"model{WEIGHTS_SUFFIX}")


def run(args: argparse.Namespace) -> int:
    from ..errors import GoogLeNetError
    from ..weights.importers import import_caffe, import_torchvision
    from ..weights.store import save_weights

    check_paths(args.source, args.output, args.source_format)
    aux = False if args.no_aux else None
    if args.transform_input is not None and args.source_format != "torchvision":
        raise GoogLeNetError("--transform-input applies to torchvision weights only")
    try:
        model, report = _import(args, aux, import_torchvision, import_caffe)
    except GoogLeNetError:
        if args.source.is_file() and _training_checkpoint(args.source):
            raise GoogLeNetError(
                f"{args.source} is a googlenet training checkpoint, not {args.source_format} weights: "
                f"write its weights with googlenet export {args.source} -o {args.output}"
            ) from None
        raise
    out = save_weights(model, args.output)
    print(report.summary())
    print(f"wrote {out} (source sha256 {report.source_sha256})")
    return 0


def _import(args: argparse.Namespace, aux: bool | None, import_torchvision: Any, import_caffe: Any) -> Any:
    if args.source_format == "torchvision":
        return import_torchvision(args.source, transform_input=args.transform_input, aux_logits=aux)
    return import_caffe(args.source, aux_logits=aux)
