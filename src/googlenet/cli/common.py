"""The flags every command spells the same way, and the checks that go with them (issue 12).

- ``-o`` / ``--out``: what a command writes (``--output`` stays where it was the name);
- ``--json``: alone (or ``--json -``) the result as JSON on stdout, ``--json FILE`` written to
  FILE atomically; the file is checked before any work;
- a path that may be given as a positional or as its flag (export's ``CKPT`` / ``--checkpoint``).

Not a ``*_cmd`` module, so it adds no sub-command.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

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
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GoogLeNetError(f"{flag} {path} cannot be written: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GoogLeNetError(f"{flag} {path} cannot be written: folder {ancestor} is not writable")
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
