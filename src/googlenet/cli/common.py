"""The flags every command spells the same way, and the checks that go with them.

- ``-o`` / ``--out``: what a command writes (``--output`` stays where it was the name);
- ``--json``: alone (or ``--json -``) the result as JSON on stdout, ``--json FILE`` written to
  FILE atomically; the file is checked before any work;
- a path that may be given as a positional or as its flag (export's ``CKPT`` / ``--checkpoint``);
- ``--shard I/N``: one shard of a job spread over machines (``proposals``, ``evaluate-detection``);
- ``--dry-run``: only the cost a long job prints before it starts;
- the model flags of the commands that run trained classifiers (``evaluate``, ``predict``);
- the recipe flags of the commands that train (``train``, ``train-ensemble``, ``train-multibox``,
  ``train-detector``), derived from :class:`~googlenet.training.config.TrainConfig`, and their logging.

Not a ``*_cmd`` module, so it adds no sub-command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from ..atomic import writable_ancestor
from ..errors import GoogLeNetError

STDOUT = "-"


class _StoreNamingFlag(argparse._StoreAction):
    """Store the value, and which option string gave it, so that errors name the flag the user typed."""

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given_as", option_string)


def add_out_argument(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    help: str,
    dest: str = "out",
    aliases: tuple[str, ...] = (),
    **kwargs: Any,
) -> None:
    """``-o`` / ``--out`` (plus ``aliases``, e.g. ``--output``) for what the command writes."""
    p.add_argument("-o", "--out", *aliases, dest=dest, help=help, **kwargs)


def add_json_argument(p: argparse.ArgumentParser, *, what: str, out_alias: bool = False) -> None:
    """``--json [FILE]``: ``what`` as JSON, to FILE (atomically) or, alone or with '-', to stdout.

    ``out_alias`` adds ``-o`` / ``--out FILE`` for the same file, in commands whose one output it is.
    """
    p.add_argument(
        "--json",
        nargs="?",
        const=STDOUT,
        default=None,
        metavar="FILE",
        action=_StoreNamingFlag,
        help=f"write {what} as JSON to FILE; '-' or no value: to stdout",
    )
    if out_alias:
        add_out_argument(
            p, dest="json", metavar="FILE", action=_StoreNamingFlag, help="the same as --json FILE"
        )


def add_shard_argument(p: argparse.ArgumentParser, *, parts: str) -> None:
    """``--shard I/N``: this process does shard I of N of the job and leaves its part in ``parts``;
    the same command without ``--shard`` merges the parts (under torchrun the ranks are the shards)."""
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help=f"do shard I of N of the images (0 <= I < N; one per machine or process) and leave its part "
        f"in {parts}; run the same command without --shard to merge the parts once every shard is done "
        "(under torchrun the ranks are the shards, and rank 0 merges)",
    )


def add_estimate_arguments(p: argparse.ArgumentParser) -> None:
    """``--dry-run``: say what the job would do and about how long it would take here, then stop;
    ``--no-estimate``: start the job at once, without timing its estimate first."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="only say what the job would do and about how long it would take on this machine (timed on "
        "a few warm-up items), then stop",
    )
    group.add_argument(
        "--no-estimate",
        action="store_true",
        help="start at once: skip the estimate said first (its warm-up steps take a few seconds, which "
        "matters for short jobs run from a script)",
    )


def estimate_printer(args: argparse.Namespace) -> Callable[[Any], None] | None:
    """The ``on_estimate`` callback of a command with :func:`add_estimate_arguments`: print the
    estimate to stderr (stdout keeps the result), or None with ``--no-estimate``."""
    if args.no_estimate:
        return None

    def say(estimate: Any) -> None:
        print(estimate.format(), file=sys.stderr, flush=True)

    return say


def json_flag(args: argparse.Namespace) -> str:
    """How the user named the JSON output in errors: ``-o``/``--out`` or ``--json``."""
    return getattr(args, "json_given_as", None) or "--json"


def check_output_file(
    path: str | Path, flag: str, *, example: str = "out.json", parent_must_exist: bool = False
) -> None:
    """Refuse, before any work, an output file that cannot be written: a directory, a path under a
    file, a folder without write permission, a read-only file; with ``parent_must_exist`` also a
    missing folder (else :func:`~googlenet.atomic.atomic_write` creates it). Errors name the path
    as given."""
    path = Path(path)
    if path.is_dir():
        raise GoogLeNetError(f"{flag} {path} is a directory; give a file name such as {path / example}")
    parent = path.parent if str(path.parent) else Path(".")
    if parent_must_exist and not parent.exists():
        raise GoogLeNetError(f"{flag} {path}: folder {parent} does not exist; create it or pass another path")
    try:
        writable_ancestor(parent)
    except NotADirectoryError as exc:
        why = f"{exc.filename} is a file, not a directory"
        raise GoogLeNetError(f"{flag} {path} cannot be written: {why}") from None
    except PermissionError as exc:
        why = f"folder {exc.filename} is not writable"
        raise GoogLeNetError(f"{flag} {path} cannot be written: {why}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise GoogLeNetError(f"{flag} {path} is read-only; pass a path you can write")


def check_json_output(args: argparse.Namespace, **kwargs: Any) -> None:
    """:func:`check_output_file` for ``args.json`` when it names a file."""
    if args.json in (None, STDOUT):
        return
    path, flag = Path(args.json), json_flag(args)
    # `--json IMAGE ...` takes IMAGE as the file to write (--json's value is optional): never
    # overwrite an existing file that is not JSON.
    if path.is_file() and path.suffix.lower() != ".json":
        raise GoogLeNetError(
            f"{flag} {path}: would overwrite this existing non-.json file; name a .json file, or put "
            "--json after the other arguments to print to stdout"
        )
    check_output_file(path, flag, **kwargs)


def write_json(args: argparse.Namespace, text: str) -> None:
    """``text`` (a JSON document) to stdout or atomically to the file ``args.json`` names."""
    from ..atomic import atomic_write_text

    if args.json == STDOUT:
        print(text)
        return
    try:
        atomic_write_text(args.json, text if text.endswith("\n") else text + "\n")
    except OSError as exc:  # the temp file's name means nothing to the user: name their path
        raise GoogLeNetError(f"{json_flag(args)} {args.json}: cannot write ({exc.strerror or exc})") from None


def positional_or_flag(args: argparse.Namespace, name: str, flag: str, metavar: str) -> Any:
    """The value of a path given as the positional ``metavar`` or as ``flag`` (both kept for
    compatibility); exactly one of them."""
    positional, given = getattr(args, name), getattr(args, f"{name}_flag")
    if positional is not None and given is not None and positional != given:
        raise GoogLeNetError(f"{metavar} {positional} and {flag} {given} disagree: pass one of them")
    value = given if given is not None else positional
    if value is None:
        raise GoogLeNetError(f"no {metavar.lower()} given: pass {metavar} or {flag} PATH")
    return value


# --------------------------------------------------------------------------- classifiers


def add_model_arguments(p: argparse.ArgumentParser, *, workers: int = 2) -> None:
    """Flags shared with ``googlenet predict``."""
    from ..evaluation.protocol import DEFAULT_BATCH

    p.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        metavar="PATH",
        help="weights (.safetensors), training run dirs (their model.safetensors) or ensemble dirs "
        "(ensemble.json); several models are averaged",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="crop size (default: the run's config.yaml image_size, else the model's input size)",
    )
    p.add_argument(
        "--backend",
        default="torch",
        choices=("auto", "torch", "onnxruntime", "openvino"),
        help="inference backend (default torch: exact fp32 reference numbers)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16", "int8"),
        help="numeric precision (default fp32; int8 calibrates on the data's train split)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"crops per forward pass (default {DEFAULT_BATCH}; one image's crops are never split)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=workers,
        help=f"processes decoding and cropping images (default {workers}; 0 = in the main process)",
    )


# --------------------------------------------------------------------------- detection


def add_classes_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, what: str) -> None:
    """``--classes FILE|a,b,c``: the class list of a detection dataset (its order is the labels')."""
    p.add_argument(
        "--classes",
        default=None,
        metavar="FILE|NAMES",
        help=f"{what}: a file of class names, one per line, or the names comma-separated (default: the "
        "dataset's one list: classes.txt, the per-class lists ImageSets/Main/<class>_<split>.txt, the "
        "devkit's or COCO's categories, else the names in every split)",
    )


# --------------------------------------------------------------------------- training


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


_CLI_HANDLER = "googlenet-cli"  # the one handler configure_logging keeps (not one per call)


def configure_logging() -> None:
    """Log lines to stderr: rank 0 talks; the other torchrun ranks only warn."""
    from ..training.distributed import launch_position

    rank, world_size = launch_position()
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if world_size > 1 else ""
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
    from ..training.distributed import launch_position

    if launch_position()[0] != 0:
        return result.exit_code
    if result.interrupted:
        print(
            f"googlenet {command}: stopped by {result.interrupted} after step {result.step}; checkpoint "
            f"written. Continue with: {resume}",
            file=sys.stderr,
        )
        return result.exit_code
    return None
