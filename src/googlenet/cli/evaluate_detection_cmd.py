"""``googlenet evaluate-detection``: detection mAP (paper section 8, Tables 4 and 5) on a dataset split.

The detections come from a detections file (:func:`googlenet.detection.evaluation.evaluate_detections_file`)
or from a trained detector run on the split for every members x proposals setting asked for
(:func:`googlenet.detection.evaluate_detector`); the rule is the ILSVRC2014 devkit's, PASCAL
VOC's or COCO's (:mod:`googlenet.detection.metrics`), or all of them side by side
(:mod:`googlenet.detection.rule_comparison`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..errors import GoogLeNetError
from .common import (
    STDOUT,
    add_classes_argument,
    add_estimate_arguments,
    add_json_argument,
    add_shard_argument,
    check_json_output,
    check_output_file,
    estimate_printer,
    json_flag,
    write_json,
)

RULE_HELP = (
    "ilsvrc: ILSVRC2014 eval_detection.m (per-object IoU threshold min(0.5, wh/((w+10)(h+10))), blacklist); "
    "voc07: VOCevaldet.m with 11-point AP; voc12: VOCevaldet.m with all-points AP (VOC2010+); "
    "coco: pycocotools COCOeval (AP over IoU .50:.95, AP50, AP75, APs/m/l, AR1/10/100; difficult objects "
    "as crowds); all: every rule side by side, with the per-class differences"
)


ORDER = 64  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.metrics import ALL_RULES, RULES

    p = sub.add_parser(
        "evaluate-detection",
        help="detection mAP of a detections file or detector under the ILSVRC2014, PASCAL VOC or COCO rule",
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
        "--each-member",
        action="store_true",
        help="with --detector: also every member alone (their networks run anyway: only scoring is added), "
        "so that each ensemble's interval against the mean and the best of its members is computed too",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="DRAWS",
        help="with --detector: resamples of the images for the paired 95%% intervals of each ensemble's mAP "
        "against member 0 (and the mean and best member with --each-member) and of each proposal method "
        "against the first (default 1000; 0: none)",
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
    p.add_argument("--rule", required=True, choices=(*RULES, ALL_RULES), help=RULE_HELP)
    add_json_argument(p, what="the result (on stdout the tables go to stderr)", out_alias=True)
    p.add_argument(
        "--detections-out",
        type=Path,
        metavar="FILE.json",
        help="with --detector: also write the detections of the full run (the largest first-K ensemble of "
        "--members, by default every member, with the first --proposals method) to FILE.json as a "
        "detections file (atomically; what --detections and `googlenet report --detections` read); the "
        "--json record names it and its run under detections_file",
    )
    add_shard_argument(p, parts="FILE.parts (with --detector and --json FILE; a folder every machine sees)")
    add_estimate_arguments(p)
    p.add_argument(
        "--strict-data",
        action="store_true",
        help="stop at the first bad annotation file or object, or image that cannot be decoded (default: "
        "skip the file or object with a warning; an unreadable image counts as one without detections)",
    )
    add_classes_argument(p, what="with --detections, the class list (with --detector: the detector's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..detection.datasets import parse_classes
    from ..detection.evaluation import (
        estimate_detector_evaluation,
        evaluate_detections_file,
        evaluate_detector,
    )
    from ..detection.evaluation_parts import DetectorShardPart

    check_json_output(args, example="eval.json")
    if args.detections_out is not None:
        if args.detector is None:
            raise GoogLeNetError("--detections-out applies with --detector only (it writes the detector's)")
        if args.shard is not None:
            raise GoogLeNetError(
                "--detections-out applies to the whole split: pass it to the command without --shard "
                "that merges the parts"
            )
        if args.json not in (None, STDOUT) and Path(args.json).resolve() == args.detections_out.resolve():
            raise GoogLeNetError(f"--detections-out {args.detections_out} is the {json_flag(args)} file too")
        check_output_file(args.detections_out, "--detections-out", example="detections.json")
    if args.detector is None and (
        args.members or args.proposals or args.multibox or args.each_member or args.bootstrap is not None
    ):
        raise GoogLeNetError(
            "--members, --each-member, --proposals, --multibox and --bootstrap apply with --detector only"
        )
    if args.bootstrap is not None and args.bootstrap < 0:
        raise GoogLeNetError(f"--bootstrap must be 0 (no intervals) or more draws. Got {args.bootstrap}")
    if args.detector is not None and args.classes is not None:
        raise GoogLeNetError("--classes applies with --detections only (a detector has its own classes)")
    # A detector's shards leave their parts beside the JSON file; without --shard they are merged.
    parts = (
        Path(f"{args.json}.parts") if args.detector is not None and args.json not in (None, STDOUT) else None
    )
    if args.shard is not None and parts is None:
        raise GoogLeNetError("--shard needs --detector and --json FILE (the shard's part goes to FILE.parts)")
    common = {"split": args.split, "rule": args.rule, "strict_data": args.strict_data}
    if args.dry_run and args.detector is None:
        raise GoogLeNetError(
            "--dry-run applies with --detector only (scoring a detections file takes seconds)"
        )
    if args.detector is None:
        classes = parse_classes(args.classes) if args.classes is not None else None
        result = evaluate_detections_file(args.detections, args.data, classes=classes, **common)
    else:
        job = dict(
            members=args.members, each_member=args.each_member, proposals=args.proposals,
            multibox=args.multibox, workers=args.workers, backend=args.backend, precision=args.precision,
            shard=args.shard, parts=parts, **common,
        )  # fmt: skip
        if args.dry_run:
            print(estimate_detector_evaluation(args.detector, args.data, **job).format())
            return 0
        if args.bootstrap is not None:
            job["bootstrap"] = args.bootstrap
        # The estimate goes to stderr with the progress: stdout keeps the tables (or the JSON).
        result = evaluate_detector(
            args.detector, args.data, progress=True, **job,
            on_estimate=estimate_printer(args),
        )  # fmt: skip
    if isinstance(result, DetectorShardPart):
        done = "was there already" if result.done_before else "written"
        print(f"shard {result.shard}: {result.images} of {result.total} images; part {done}: {result.path}")
        if args.shard is None:  # a torchrun rank: rank 0 merges once every rank is done
            print(f"  rank 0 merges the parts and writes {args.json}")
        else:
            left = ", ".join(map(str, result.shards_left)) or "none"
            print(
                f"  shards left: {left}; then the same command without --shard merges them into {args.json}"
            )
        return 0
    if result.skipped:
        print(
            f"googlenet evaluate-detection: warning: {len(result.skipped)} annotation files/objects of "
            f"{result.data} [{result.split}] skipped (first: {result.skipped[0][0]}: "
            f"{result.skipped[0][1]}); --strict-data stops at the first",
            file=sys.stderr,
        )
    for _, why in result.unreadable:  # "cannot decode image PATH: why"
        print(
            f"googlenet evaluate-detection: warning: {why}; scored as an image without detections",
            file=sys.stderr,
        )
    # With --json on stdout the tables go to stderr, so that stdout is one JSON document.
    tables = sys.stderr if args.json == STDOUT else sys.stdout
    print(result.format_table(), file=tables)
    # The detections first, so that the record never names a file that is not there.
    written = None
    if args.detections_out is not None:
        try:
            written = result.write_detections(args.detections_out)
        except OSError as exc:
            why = exc.strerror or exc
            raise GoogLeNetError(f"--detections-out {args.detections_out}: cannot write ({why})") from None
        print(f"detections of the {written['members']}-member run ({written['proposals']}): "
              f"{args.detections_out}", file=tables)  # fmt: skip
    if args.json is not None:
        record = {
            **result.to_dict(),
            **({"detections_file": written} if written is not None else {}),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "googlenet_version": __version__,
        }
        write_json(args, json.dumps(record, indent=1))
    return 0
