"""``googlenet train-multibox``: train the MultiBox proposal network (paper section 8, Erhan et al. 2014).

Parsing and wiring only: the recipe flags are ``googlenet train``'s (:func:`.common.
add_recipe_arguments`) with MultiBox's own defaults (:data:`googlenet.detection.multibox.
MULTIBOX_RECIPE`), and :func:`googlenet.detection.multibox.multibox_task` is the
:class:`~googlenet.training.task.Task` that :func:`googlenet.training.train.fit` trains, so resume,
torchrun, Polyak averaging, mid-epoch checkpoints and TensorBoard work as for the classifier. The
run directory is what ``googlenet proposals --method multibox|paper --multibox DIR`` reads;
docs/detection.md ("MultiBox") lists its files and the defaults. Under ``torchrun`` every rank runs
this.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from .common import add_recipe_arguments, configure_logging, recipe_overrides, stopped_early

# Flag -> (options field, type, help); the defaults are MultiBoxOptions', shown in --help.
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    (
        "--head",
        "head",
        str,
        "pool (average pool + linear, Erhan et al.'s K k-means priors) or grid "
        "(priors tied to the cells of --head-tap, a convolutional head)",
    ),
    ("--head-tap", "head_tap", str, "grid head: the Inception stage it predicts from"),
    ("--priors-per-cell", "priors_per_cell", int, "grid head: prior shapes per cell (k-means of log sizes)"),
    ("--head-hidden", "head_hidden", int, "grid head: channels of its 3x3 convolution"),
    ("--num-priors", "num_priors", int, "pool head: K, the boxes predicted per image (k-means priors)"),
    ("--alpha", "alpha", float, "weight of F_match in F = F_conf + alpha F_match"),
    ("--nms-iou", "nms_iou", float, "IoU above which a lower-scoring proposal is suppressed"),
    ("--top", "top", int, "proposals per image kept for the validation coverage (section 8: 200)"),
    ("--train-split", "train_split", str, "split to train on"),
    ("--val-split", "val_split", str, "split to report loss and coverage on after each epoch"),
    (
        "--epoch-images",
        "epoch_images",
        int,
        "images per epoch, drawn at random from the training split (default: one pass over it)",
    ),
)
# Recipe fields that mean nothing here: the classifier's folder layout, built-in set, augmentation
# (MultiBox flips, --no-flip), auxiliary heads (it has none), label smoothing; --resume is a switch.
_NOT_HERE = {"resume", "layout", "builtin", "augment", "aux_loss_weight", "label_smoothing"}


ORDER = 61  # googlenet --help lists the commands by layer (detection)


def register(sub: argparse._SubParsersAction) -> None:
    from ..detection.multibox import MULTIBOX_RECIPE, MultiBoxOptions

    defaults = {f.name: f.default for f in dataclasses.fields(MultiBoxOptions)}
    p = sub.add_parser(
        "train-multibox",
        help="train MultiBox (class-agnostic box proposals) on a detection dataset; resumable; torchrun",
        description="Train the MultiBox proposal network of the paper's detector (section 8; Erhan et "
        "al. 2014): K box residuals to priors and K confidences from the Inception backbone, loss "
        "F_conf + alpha F_match. The grid head (default) ties its priors to the cells of an Inception map "
        "and predicts them with a convolutional head; the pool head (Erhan et al.'s k-means priors, one "
        "linear layer after the average pool) is the first one built here. The recipe flags are "
        "`googlenet train`'s, with MultiBox's defaults (Adam, lr 3e-4 at batch 16, 10 epochs). The run "
        "directory is read by `googlenet proposals --method multibox --multibox DIR`.",
    )
    g = p.add_argument_group("MultiBox (Erhan et al. 2014)")
    for flag, field, kind, text in _FLAGS:
        g.add_argument(flag, dest=field, type=kind, default=None, help=f"{text} (default {defaults[field]})")
    g.add_argument("--no-flip", dest="flip", action="store_false", default=None, help="no horizontal flips")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly where it stopped (its saved settings; --epochs may grow)",
    )
    add_recipe_arguments(
        p,
        exclude=_NOT_HERE,
        replace={
            "out": {"required": True, "help": "run directory: the MultiBox model folder"},
            "data": {"help": "detection dataset (VOC, ILSVRC DET, COCO folder) or 'builtin'"},
        },
        defaults=MULTIBOX_RECIPE,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detection.multibox import MULTIBOX_MANIFEST, resume_options, train_multibox
    from ..errors import GoogLeNetError
    from ..runs import MULTIBOX_FILE

    given = {field: getattr(args, field) for _, field, _, _ in _FLAGS}
    given["flip"] = args.flip
    overrides = recipe_overrides(args)
    configure_logging()  # before the config: resolving it may say which model --init-from chose
    if args.resume:
        overrides.pop("out", None)
        result = train_multibox(args.config_file, options=given, resume=args.out, **overrides)
    elif args.data is None:
        raise GoogLeNetError("--data is required (a detection dataset or 'builtin') unless --resume")
    else:
        result = train_multibox(args.config_file, options=given, **overrides)
    resume = f"googlenet train-multibox --out {result.run_dir} --resume"
    if (code := stopped_early(result, "train-multibox", resume)) is not None:
        return code
    options = resume_options(result.run_dir, {})  # the run's saved settings
    if result.metrics:
        m = result.metrics[-1]
        coverage = m[f"avg_val_coverage_at_{options.top}"]
        print(
            f"epoch {m['epoch']}: val loss {m['avg_val_loss']:.4f}, coverage of the val boxes by the top "
            f"{options.top} (IoU >= 0.5) {100 * coverage:.1f}% (averaged weights)"
        )
    priors = MULTIBOX_MANIFEST.read(Path(result.run_dir) / MULTIBOX_FILE)["num_priors"]
    print(f"MultiBox model ({options.head} head, {priors} priors) written to {result.run_dir}")
    return 0
