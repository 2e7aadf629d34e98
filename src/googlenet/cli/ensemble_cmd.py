"""``googlenet train-ensemble``: N members with one recipe, different sampling and data order (section 7).

Takes every ``googlenet train`` option but ``--resume`` (the same :func:`.common.add_recipe_arguments`;
``--seed`` is the base seed) plus ``--n`` and ``--same-init``;
:func:`googlenet.training.ensemble.train_ensemble` does the work. Re-running the same command
continues an interrupted ensemble.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import add_recipe_arguments, configure_logging, recipe_overrides

ORDER = 31  # googlenet --help lists the commands by layer (training)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-ensemble",
        help="train N models that differ only in image sampling and data order (section 7); resumable",
        description="Train an ensemble as in section 7 of the paper: N members with the same recipe "
        "(and, with --same-init, the same initial weights), member i seeded with --seed + i for its data "
        "order and augmentation. Each member is a run directory OUT/member_XX; OUT/ensemble.json indexes "
        "them. Re-run the same command to continue after an interruption. Accepts every `googlenet train` "
        "option except --resume. See docs/report.md.",
    )
    g = p.add_argument_group("ensemble (section 7)")
    g.add_argument("--n", type=int, default=7, help="number of members (default: 7, the paper's)")
    g.add_argument(
        "--same-init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every member starts from the base seed's initial weights, as in the paper (default); "
        "--no-same-init: each member initialises from its own seed",
    )
    add_recipe_arguments(
        p,
        exclude={"resume"},
        replace={
            "out": {"required": True, "help": "ensemble directory (members go to OUT/member_XX)"},
        },
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import resolve_config
    from ..training.ensemble import EnsembleInterrupted, train_ensemble

    overrides = recipe_overrides(args)
    configure_logging()  # before the config: resolving it may say which model --init-from chose
    config = resolve_config(args.config_file, overrides)

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
