"""``googlenet export``: a saved model to ONNX, a ``torch.export`` program or safetensors weights
(:mod:`..inference.export`, :mod:`..weights.store`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_out_argument, check_output_file, positional_or_flag

# The output file's suffix names its format; --format may say it too, but never contradict it.
SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "exported-program", ".safetensors": "safetensors"}
FORMATS = ("onnx", "exported-program", "safetensors")
SUFFIX_BY_FORMAT = {fmt: suffix for suffix, fmt in SUFFIX_FORMATS.items()}


ORDER = 51  # googlenet --help lists the commands by layer (inference)


def register(sub: argparse._SubParsersAction) -> None:
    from ..inference.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX, a torch.export program (.pt2) or .safetensors weights",
        description="Export the inference network (no auxiliary heads) of a googlenet checkpoint: a "
        ".safetensors file, a run directory or a training checkpoint (.pt, its Polyak-averaged weights). "
        "The format follows the output's suffix (.onnx, .pt2, .safetensors).",
    )
    what = (
        "a .safetensors written by googlenet save/train/convert, a run directory, or a training "
        "checkpoint (RUN/checkpoints/best.pt or last.pt)"
    )
    p.add_argument("checkpoint", metavar="CKPT", nargs="?", default=None, help=f"{what}; or --checkpoint")
    p.add_argument("--checkpoint", dest="checkpoint_flag", metavar="PATH", default=None, help=what)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="default: from the output's suffix (.onnx -> onnx, .pt2 -> exported-program, "
        ".safetensors -> safetensors)",
    )
    add_out_argument(
        p,
        dest="output",
        aliases=("--output",),
        required=True,
        metavar="FILE",
        help="output file (.onnx, .pt2 or .safetensors)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="square input size baked into the graph (default: the model's trained size)",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=None,
        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})",
    )
    p.set_defaults(func=run)


def output_format(output: Path, given: str | None) -> str:
    """The format to write ``output`` in: its suffix's, checked against ``--format`` when both are known."""
    from ..errors import GoogLeNetError

    implied = SUFFIX_FORMATS.get(output.suffix.lower())
    if given is None:
        if implied is None:
            raise GoogLeNetError(
                f"cannot tell the format of {output} from its suffix: name it .onnx, .pt2 or .safetensors, "
                "or pass --format"
            )
        return implied
    if implied is not None and implied != given:
        raise GoogLeNetError(
            f"--format {given} does not match {output} (a {output.suffix} file is {implied}): change the "
            "suffix or the format"
        )
    return given


def run(args: argparse.Namespace) -> int:
    from ..data.config import check_image_size, resolve_data_config
    from ..errors import GoogLeNetError
    from ..inference.export import (
        DEFAULT_OPSET,
        check_opset,
        export_onnx,
        export_program,
        require_onnx_export,
    )
    from ..runs import resolve_checkpoint
    from ..training.loading import load_model
    from ..weights.store import save_weights

    checkpoint = positional_or_flag(args, "checkpoint", "--checkpoint", "CKPT")
    output = Path(args.output).expanduser()
    fmt = output_format(output, args.format)
    if args.opset is not None:
        if fmt != "onnx":
            raise GoogLeNetError(f"--opset applies to ONNX output only, not {fmt}")
        check_opset(args.opset)
    if args.image_size is not None:
        if fmt == "safetensors":
            raise GoogLeNetError("--image-size applies to onnx and exported-program output, not safetensors")
        check_image_size(args.image_size, "--image-size")
    if fmt == "onnx":
        require_onnx_export()
    check_output_file(output, "--out", example=f"model{SUFFIX_BY_FORMAT[fmt]}")
    ref = resolve_checkpoint(checkpoint)
    model = load_model(ref)
    if fmt == "safetensors":
        path = save_weights(model, output)
        print(f"wrote {path} (safetensors weights of {ref.path}, {model.meta.variant})")
        return 0
    config = resolve_data_config(model.meta, image_size=args.image_size, run_image_size=ref.image_size)
    size = config.image_size
    if fmt == "onnx":
        path = export_onnx(model, output, opset=args.opset or DEFAULT_OPSET, image_size=size)
    else:
        path = export_program(model, output, image_size=size)
    print(f"wrote {path} ({fmt}, {model.meta.variant}, {size}x{size}, dynamic batch)")
    return 0
