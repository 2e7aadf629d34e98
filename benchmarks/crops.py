"""Cost of the paper's 144 test crops (section 7) against the network's forward pass on them.

Section 7's protocol runs GoogLeNet on 144 crops per image. This script checks that making the crops
(:func:`googlenet.data.multicrop.multicrop`: one decode, one uint8 tensor, 4 resizes + 12 square
resizes, slices, one flip, conversion to float and the model's normalisation) stays a small
fraction (target: under 10%) of running the network on the resulting 144 x 3 x 224 x 224 batch.

The image is a 500 x 375 JPEG (the most common ILSVRC size), drawn by the built-in set's renderer.
The model is the paper's ``googlenet`` (random init: speed does not depend on the weights) behind
``googlenet.inference.predictor.Predictor`` with the torch backend in fp32, as ``googlenet evaluate`` runs it
by default. Both timings use the same threads, interleaved round by round; medians are reported.

    python benchmarks/crops.py     # ~1-2 minutes on 2 cores; rewrites its docs/benchmarks.md section
    python benchmarks/crops.py --rounds 3 --no-docs --json crops.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common as C
import numpy as np
import torch

import googlenet
from googlenet.data.builtin import render_image
from googlenet.data.datasets import open_image
from googlenet.data.multicrop import multicrop, normalize_crops
from googlenet.inference.predictor import Predictor

TARGET = 0.10  # crops must cost under 10% of the model time at 144 crops


def make_jpeg(directory: Path) -> Path:
    picture = render_image(0, np.random.default_rng(0), 512).crop((6, 68, 506, 443))  # 500 x 375
    path = directory / "ilsvrc_sized.jpg"
    picture.save(path, quality=90)
    return path


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


NAME, VERSION = "crops", 1
SCHEMA = {
    "settings": {"rounds": int, "size": int, "image": str, "model": str},
    "crop_ms": float,  # median per image: decode + 144 crops + normalise
    "forward_ms": float,  # median: the network on the batch of 144
    "crop_ms_min": float,
    "forward_ms_min": float,
    "ratio": float,  # crop_ms / forward_ms
    "target": float,
    "met": bool,
}


def render(result: dict) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    s = result["settings"]
    rows = [
        {
            "step": f"decode + 144 crops + normalise ({s['image']})",
            "ms": result["crop_ms"],
            "min": result["crop_ms_min"],
        },
        {
            "step": f"{s['model']} forward, batch of 144",
            "ms": result["forward_ms"],
            "min": result["forward_ms_min"],
        },
    ]
    verdict = "under" if result["met"] else "**not under**"
    return "\n".join(
        [
            C.machine_line(result),
            "",
            f"{s['size']} x {s['size']} crops, median of {s['rounds']} interleaved rounds.",
            "",
            C.table(
                rows,
                [
                    C.text("step"),
                    C.Column("median ms per image", C.field("ms", "{:.1f}")),
                    C.Column("fastest round ms", C.field("min", "{:.1f}")),
                ],
            ),
            "",
            f"Crops / forward: {100 * result['ratio']:.1f}% "
            f"({verdict} the {100 * result['target']:.0f}% target).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported; default 7)")
    p.add_argument("--size", type=int, default=224, help="crop size (default 224, the paper's)")
    C.output_flags(p)
    given = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(given)
    env = C.environment()

    model = googlenet.create_model("googlenet", aux_logits=False)
    predictor = Predictor(model, "torch", "fp32", image_size=args.size)

    with tempfile.TemporaryDirectory() as tmp:
        path = make_jpeg(Path(tmp))

        def crops() -> torch.Tensor:
            # Everything evaluate does per image before the network: decode, crops, float, normalise.
            crops = multicrop(open_image(path), "144", args.size, dtype=torch.uint8)
            return normalize_crops(crops, model.meta.mean, model.meta.std)

        batch = crops()
        assert batch.shape == (144, 3, args.size, args.size)
        predictor(batch)  # warm-up (allocator, kernels)
        crop_times, model_times = [], []
        for _ in range(args.rounds):
            crop_times.append(timed(crops))
            model_times.append(timed(predictor, batch))
    crop_s, model_s = statistics.median(crop_times), statistics.median(model_times)
    env["load_average_after"] = C.load_average()
    result = {
        **C.header(NAME, VERSION, C.shown_command("crops.py", given), env),
        "settings": {
            "rounds": args.rounds,
            "size": args.size,
            "image": "500 x 375 JPEG",
            "model": "googlenet",
        },
        "crop_ms": 1000 * crop_s,
        "forward_ms": 1000 * model_s,
        "crop_ms_min": 1000 * min(crop_times),
        "forward_ms_min": 1000 * min(model_times),
        "ratio": crop_s / model_s,
        "target": TARGET,
        "met": crop_s / model_s < TARGET,
    }
    C.publish(result, render(result), args.json, None if args.no_docs else args.docs)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
