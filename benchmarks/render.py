"""Re-render the docs sections of saved benchmark results, without measuring.

A result names its benchmark (``result["benchmark"]``); the script of ``benchmarks/`` that declares
that ``NAME`` renders it (its ``render(result) -> markdown``, which checks the result's schema
first), and the markdown replaces the result's section of the docs file
(:func:`common.write_section`). Scripts are found by name when a result asks for them, never
imported here in advance: each of them imports :mod:`common`, and none imports this file.

    python benchmarks/render.py benchmarks/results/*.json      # their sections of docs/benchmarks.md
    python benchmarks/render.py docs/results/detection_tables.json --docs docs/detection.md
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import common as C

# Results whose name is not their script's: "training" is in the recorded results and in the docs'
# section markers, which stay as they are.
SCRIPTS = {"training": "train_throughput"}


def renderer(name: Any) -> Callable[[Mapping[str, Any]], str]:
    """The ``render`` of the script in ``benchmarks/`` whose ``NAME`` is ``name``."""
    if name is None:
        raise C.SchemaError("result: missing key 'benchmark'")
    script = SCRIPTS.get(name, name) if isinstance(name, str) else ""
    module = None
    if script.isidentifier() and (C.BENCH / f"{script}.py").is_file():
        module = importlib.import_module(script)  # benchmarks/ is on sys.path: this file is there
    if getattr(module, "NAME", None) != name or not callable(getattr(module, "render", None)):
        raise C.SchemaError(
            f"result.benchmark: {name!r} is not one of the benchmarks (no script of benchmarks/ declares "
            "that NAME)"
        )
    return module.render


def render(result: Mapping[str, Any]) -> str:
    """The markdown of ``result``, by the script of its benchmark; raises :class:`common.SchemaError`
    where the result does not follow that script's schema."""
    return renderer(result.get("benchmark") if isinstance(result, Mapping) else None)(result)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="result JSON files written by the benchmarks")
    p.add_argument(
        "--docs", type=Path, default=C.DOCS, help="the markdown file to update (default %(default)s)"
    )
    args = p.parse_args(argv)
    rendered = []
    for path in args.results:
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            body = render(result)  # every result's schema is checked before anything is written
            rendered.append((C.section_name(result), body))
        except (OSError, ValueError) as exc:
            p.error(f"{path}: {exc}")
    for name, body in rendered:
        C.write_section(name, body, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
