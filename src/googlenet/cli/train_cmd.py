"""``googlenet train``: the paper's training recipe (section 6) on a folder or the built-in set.

Parsing and wiring only. The flags, their help and defaults come from the fields of
:class:`googlenet.training.config.TrainConfig` (:func:`add_recipe_arguments`, shared with
``train-ensemble``); they become a config (defaults < ``--config`` YAML < flags) and
:func:`googlenet.training.train.fit` runs it. Under ``torchrun`` every rank runs this.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from typing import Any

from ..errors import GoogLeNetError


def add_recipe_arguments(
    parser: argparse.ArgumentParser,
    *,
    exclude: Iterable[str] = (),
    replace: Mapping[str, Mapping[str, Any]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """One flag per :class:`~googlenet.training.config.TrainConfig` field, plus ``--config FILE``.

    Flag names, help, groups and choices come from each field's ``metadata``; the help shows the
    field's default, or the command's own from ``defaults`` (which it passes to ``resolve_config``).
    Every flag's argparse default is None, so that only the flags given override the YAML file.
    ``exclude`` leaves fields out; ``replace`` changes a flag's argparse settings (``train-ensemble``
    makes ``--out`` required and describes it as the ensemble directory).
    """
    from ..training.config import TrainConfig, field_types, optional_inner

    skip, replace = set(exclude), dict(replace or {})
    hints = field_types()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        meta = f.metadata
        if f.name in skip or not meta.get("cli", True):
            continue
        group = groups.get(meta["group"])
        if group is None:
            group = groups[meta["group"]] = parser.add_argument_group(meta["group"])
            if len(groups) == 1:
                group.add_argument(
                    "--config", dest="config_file", metavar="FILE.yaml", help="YAML file of training options"
                )
        kind, _ = optional_inner(hints[f.name])
        default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        default = (defaults or {}).get(f.name, default)
        shown = "none" if default is None else default
        kwargs: dict[str, Any] = {"dest": f.name, "default": None}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            shown = "yes" if default else "no"
        elif typing.get_origin(kind) is dict:
            kwargs.update(action="append", metavar="KEY=VALUE")
            shown = "none"
        else:
            kwargs["type"] = kind
            for key in ("choices", "metavar"):
                if key in meta:
                    kwargs[key] = meta[key]
        # A help that explains its own default ("default: --seed") keeps it; the others show it.
        text = meta["help"] if "(default:" in meta["help"] else f"{meta['help']} (default: {shown})"
        kwargs["help"] = text.replace("%", "%%")
        kwargs.update(replace.get(f.name, {}))
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        group.add_argument(*meta.get("aliases", ()), flag, **kwargs)


def _pairs(values: list[str], flag: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise GoogLeNetError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise GoogLeNetError(f"{flag} {item!r}: the value is not valid YAML") from None
    return out


def recipe_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (``KEY=VALUE`` lists become mappings)."""
    from ..training.config import MAPPING_KEYS, TrainConfig

    overrides: dict[str, Any] = {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None or f.name == "resume":
            continue
        if f.name in MAPPING_KEYS:
            value = _pairs(value, f.metadata.get("flag", "--" + f.name.replace("_", "-")))
        overrides[f.name] = value
    return overrides


ORDER = 30  # googlenet --help lists the commands by layer (training)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with the paper's recipe (section 6); resumable; torchrun for many GPUs",
        description="Train GoogLeNet with the paper's recipe (section 6). Option precedence: defaults < "
        "--config YAML < flags. The run directory gets config.yaml, env.json, metrics.jsonl, train.log, "
        "tensorboard/, checkpoints/{last,best}.pt, model.safetensors (averaged weights), "
        "model_best.safetensors (the best epoch's). See docs/training.md.",
    )
    add_recipe_arguments(p)
    p.set_defaults(func=run)


_CLI_HANDLER = "googlenet-cli"  # the one handler configure_logging keeps (not one per call)


def configure_logging() -> None:
    """Log lines to stderr: rank 0 talks; the other torchrun ranks only warn."""
    rank = int(os.environ.get("RANK", "0") or 0)
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    handler.set_name(_CLI_HANDLER)
    root = logging.getLogger("googlenet")
    for old in [h for h in root.handlers if h.get_name() == _CLI_HANDLER]:  # main() called again
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def stopped_early(result: Any, command: str, resume: str) -> int | None:
    """The exit status of a training command whose process has nothing more to print -- another
    torchrun rank, or a run a signal stopped (its resume command is said) -- else None."""
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return result.exit_code
    if result.interrupted:
        print(
            f"googlenet {command}: stopped by {result.interrupted} after step {result.step}; checkpoint "
            f"written. Continue with: {resume}",
            file=sys.stderr,
        )
        return result.exit_code
    return None


def run(args: argparse.Namespace) -> int:
    from ..training.config import resolve_config, resume_config
    from ..training.train import fit

    overrides = recipe_overrides(args)
    if args.resume:
        if args.config_file:
            raise GoogLeNetError("--resume takes the run's own config.yaml; leave out --config")
        config = resume_config(args.resume, overrides)
    else:
        config = resolve_config(args.config_file, overrides)
    configure_logging()
    result = fit(config)
    if (code := stopped_early(result, "train", f"googlenet train --resume {result.run_dir}")) is not None:
        return code
    print(f"averaged weights: {result.model_path}")
    print(f"raw weights:      {result.raw_model_path}")
    if result.metrics:
        m = result.metrics[-1]
        print(
            f"epoch {m['epoch']}: val top-1 error {m['avg_val_top1_err']:.4f}, "
            f"top-{m['top_k']} error {m['avg_val_top5_err']:.4f} (averaged weights)"
        )
    return 0
