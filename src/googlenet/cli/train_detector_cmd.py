"""``googlenet train-detector``: the paper's detector (section 8), an ensemble of region classifiers.

Parsing and wiring only: the recipe flags are ``googlenet train``'s (:func:`.train_cmd.
add_recipe_arguments`); :func:`googlenet.detection.training.region_task` supplies the regions and
:func:`googlenet.training.ensemble.train_ensemble` trains the members, so resume (re-run the same
command), torchrun and Polyak averaging work as for classification. The detector directory gets
``detector.json`` (:mod:`googlenet.detection.detector`) once every member is trained.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import add_recipe_arguments, configure_logging, recipe_overrides

DEFAULT_MEMBERS = 6  # section 8: "an ensemble of 6 ConvNets"


ORDER = 62  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.proposals import METHODS

    p = sub.add_parser(
        "train-detector",
        help="train the paper's detector: region classifiers on warped proposals (section 8); resumable",
        description="Train GoogLeNet's detector (section 8, R-CNN style): proposals of the train split "
        "(cached), regions with IoU >= 0.5 with a ground truth positives of its class and the rest "
        "background, batches of 1/4 positives, each region warped with 16/227 context padding; N "
        "members that differ in seed (data order and background sampling). Takes every `googlenet "
        "train` option except --resume; re-run the same command to continue. See docs/detection.md.",
    )
    g = p.add_argument_group("detector (section 8)")
    g.add_argument(
        "--proposals",
        default="selective-search-2x",
        choices=METHODS,
        help="proposal method (default selective-search-2x: the paper's superpixels x2; paper = x2 + "
        "200 MultiBox boxes, needs --multibox)",
    )
    g.add_argument("--multibox", default=None, metavar="DIR", help="MultiBox model (train-multibox --out)")
    g.add_argument(
        "--members",
        type=int,
        default=DEFAULT_MEMBERS,
        metavar="N",
        help=f"region classifiers in the ensemble (default {DEFAULT_MEMBERS}, the paper's)",
    )
    g.add_argument(
        "--same-init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every member starts from the same initial weights (default; with --init-from the new "
        "classifier layers are then alike too); --no-same-init: each member draws them from its own seed",
    )
    g.add_argument(
        "--proposal-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes computing proposals (default: every CPU of this process)",
    )
    g.add_argument("--nms-iou", type=float, default=None, help="per-class NMS IoU at test time (default 0.3)")
    g.add_argument("--max-detections", type=int, default=None, help="detections kept per image (default 100)")
    add_recipe_arguments(
        p,
        exclude={"resume", "layout", "builtin"},
        replace={
            "out": {"required": True, "help": "detector directory (members go to OUT/member_XX)"},
            "data": {
                "required": True,
                "help": "detection dataset (VOC, ILSVRC DET, COCO folder) or 'builtin'",
            },
        },
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detection.datasets import open_detection_dataset
    from ..detection.detector import DetectorManifest, write_manifest
    from ..detection.proposals import default_workers, proposal_method
    from ..detection.scoring import ScoringSettings
    from ..detection.training import member_dirs, region_task
    from ..errors import GoogLeNetError
    from ..training.config import resolve_config
    from ..training.ensemble import EnsembleInterrupted, train_ensemble

    if args.members < 1:
        raise GoogLeNetError(f"--members must be at least 1. Got {args.members}")
    config = resolve_config(args.config_file, recipe_overrides(args))
    config.validate()
    scoring = ScoringSettings(
        **{
            k: v
            for k, v in (("nms_iou", args.nms_iou), ("max_detections", args.max_detections))
            if v is not None
        }
    )
    method = proposal_method(args.proposals, multibox=args.multibox)
    class_names = open_detection_dataset(config.data, "train", strict=config.strict_data).class_names
    configure_logging()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    workers = default_workers() if args.proposal_workers is None else args.proposal_workers
    task = region_task(method, proposal_workers=workers, progress=say)

    def progress(i: int, state: str, run_dir: Any) -> None:
        words = {"skip": "complete, skipped", "start": "training", "resume": "resuming", "done": "done"}
        say(f"member {i + 1}/{args.members} ({run_dir}): {words[state]}")

    try:
        train_ensemble(
            config, args.members, args.out, same_init=args.same_init, on_member=progress, task=task
        )
    except EnsembleInterrupted as stop:
        say(
            f"googlenet train-detector: member {stop.member} stopped by {stop.signal_name}; checkpoint "
            "written. Re-run the same command to continue."
        )
        return stop.exit_code
    manifest = DetectorManifest(
        class_names=list(class_names),
        members=member_dirs(args.out, args.members),
        proposals=method.settings(),
        scoring=scoring.to_dict(),
        image_size=config.image_size,
        variant=config.model,
        data=str(config.data),
        init_from=getattr(config, "init_from", None),
    )
    path = write_manifest(args.out, manifest)
    print(f"detector: {path} ({args.members} member(s), {len(class_names)} classes, proposals {method.name})")
    return 0
