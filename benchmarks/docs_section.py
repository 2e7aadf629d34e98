"""Each benchmark script owns one marker-delimited section of docs/benchmarks.md and rewrites only it.

Shared by crops.py, inference.py and train_throughput.py (run as ``python benchmarks/NAME.py``, so this
module is importable beside them).
"""

from __future__ import annotations

from pathlib import Path

from googlenet.atomic import atomic_write_text

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nTables written by the scripts in `benchmarks/`, each with the machine it ran on. "
    "The machines are shared and noisy: compare the ratios measured within one run, not absolute numbers.\n"
)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, body: str, path: Path = DOCS) -> Path:
    """Replace the ``name`` section of ``path`` with ``body`` (or append it), leaving the other sections
    alone; the file is re-read just before the atomic write, since other scripts own the rest."""
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    return atomic_write_text(path, text)
