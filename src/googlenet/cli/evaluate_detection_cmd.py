"""``googlenet evaluate-detection``: detection mAP (paper section 8, Tables 4 and 5) on a dataset split.

The detections come from a detections file (:mod:`googlenet.detection.detections`); the rule is
the ILSVRC2014 devkit's or PASCAL VOC's (:mod:`googlenet.detection.metrics`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import GoogLeNetError
from ..progress import progress_bar
from .common import STDOUT, add_json_argument, check_json_output, write_json

RULE_HELP = (
    "ilsvrc: ILSVRC2014 eval_detection.m (per-object IoU threshold min(0.5, wh/((w+10)(h+10))), blacklist); "
    "voc07: VOCevaldet.m with 11-point AP; voc12: VOCevaldet.m with all-points AP (VOC2010+)"
)


ORDER = 64  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.metrics import RULES

    p = sub.add_parser(
        "evaluate-detection",
        help="detection mAP of a detections file under the ILSVRC2014 or PASCAL VOC rule",
        description="Per-class AP and mAP (paper section 8) of detections on a VOC, ILSVRC DET or COCO "
        "split. A detections file is a JSON list of {image_id, label, bbox [xmin, ymin, xmax, ymax] "
        "(inclusive pixels), score}; image_id is the annotation file stem, label the class name.",
    )
    p.add_argument(
        "--data", required=True, help="detection dataset folder (VOC, ILSVRC DET, COCO) or 'builtin'"
    )
    p.add_argument("--split", default="val", help="split to evaluate on (default val)")
    # Where the detections come from: a file, or a trained detector run on the split here.
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--detections", type=Path, metavar="FILE.json", help="detections file to score")
    source.add_argument(
        "--detector", type=Path, metavar="DIR", help="detector directory (train-detector --out)"
    )
    p.add_argument(
        "--members",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="with --detector: evaluate with the first K members, for each K given (section 8: 1 vs 6)",
    )
    p.add_argument(
        "--proposals",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="with --detector: proposal methods to compare (default: the detector's own)",
    )
    p.add_argument(
        "--multibox", default=None, metavar="DIR", help="MultiBox model for multibox/paper proposals"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="proposal and warping processes (default: all CPUs)"
    )
    p.add_argument("--backend", default="torch", choices=("auto", "torch", "onnxruntime", "openvino"))
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    p.add_argument("--rule", required=True, choices=RULES, help=RULE_HELP)
    add_json_argument(p, what="the result (on stdout the tables go to stderr)", out_alias=True)
    p.add_argument(
        "--strict-data",
        action="store_true",
        help="stop at the first bad annotation file or object (default: skip it with a warning)",
    )
    p.set_defaults(func=run)


def detections_from(args: argparse.Namespace, dataset: Any) -> tuple[list[Any], dict[str, Any]]:
    """The detections of a detections file, and what they came from (recorded in ``--json``)."""
    from ..detection.detections import read_detections

    detections = read_detections(args.detections, dataset.class_names, dataset.image_ids)
    return detections, {"detections": str(args.detections)}


def detector_runs(args: argparse.Namespace, dataset: Any) -> list[dict[str, Any]]:
    """Run the detector on the split for every (members, proposals) setting asked for; each entry
    has the detections and what the comparison table shows (members, method, proposals per image,
    coverage, seconds per image by stage)."""
    import numpy as np

    from ..detection.detections import detections_of
    from ..detection.detector import Detector, read_manifest
    from ..detection.proposals import cached_proposals, coverage, default_workers, proposal_method

    manifest = read_manifest(args.detector)
    if manifest.class_names != dataset.class_names:
        raise GoogLeNetError(
            f"detector {args.detector} was trained on classes {manifest.class_names}; {dataset.root} has "
            f"{dataset.class_names}"
        )
    members = args.members or [len(manifest.members)]
    for k in members:
        if not 1 <= k <= len(manifest.members):
            raise GoogLeNetError(
                f"--members {k}: the detector {args.detector} has {len(manifest.members)} member(s)"
            )
    own = manifest.proposal_method()
    methods = [own] if not args.proposals else [
        own if name == own.name else proposal_method(name, multibox=args.multibox) for name in args.proposals
    ]  # fmt: skip
    workers = default_workers() if args.workers is None else args.workers
    runs = []
    with progress_bar(len(dataset) * len(methods), "proposals") as bar:
        proposals = {
            m.name: cached_proposals(dataset, m, workers=workers, progress=bar.update) for m in methods
        }
    for method in methods:
        props = proposals[method.name]
        for k in members:
            detector = Detector.load(
                args.detector, members=k, proposals=method, backend=args.backend, precision=args.precision
            )
            with progress_bar(len(dataset), f"detect ({k} member(s), {method.name})") as bar:
                found = detector.detect_dataset(dataset, props, workers=min(workers, 4), progress=bar.update)
            t = detector.times
            n = max(t.images, 1)
            runs.append(
                {
                    "members": k,
                    "proposals": method.name,
                    "proposals_per_image": float(np.mean([len(v) for v in props.values()])) if props else 0.0,
                    "coverage": coverage(props, dataset.targets()),
                    "seconds_per_image": {
                        "warp": t.warp / n,
                        "network": t.network / n,
                        "nms": t.scoring / n,
                    },
                    "overhead_ratio": t.overhead_ratio(),
                    "backend": f"{detector.predictors[0].backend}/{detector.predictors[0].precision}",
                    "detections": detections_of(found),
                }
            )
    return runs


def comparison_table(runs: list[dict[str, Any]], rule: str) -> str:
    """Section 8's comparisons, one line per (members, proposals): mAP, proposals, coverage, cost."""
    lines = [
        f"{'members':>7}  {'proposals':<20} {'mAP (' + rule + ')':>12} {'props/img':>9} {'coverage':>8} "
        f"{'warp s':>7} {'net s':>7} {'nms s':>7} {'overhead':>8}"
    ]
    for r in runs:
        s = r["seconds_per_image"]
        lines.append(
            f"{r['members']:>7}  {r['proposals']:<20} {100 * r['evaluation'].mAP:>11.2f}% "
            f"{r['proposals_per_image']:>9.0f} {100 * r['coverage']:>7.1f}% {s['warp']:>7.3f} "
            f"{s['network']:>7.3f} {s['nms']:>7.3f} {100 * r['overhead_ratio']:>7.1f}%"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..detection.datasets import open_detection_dataset
    from ..detection.metrics import evaluate_detections

    check_json_output(args, example="eval.json")
    dataset = open_detection_dataset(args.data, args.split, strict=args.strict_data)
    if dataset.skipped:
        print(
            f"googlenet evaluate-detection: warning: {len(dataset.skipped)} annotation files/objects of "
            f"{dataset.root} [{dataset.split}] skipped (first: {dataset.skipped[0][0]}: "
            f"{dataset.skipped[0][1]}); --strict-data stops at the first",
            file=sys.stderr,
        )
    if args.detector is None and (args.members or args.proposals or args.multibox):
        raise GoogLeNetError("--members, --proposals and --multibox apply with --detector only")
    # With --json on stdout the tables go to stderr, so that stdout is one JSON document.
    table_file = sys.stderr if args.json == STDOUT else sys.stdout
    header = (
        f"{len(dataset)} images of {dataset.root} [{dataset.split}, {dataset.layout}], "
        f"{len(dataset.blacklist)} blacklisted (image, class) pairs"
    )
    if args.detector is None:
        detections, source = detections_from(args, dataset)
        result = evaluate_detections(
            detections, dataset.targets(), dataset.class_names, args.rule, blacklist=dataset.blacklist
        )
        print(header, file=table_file)
        print(result.format_table(), file=table_file)
    else:
        runs = detector_runs(args, dataset)
        for run in runs:
            run["evaluation"] = evaluate_detections(
                run.pop("detections"), dataset.targets(), dataset.class_names, args.rule,
                blacklist=dataset.blacklist,
            )  # fmt: skip
        print(header, file=table_file)
        print(comparison_table(runs, args.rule), file=table_file)
        result = runs[-1]["evaluation"]
        print(result.format_table(), file=table_file)
        source = {
            "detector": str(args.detector),
            "runs": [
                {**{k: v for k, v in r.items() if k != "evaluation"}, **r["evaluation"].to_json()}
                for r in runs
            ],
        }
    if args.json is not None:
        record = {
            "format": "googlenet-evaluate-detection",
            "format_version": 1,
            **result.to_json(),
            **source,
            "data": str(dataset.root),
            "data_arg": str(args.data),
            "split": dataset.split,
            "layout": dataset.layout,
            "num_images": len(dataset),
            "num_blacklisted_pairs": len(dataset.blacklist),
            "num_skipped": len(dataset.skipped),
            "strict_data": bool(args.strict_data),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "googlenet_version": __version__,
        }
        write_json(args, json.dumps(record, indent=1))
    return 0
