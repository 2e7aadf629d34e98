"""``googlenet train-detector``: the paper's detector (section 8), an ensemble of region classifiers.

Parsing and wiring only: the recipe flags are ``googlenet train``'s (:func:`.common.
add_recipe_arguments`); :func:`googlenet.detection.train_detector` trains the members (resume: re-run
the same command; torchrun and Polyak averaging work as for classification) and writes
``detector.json`` once every member is trained.
"""

from __future__ import annotations

import argparse
import sys

from .common import (
    add_classes_argument,
    add_estimate_arguments,
    add_recipe_arguments,
    configure_logging,
    estimate_printer,
    recipe_overrides,
)

ORDER = 62  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.detector import PAPER_DETECTOR_MEMBERS
    from ..detection.proposals import METHODS
    from ..detection.training import DEFAULT_PROPOSALS, DETECTOR_RECIPE

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
        default=DEFAULT_PROPOSALS,
        choices=METHODS,
        help="proposal method (default selective-search-2x: the paper's superpixels x2; paper = x2 + "
        "MultiBox boxes, 0.2 per x2 box, at most 200; needs --multibox)",
    )
    g.add_argument("--multibox", default=None, metavar="DIR", help="MultiBox model (train-multibox --out)")
    g.add_argument(
        "--members",
        type=int,
        default=PAPER_DETECTOR_MEMBERS,
        metavar="N",
        help=f"region classifiers in the ensemble (default {PAPER_DETECTOR_MEMBERS}, the paper's)",
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
    add_classes_argument(g, what="the object classes (their order is the outputs')")
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
        defaults=DETECTOR_RECIPE,
    )
    add_estimate_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detection.training import DETECTOR_RECIPE, estimate_train_detector, train_detector
    from ..runs import DetectorLayout
    from ..training.config import resolve_config
    from ..training.distributed import launch_position
    from ..training.ensemble import EnsembleInterrupted

    overrides = recipe_overrides(args)
    configure_logging()  # before the config: resolving it may say which model --init-from chose
    config = resolve_config(args.config_file, overrides, defaults=DETECTOR_RECIPE)
    scoring = {k: getattr(args, k) for k in ("nms_iou", "max_detections") if getattr(args, k) is not None}

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    job = dict(
        members=args.members, proposals=args.proposals, multibox=args.multibox,
        proposal_workers=args.proposal_workers, classes=args.classes,
    )  # fmt: skip
    if args.dry_run:
        print(estimate_train_detector(config, **job).format())
        return 0
    # The estimate goes to stderr with the training's log, once (rank 0 under torchrun).
    estimate = estimate_printer(args) if launch_position()[0] == 0 else None
    try:
        manifest = train_detector(
            config, same_init=args.same_init, scoring=scoring, messages=say, on_estimate=estimate, **job
        )
    except EnsembleInterrupted as stop:
        say(
            f"googlenet train-detector: member {stop.member} stopped by {stop.signal_name}; checkpoint "
            "written. Re-run the same command to continue."
        )
        return stop.exit_code
    print(
        f"detector: {DetectorLayout(config.out).manifest} ({args.members} member(s), "
        f"{len(manifest.class_names)} classes, proposals {manifest.proposal_method().name})"
    )
    return 0
