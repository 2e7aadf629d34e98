"""``googlenet evaluate-detection``: detection mAP (paper section 8, Tables 4 and 5) on a dataset split.

The detections come from a detections file (:mod:`googlenet.detection.detections`); the rule is
the ILSVRC2014 devkit's or PASCAL VOC's (:mod:`googlenet.detection.metrics`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import GoogLeNetError

RULE_HELP = (
    "ilsvrc: ILSVRC2014 eval_detection.m (per-object IoU threshold min(0.5, wh/((w+10)(h+10))), blacklist); "
    "voc07: VOCevaldet.m with 11-point AP; voc12: VOCevaldet.m with all-points AP (VOC2010+)"
)


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
    # Where the detections come from: one source. (`--detector DIR`, a trained detector run on the
    # split, joins this group; `detections_from` is where its branch goes.)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--detections", type=Path, metavar="FILE.json", help="detections file to score")
    p.add_argument("--rule", required=True, choices=RULES, help=RULE_HELP)
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the result as JSON")
    p.add_argument(
        "--strict-data",
        action="store_true",
        help="stop at the first bad annotation file or object (default: skip it with a warning)",
    )
    p.set_defaults(func=run)


def check_output_file(path: Path, flag: str) -> None:
    """Refuse ``path`` before any work if it cannot be written: a directory, under a file, or in a
    folder without write permission. Missing parent folders are fine (atomic_write creates them)."""
    if path.is_dir():
        raise GoogLeNetError(f"{flag} {path} is a directory; give a file name")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GoogLeNetError(f"{flag} {path} cannot be written: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GoogLeNetError(f"{flag} {path} cannot be written: no write permission in {ancestor}")


def detections_from(args: argparse.Namespace, dataset: Any) -> tuple[list[Any], dict[str, Any]]:
    """The detections to score and what they came from (recorded in ``--json``)."""
    from ..detection.detections import read_detections

    detections = read_detections(args.detections, dataset.class_names, dataset.image_ids)
    return detections, {"detections": str(args.detections)}


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..detection.datasets import open_detection_dataset
    from ..detection.metrics import evaluate_detections

    if args.json is not None:
        check_output_file(args.json, "--json")
    dataset = open_detection_dataset(args.data, args.split, strict=args.strict_data)
    if dataset.skipped:
        print(
            f"googlenet evaluate-detection: warning: {len(dataset.skipped)} annotation files/objects of "
            f"{dataset.root} [{dataset.split}] skipped (first: {dataset.skipped[0][0]}: "
            f"{dataset.skipped[0][1]}); --strict-data stops at the first",
            file=sys.stderr,
        )
    detections, source = detections_from(args, dataset)
    result = evaluate_detections(
        detections, dataset.targets(), dataset.class_names, args.rule, blacklist=dataset.blacklist
    )
    print(
        f"{len(dataset)} images of {dataset.root} [{dataset.split}, {dataset.layout}], "
        f"{len(dataset.blacklist)} blacklisted (image, class) pairs"
    )
    print(result.format_table())
    if args.json is not None:
        from ..atomic import atomic_write_text

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
        atomic_write_text(args.json, json.dumps(record, indent=1) + "\n")
    return 0
