"""``googlenet proposals``: region proposals for a detection split (paper section 8), as a JSON file.

Selective Search in R-CNN's fast mode (``selective-search``), with the paper's superpixel size x2
(``selective-search-2x``), MultiBox (``multibox``) or the paper's combination (``paper``); see
:mod:`googlenet.detection.proposals`. Results are cached per dataset and method, chunk by chunk: a
killed run continues where it stopped, and ``--shard I/N`` (or torchrun) spreads the images over
machines that share the cache folder; the same command without ``--shard`` merges their parts.
Several ``--method`` are compared as Hosang et al. compare proposals (recall against the number of
proposals at IoU 0.5 and 0.7, average recall at 100 / 300 / 1000, seconds per image;
:mod:`googlenet.detection.proposal_recall`): a table, ``--json`` and ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import GoogLeNetError
from .common import (
    STDOUT,
    add_dry_run_argument,
    add_json_argument,
    add_out_argument,
    add_shard_argument,
    check_json_output,
    check_output_file,
    write_json,
)

if TYPE_CHECKING:
    from ..cost import CostEstimate
    from ..detection.datasets import DetectionDataset
    from ..detection.proposal_recall import MethodRecall
    from ..detection.proposals import ProposalMethod, ProposalsFill
    from ..parts import Shard

METHOD_PLACEHOLDER = "{method}"  # in --out: one proposals file per --method

ORDER = 60  # googlenet --help lists the commands by layer (detection: proposals first, then the detector)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.proposals import METHODS

    p = sub.add_parser(
        "proposals",
        help="region proposals (Selective Search, MultiBox) for a detection split, as JSON",
        description="Compute the region proposals of every image of a detection split and write "
        '{"<image_id>": [[xmin, ymin, xmax, ymax], ...]} (inclusive 1-based pixels) to --out. Prints the '
        "mean proposals per image, the coverage (share of ground-truth boxes some proposal overlaps "
        "with IoU >= 0.5) and the time per image, then for every --method the recall at IoU 0.5 and 0.7 "
        "and the average recall (IoU .50:.95) at 100, 300 and 1000 proposals (Hosang et al. 2016). "
        "Results are cached ($GOOGLENET_CACHE/proposals).",
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
        action="extend",
        nargs="+",
        help="selective-search: R-CNN fast mode (k 50, 100); selective-search-2x: the paper's "
        "superpixel size x2 (k 100, 200); multibox: 200 MultiBox boxes; paper: selective-search-2x "
        "+ the best MultiBox boxes, 0.2 per x2 box (the paper's 200 per ~1,000), at most 200, those "
        "duplicating an x2 box dropped. Several (or --method repeated): compared side by side",
    )
    p.add_argument("--multibox", type=Path, default=None, metavar="DIR", help="trained MultiBox model folder")
    add_out_argument(
        p,
        type=str,
        required=True,
        metavar="FILE.json",
        help=f"proposals file to write; with several --method, {METHOD_PLACEHOLDER} in the name is each "
        "method's (e.g. proposals-{method}.json)",
    )
    add_json_argument(p, what="the recall of every method (the table goes to stderr with '-')")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="draw recall (IoU 0.5, 0.7) and average recall against the number of proposals, and recall "
        "against IoU at 100 proposals, for every method (PNG)",
    )
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all usable CPUs)")
    p.add_argument("--strict-data", action="store_true", help="stop at the first bad annotation or image")
    p.add_argument("--refresh", action="store_true", help="recompute even when the cache holds the result")
    add_shard_argument(p, parts="the proposals cache (GOOGLENET_CACHE: a folder every machine sees)")
    add_dry_run_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cpu import cpu_count
    from ..detection.datasets import drop_unreadable, open_detection_dataset
    from ..detection.estimates import estimate_proposals
    from ..detection.proposal_recall import ProposalRecall, plot_proposal_recall
    from ..detection.proposals import check_method, proposal_method
    from ..training.distributed import job_shard

    names = list(dict.fromkeys(args.method))
    if len(names) > 1 and METHOD_PLACEHOLDER not in args.out:
        raise GoogLeNetError(
            f"--out {args.out} names one file; with several --method put {METHOD_PLACEHOLDER} in it "
            f"(e.g. proposals-{METHOD_PLACEHOLDER}.json)"
        )
    outs = {name: Path(args.out.replace(METHOD_PLACEHOLDER, name)) for name in names}
    for out in outs.values():
        check_output_file(out, "--out", example="proposals.json")
    check_json_output(args, example="recall.json")
    if args.plot is not None:
        check_output_file(args.plot, "--plot", example="recall.png")
    workers = cpu_count() if args.workers is None else args.workers
    if workers < 0:
        raise GoogLeNetError(f"--workers must be >= 0. Got {workers}")
    shard = job_shard(args.shard)
    methods = [proposal_method(name, multibox=args.multibox) for name in names]
    for method in methods:
        check_method(method)
    dataset = open_detection_dataset(args.data, args.split, strict=args.strict_data)
    if args.dry_run:
        for method in methods:
            print(
                estimate_proposals(
                    dataset, method, shard=shard, workers=workers, refresh=args.refresh
                ).format()
            )
        return 0
    if args.strict_data:  # the first image that cannot be decoded stops the command before any work
        drop_unreadable(dataset, strict=True, workers=workers)
    # With --json on stdout everything else goes to stderr, so that stdout is one JSON document.
    say = sys.stderr if args.json == STDOUT else sys.stdout
    readable: DetectionDataset | None = None
    recalls = []
    for method in methods:
        filled = _fill(args, dataset, method, shard, workers, outs[method.name], say)
        if filled is None:
            continue  # a shard: its part is done, the merge comes later
        # Images that cannot be decoded (named in a warning each) have no proposals: left out of the
        # file and of the coverage. Their (empty) entries stay in the cache the other commands share.
        if readable is None:
            readable = drop_unreadable(dataset, workers=workers)
        recalls.append(_report(*filled, workers, method, readable, outs[method.name], say))
    if not recalls:
        return 0
    result = ProposalRecall(recalls, data=str(dataset.root), split=dataset.split)
    print(result.format_table(), file=say)
    if args.json is not None:
        write_json(args, json.dumps(result.to_json(), indent=1))
    if args.plot is not None:
        print(f"recall curves -> {plot_proposal_recall(result, args.plot)}", file=say)
    return 0


def _fill(
    args: argparse.Namespace,
    dataset: DetectionDataset,
    method: ProposalMethod,
    shard: Shard | None,
    workers: int,
    out: Path,
    say: TextIO,
) -> tuple[ProposalsFill, float] | None:
    """Fill ``method``'s cache entry: the fill and its wall seconds; None for a shard's part (``--shard``
    or a torchrun rank), which is reported here."""
    from tqdm import tqdm

    from ..detection.proposal_job import proposals_job

    share = len(shard.images(len(dataset))) if shard is not None else len(dataset)
    desc = f"proposals {method.name}" + (f" shard {shard}" if shard is not None else "")
    t0 = [time.perf_counter()]
    bars: list[Any] = []  # made at the first image, so that the estimate is printed above it

    def said(estimate: CostEstimate) -> None:
        print(estimate.format(), file=sys.stderr, flush=True)
        t0[0] = time.perf_counter()  # the seconds per image leave the estimate's warm-up out

    def step(n: int) -> None:
        if not bars:
            bars.append(tqdm(total=share, desc=desc, unit="img", file=sys.stderr, disable=None))
        bars[0].update(n)

    try:
        fill = proposals_job(
            dataset, method, shard=shard, workers=workers, progress=step, refresh=args.refresh,
            on_estimate=said,
        )  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    wall = time.perf_counter() - t0[0]
    if fill.merged:
        return fill, wall
    print(
        f"{method.name} on {dataset.root} split {dataset.split!r}, shard {shard}: {fill.images} of "
        f"{len(dataset)} images -> {fill.parts}",
        file=say,
    )
    print(_work_line(fill, wall, workers), file=say)
    left = f"{fill.chunks_left} of {fill.chunks} chunks left to other shards" if fill.chunks_left else ""
    if args.shard is None:  # a torchrun rank: rank 0 merges once every rank is done
        print(f"  rank 0 merges the parts and writes {out}", file=say)
    else:
        print(
            f"  {left or 'every shard is done'}; the same command without --shard then writes {out}", file=say
        )
    return None


def _report(
    fill: ProposalsFill,
    wall: float,
    workers: int,
    method: ProposalMethod,
    readable: DetectionDataset,
    out: Path,
    say: TextIO,
) -> MethodRecall:
    """Write ``method``'s proposals file (the readable images'), print its summary and return its
    recall curves (with the seconds per image and core when its images were computed here)."""
    from ..detection.proposal_recall import proposal_recall
    from ..detection.proposals import write_proposals

    proposals = {i: fill.proposals[i] for i in readable.image_ids}
    write_proposals(out, proposals)
    seconds = wall / fill.computed * max(1, min(workers, fill.computed)) if fill.computed else None
    recall = proposal_recall(method.name, proposals, readable.targets(), seconds_per_image=seconds)
    covered = recall.at(None)["recall_0.5"]  # the coverage (proposal_recall.coverage) at IoU 0.5
    cov_text = "n/a (no ground-truth boxes)" if math.isnan(covered) else f"{100 * covered:.1f}%"
    print(
        f"{method.name} on {readable.root} split {readable.split!r}: {len(proposals)} images -> {out}",
        file=say,
    )
    print(f"  mean proposals per image: {recall.proposals_per_image:.1f}", file=say)
    print(f"  coverage (ground-truth boxes with a proposal at IoU >= 0.5): {cov_text}", file=say)
    if readable.unreadable:
        print(
            f"  {len(readable.unreadable)} unreadable image(s) left out (named above; --strict-data stops)",
            file=say,
        )
    if fill.from_entry:
        print(f"  read from cache {fill.path} ({wall:.2f} s; --refresh recomputes)", file=say)
    elif fill.computed == 0:
        print(f"  merged the {fill.chunks} chunks of {fill.parts} into the cache {fill.path}", file=say)
    else:
        print(_work_line(fill, wall, workers), file=say)
    return recall


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
