"""The ``googlenet`` command: argument parsing and wiring only; the library computes.

Each module of this package named ``*_cmd`` adds its sub-command through ``register(subparsers)``
and sets ``func`` on its parser; discovery keeps the commands independent of one another. A
module's ``ORDER`` places its command in ``googlenet --help`` (by the package layers: models,
data, training, evaluation, inference, detection); the name breaks ties.

Conventions every command keeps: ``-o``/``--out`` names what it writes, ``--checkpoint``
the model it reads, ``--json`` alone prints JSON on stdout and ``--json FILE`` writes FILE
atomically; ``--help`` shows every default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from ..errors import GoogLeNetError

# Where a module without ORDER goes: after the known groups, by name.
DEFAULT_ORDER = 100


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's ArgumentDefaultsHelpFormatter, without repeating a default the help already states
    (most say "(default ...)" in their own words) or showing the None/False of an unset option."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands (and theirs) show defaults unless told otherwise."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def command_modules() -> list[object]:
    """Every ``*_cmd`` module of this package, in ``--help`` order."""
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if info.name.endswith("_cmd")
    ]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", DEFAULT_ORDER), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog="googlenet",
        description="GoogLeNet (Szegedy et al. 2014): models, training, the paper's test protocol, weights.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"googlenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(sub)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if given in (["--version"], ["-V"]):  # answered before the parser imports every command (torch)
        from .. import __version__

        print(f"googlenet {__version__}")
        return 0
    try:
        parser = build_parser()  # imports every command: seconds, during which Ctrl-C is likely
    except KeyboardInterrupt:
        print("googlenet: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # stdout piped into `head`, which has read enough: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (GoogLeNetError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"googlenet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"googlenet {args.command}: interrupted", file=sys.stderr)
        return 130
