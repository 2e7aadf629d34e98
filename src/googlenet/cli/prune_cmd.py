"""``googlenet prune``: remove the training checkpoints a finished run, ensemble or detector no longer needs.

Parsing and printing only; :func:`googlenet.training.checkpoint.prune` decides what goes (the
weights, configs, metrics and manifests always stay; docs/training.md lists what each file is for).
"""

from __future__ import annotations

import argparse

ORDER = 32  # googlenet --help lists the commands by layer (training)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="remove the checkpoints of finished runs, ensembles or detectors (keep the weights)",
        description="Free the disk a finished training run, ensemble or detector (train, train-ensemble, "
        "train-detector, train-multibox --out) holds in checkpoints: best.pt and model_best.safetensors "
        "(--keep-checkpoints last), and last.pt too (none: the run can no longer be trained further). "
        "Weights, config.yaml, metrics and ensemble.json / detector.json stay; a member that has not "
        "finished is left alone.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run, ensemble or detector directories")
    p.add_argument(
        "--keep-checkpoints",
        default="none",
        choices=("last", "none"),
        help="last: keep last.pt (the run can be trained further); none: keep the weights only",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.checkpoint import prune

    results = [r for path in args.dirs for r in prune(path, args.keep_checkpoints, dry_run=args.dry_run)]
    verb = "would remove" if args.dry_run else "removed"
    for r in results:
        if r.unfinished is not None:
            print(f"{r.run}: left alone ({r.unfinished})")
        elif r.removed:
            names = ", ".join(str(f.relative_to(r.run)) for f in r.removed)
            print(f"{r.run}: {verb} {names} ({r.bytes / 1e6:.0f} MB)")
        else:
            print(f"{r.run}: nothing to remove")
    total = sum(r.bytes for r in results)
    print(f"{verb} {total / 1e6:.0f} MB in {sum(bool(r.removed) for r in results)} run(s)")
    return 0
