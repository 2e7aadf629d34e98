"""``googlenet train-ensemble``: N members with one recipe, different sampling and data order (section 7).

Takes every ``googlenet train`` option (the base config; ``--seed`` is the base seed) plus ``--n`` and
``--same-init``; :func:`googlenet.training.ensemble.train_ensemble` does the work. Re-running the same command
continues an interrupted ensemble.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import GoogLeNetError


def register(sub: argparse._SubParsersAction) -> None:
    from . import train_cmd

    # The train command's own parser is the single source of the training flags: build it on a
    # scratch sub-parser set and inherit its arguments, so the two commands cannot drift apart.
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    train_cmd.register(scratch)
    train_parser = scratch.choices["train"]
    p = sub.add_parser(
        "train-ensemble",
        parents=[train_parser],
        conflict_handler="resolve",
        help="train N models that differ only in image sampling and data order (section 7); resumable",
        description="Train an ensemble as in section 7 of the paper: N members with the same recipe "
        "(and, with --same-init, the same initial weights), member i seeded with --seed + i for its data "
        "order and augmentation. Each member is a run directory OUT/member_XX; OUT/ensemble.json indexes "
        "them. Re-run the same command to continue after an interruption. Accepts every `googlenet train` "
        "option except --resume. See docs/report.md.",
    )
    p.add_argument("--n", type=int, default=7, help="number of members (paper: 7)")
    p.add_argument(
        "--same-init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every member starts from the base seed's initial weights, as in the paper (default); "
        "--no-same-init: each member initialises from its own seed",
    )
    p.add_argument("--out", required=True, help="ensemble directory (members go to OUT/member_XX)")
    p.add_argument(
        "--resume", help=argparse.SUPPRESS
    )  # inherited from train; an ensemble resumes by re-running
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from ..training.train import TrainConfig
    from .train_cmd import _pairs

    keys = set(TrainConfig.__dataclass_fields__)
    overrides = {k: v for k, v in vars(args).items() if k in keys and v is not None and k != "resume"}
    for key, flag in (("model_options", "--model-option"), ("augment", "--augment")):
        overrides.pop(key, None)
        pairs = _pairs(getattr(args, key), flag)
        if pairs is not None:
            overrides[key] = pairs
    return overrides


def run(args: argparse.Namespace) -> int:
    from ..training.ensemble import EnsembleInterrupted, train_ensemble
    from ..training.train import resolve_config
    from .train_cmd import _configure_logging

    if getattr(args, "resume", None):
        raise GoogLeNetError("train-ensemble continues by itself: re-run the same command without --resume")
    config = resolve_config(args.config_file, _overrides(args))
    _configure_logging()

    def progress(i: int, state: str, run_dir: Any) -> None:
        words = {"skip": "complete, skipped", "start": "training", "resume": "resuming", "done": "done"}
        print(f"member {i + 1}/{args.n} ({run_dir}): {words[state]}", file=sys.stderr, flush=True)

    try:
        paths = train_ensemble(config, args.n, args.out, same_init=args.same_init, on_member=progress)
    except EnsembleInterrupted as stop:
        print(
            f"googlenet train-ensemble: member {stop.member} stopped by {stop.signal_name}; checkpoint "
            "written. Re-run the same command to continue.",
            file=sys.stderr,
        )
        return stop.exit_code
    for path in paths:
        print(path)
    return 0
