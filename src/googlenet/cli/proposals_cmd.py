"""``googlenet proposals``: region proposals for a detection split (paper section 8), as a JSON file.

Selective Search in R-CNN's fast mode (``selective-search``), with the paper's superpixel size x2
(``selective-search-2x``), MultiBox (``multibox``) or the paper's combination (``paper``); see
:mod:`googlenet.detection.proposals`. Results are cached per dataset and method.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from ..errors import GoogLeNetError
from .common import add_out_argument, check_output_file

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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..cpu import cpu_count
    from ..detection.datasets import open_detection_dataset
    from ..detection.proposals import (
        cached_proposals,
        check_method,
        coverage,
        proposal_method,
        proposals_cache_path,
        write_proposals,
    )

    check_output_file(args.out, "--out", example="proposals.json")
    workers = cpu_count() if args.workers is None else args.workers
    if workers < 0:
        raise GoogLeNetError(f"--workers must be >= 0. Got {workers}")
    method = proposal_method(args.method, multibox=args.multibox)
    check_method(method)
    dataset = open_detection_dataset(args.data, args.split, strict=args.strict_data)
    cache = proposals_cache_path(dataset, method)
    before = _stamp(cache)
    t0 = time.perf_counter()
    with tqdm(
        total=len(dataset), desc=f"proposals {method.name}", unit="img", file=sys.stderr, disable=None
    ) as bar:
        proposals = cached_proposals(
            dataset, method, workers=workers, progress=bar.update, refresh=args.refresh
        )
    wall = time.perf_counter() - t0
    write_proposals(args.out, proposals)

    n = len(proposals)
    mean = sum(len(b) for b in proposals.values()) / max(n, 1)
    cov = coverage(proposals, dataset.targets())
    cov_text = "n/a (no ground-truth boxes)" if math.isnan(cov) else f"{100 * cov:.1f}%"
    print(f"{method.name} on {dataset.root} split {dataset.split!r}: {n} images -> {args.out}")
    print(f"  mean proposals per image: {mean:.1f}")
    print(f"  coverage (ground-truth boxes with a proposal at IoU >= 0.5): {cov_text}")
    # An entry that was used is not rewritten; a missing, stale or damaged one is.
    if before is not None and _stamp(cache) == before:
        print(f"  read from cache {cache} ({wall:.2f} s; --refresh recomputes)")
    else:
        cores = max(1, min(workers, n))
        per_image = wall / max(n, 1)
        print(
            f"  seconds per image: {per_image:.3f} wall, {per_image * cores:.3f} per core ({cores} processes)"
        )
    return 0


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
