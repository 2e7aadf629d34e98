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
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import GoogLeNetError
from .common import (
    STDOUT,
    add_estimate_arguments,
    add_json_argument,
    add_out_argument,
    add_shard_argument,
    check_json_output,
    check_output_file,
    estimate_printer,
    write_json,
)

if TYPE_CHECKING:
    from ..detection.proposal_job import MethodProposals, ProposalsResult

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
    add_estimate_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detection.proposal_job import estimate_propose_split, propose_split
    from ..detection.proposal_recall import plot_proposal_recall
    from ..detection.proposals import write_proposals

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
    if args.workers is not None and args.workers < 0:
        raise GoogLeNetError(f"--workers must be >= 0. Got {args.workers}")
    job = dict(
        split=args.split, multibox=args.multibox, workers=args.workers, shard=args.shard,
        refresh=args.refresh, strict_data=args.strict_data,
    )  # fmt: skip
    if args.dry_run:
        for estimate in estimate_propose_split(args.data, names, **job):
            print(estimate.format())
        return 0
    result = propose_split(
        args.data, names, progress=True, **job,
        on_estimate=estimate_printer(args),
    )  # fmt: skip
    # With --json on stdout everything else goes to stderr, so that stdout is one JSON document.
    say = sys.stderr if args.json == STDOUT else sys.stdout
    for found in result.methods:
        out = outs[found.method.name]
        if found.is_part:  # a shard: its part is done, the merge comes later
            _report_part(found, result, out, torchrun=args.shard is None, say=say)
        else:
            write_proposals(out, found.proposals)
            _report(found, result, out, say)
    recall = result.recall
    if recall is None:
        return 0
    print(recall.format_table(), file=say)
    if args.json is not None:
        write_json(args, json.dumps(recall.to_json(), indent=1))
    if args.plot is not None:
        print(f"recall curves -> {plot_proposal_recall(recall, args.plot)}", file=say)
    return 0


def _report_part(
    found: MethodProposals, result: ProposalsResult, out: Path, *, torchrun: bool, say: TextIO
) -> None:
    """What a shard's part (``--shard``, or a torchrun rank) did and what comes next."""
    fill, name = found.fill, found.method.name
    print(
        f"{name} on {result.data} split {result.split!r}, shard {result.shard}: {fill.images} of "
        f"{result.images} images -> {fill.parts}",
        file=say,
    )
    print(_work_line(found), file=say)
    left = f"{fill.chunks_left} of {fill.chunks} chunks left to other shards" if fill.chunks_left else ""
    if torchrun:  # rank 0 merges once every rank is done
        print(f"  rank 0 merges the parts and writes {out}", file=say)
    else:
        print(
            f"  {left or 'every shard is done'}; the same command without --shard then writes {out}", file=say
        )


def _report(found: MethodProposals, result: ProposalsResult, out: Path, say: TextIO) -> None:
    """A method's proposals file, its coverage and where its proposals came from."""
    assert found.proposals is not None and found.recall is not None
    fill, name = found.fill, found.method.name
    covered = found.coverage
    cov_text = "n/a (no ground-truth boxes)" if math.isnan(covered) else f"{100 * covered:.1f}%"
    print(
        f"{name} on {result.data} split {result.split!r}: {len(found.proposals)} images -> {out}",
        file=say,
    )
    print(f"  mean proposals per image: {found.recall.proposals_per_image:.1f}", file=say)
    print(f"  coverage (ground-truth boxes with a proposal at IoU >= 0.5): {cov_text}", file=say)
    if result.unreadable:
        print(
            f"  {len(result.unreadable)} unreadable image(s) left out (named above; --strict-data stops)",
            file=say,
        )
    if fill.from_entry:
        print(f"  read from cache {fill.path} ({found.seconds:.2f} s; --refresh recomputes)", file=say)
    elif fill.computed == 0:
        print(f"  merged the {fill.chunks} chunks of {fill.parts} into the cache {fill.path}", file=say)
    else:
        print(_work_line(found), file=say)


def _work_line(found: MethodProposals) -> str:
    """What this process computed and how fast, and what a resumed run found done."""
    fill = found.fill
    resumed = f" ({fill.done_before} of {fill.images} images were already done)" if fill.done_before else ""
    if found.seconds_per_image is None or found.seconds_per_image_per_core is None:
        return f"  nothing left to compute{resumed}"
    return (
        f"  seconds per image: {found.seconds_per_image:.3f} wall, {found.seconds_per_image_per_core:.3f} "
        f"per core ({found.processes} processes)" + resumed
    )
