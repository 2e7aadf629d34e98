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
    python benchmarks/crops.py --rounds 3 --no-docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from docs_section import DOCS, write_section

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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported; default 7)")
    p.add_argument("--size", type=int, default=224, help="crop size (default 224, the paper's)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()

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
    load = os.getloadavg()[0]
    ratio = crop_s / model_s
    verdict = "under" if ratio < TARGET else "NOT under"
    cpu = platform.processor() or platform.machine()
    section = f"""## Test-time crops (section 7)

The 144 crops of one 500 x 375 JPEG against one forward pass of `googlenet` (torch, fp32) on them,
{args.size} x {args.size} crops, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs ({cpu}),
median of {args.rounds} interleaved rounds (fastest round: crops {1000 * min(crop_times):.1f} ms, forward
{1000 * min(model_times):.1f} ms), load average {load:.1f} while measuring, {dt.date.today().isoformat()},
torch {torch.__version__}.
Command: `python benchmarks/crops.py`.

| step | median time per image |
|---|---|
| decode + 144 crops + normalise | {1000 * crop_s:.1f} ms |
| GoogLeNet forward, batch of 144 | {1000 * model_s:.1f} ms |
| ratio | {100 * ratio:.1f}% ({verdict} the {100 * TARGET:.0f}% target) |

`googlenet evaluate --workers N` makes the crops in N processes beside the network, so on the CPU
they overlap with the forward pass; on a GPU the network is much faster and the crop workers set
the pace (give it more `--workers`).
"""
    print(section)
    if not args.no_docs:
        write_section("crops", section)
        print(f"wrote {DOCS}", file=sys.stderr)
    return 0 if ratio < TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
