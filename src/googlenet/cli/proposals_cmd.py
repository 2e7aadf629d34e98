"""``googlenet proposals``: region proposals for a detection split (paper section 8), as a JSON file.

Selective Search in R-CNN's fast mode (``selective-search``), with the paper's superpixel size x2
(``selective-search-2x``), MultiBox (``multibox``) or the paper's combination (``paper``); see
:mod:`googlenet.detection.proposals`. Results are cached per dataset and method, chunk by chunk: a
killed run continues where it stopped, and ``--shard I/N`` (or torchrun) spreads the images over
machines that share the cache folder; the same command without ``--shard`` merges their parts.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import GoogLeNetError
from .common import add_out_argument, add_shard_argument, check_output_file

if TYPE_CHECKING:
    from ..detection.proposals import ProposalsFill

ORDER = 60  # googlenet --help lists the commands by layer (detection: proposals first, then the detector)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.proposals import METHODS

    p = sub.add_parser(
        "proposals",
        help="region proposals (Selective Search, MultiBox) for a detection split, as JSON",
        description="Compute the region proposals of every image of a detection split and write "
        '{"<image_id>": [[xmin, ymin, xmax, ymax], ...]} (inclusive 1-based pixels) to --out. Prints the '
        "mean proposals per image, the coverage (share of ground-truth boxes some proposal overlaps "
        "with IoU >= 0.5) and the time per image. Results are cached ($GOOGLENET_CACHE/proposals).",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="detection dataset folder (VOC, ILSVRC DET, COCO) or 'builtin'",
    )
    p.add_argument("--split", default="val", help="split to read (default val)")
    p.add_argument(
        "--method",
        required=True,
        choices=METHODS,
        help="selective-search: R-CNN fast mode (k 50, 100); selective-search-2x: the paper's "
        "superpixel size x2 (k 100, 200); multibox: 200 MultiBox boxes; paper: selective-search-2x "
        "+ 200 MultiBox boxes",
    )
    p.add_argument("--multibox", type=Path, default=None, metavar="DIR", help="trained MultiBox model folder")
    add_out_argument(p, type=Path, required=True, metavar="FILE.json", help="proposals file to write")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all usable CPUs)")
    p.add_argument("--strict-data", action="store_true", help="stop at the first bad annotation or image")
    p.add_argument("--refresh", action="store_true", help="recompute even when the cache holds the result")
    add_shard_argument(p, parts="the proposals cache (GOOGLENET_CACHE: a folder every machine sees)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..cpu import cpu_count
    from ..detection.datasets import open_detection_dataset
    from ..detection.proposals import check_method, coverage, proposal_method, proposals_job, write_proposals
    from ..detection.shards import job_shard

    check_output_file(args.out, "--out", example="proposals.json")
    workers = cpu_count() if args.workers is None else args.workers
    if workers < 0:
        raise GoogLeNetError(f"--workers must be >= 0. Got {workers}")
    shard = job_shard(args.shard)
    method = proposal_method(args.method, multibox=args.multibox)
    check_method(method)
    dataset = open_detection_dataset(args.data, args.split, strict=args.strict_data)
    share = len(shard.images(len(dataset))) if shard is not None else len(dataset)
    desc = f"proposals {method.name}" + (f" shard {shard}" if shard is not None else "")
    t0 = time.perf_counter()
    with tqdm(total=share, desc=desc, unit="img", file=sys.stderr, disable=None) as bar:
        fill = proposals_job(
            dataset, method, shard=shard, workers=workers, progress=bar.update, refresh=args.refresh
        )
    wall = time.perf_counter() - t0
    if not fill.merged:
        print(
            f"{method.name} on {dataset.root} split {dataset.split!r}, shard {shard}: {fill.images} of "
            f"{len(dataset)} images -> {fill.parts}"
        )
        print(_work_line(fill, wall, workers))
        left = f"{fill.chunks_left} of {fill.chunks} chunks left to other shards" if fill.chunks_left else ""
        if args.shard is None:  # a torchrun rank: rank 0 merges once every rank is done
            print(f"  rank 0 merges the parts and writes {args.out}")
        else:
            print(
                f"  {left or 'every shard is done'}; the same command without --shard then writes {args.out}"
            )
        return 0
    write_proposals(args.out, fill.proposals)

    n = len(fill.proposals)
    mean = sum(len(b) for b in fill.proposals.values()) / max(n, 1)
    cov = coverage(fill.proposals, dataset.targets())
    cov_text = "n/a (no ground-truth boxes)" if math.isnan(cov) else f"{100 * cov:.1f}%"
    print(f"{method.name} on {dataset.root} split {dataset.split!r}: {n} images -> {args.out}")
    print(f"  mean proposals per image: {mean:.1f}")
    print(f"  coverage (ground-truth boxes with a proposal at IoU >= 0.5): {cov_text}")
    if fill.from_entry:
        print(f"  read from cache {fill.path} ({wall:.2f} s; --refresh recomputes)")
    elif fill.computed == 0:
        print(f"  merged the {fill.chunks} chunks of {fill.parts} into the cache {fill.path}")
    else:
        print(_work_line(fill, wall, workers))
    return 0


def _work_line(fill: ProposalsFill, wall: float, workers: int) -> str:
    """What this process computed and how fast, and what a resumed run found done."""
    resumed = f" ({fill.done_before} of {fill.images} images were already done)" if fill.done_before else ""
    if fill.computed == 0:
        return f"  nothing left to compute{resumed}"
    cores = max(1, min(workers, fill.computed))
    per_image = wall / fill.computed
    return (
        f"  seconds per image: {per_image:.3f} wall, {per_image * cores:.3f} per core ({cores} processes)"
        + resumed
    )
