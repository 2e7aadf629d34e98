"""docs/api.md's walk-through runs as written: its Python blocks, in order, in a fresh process.

The page is what a reader pastes into a notebook (train a classifier on the built-in set, evaluate
with 1 and 10 crops, predict, train a detector from it, detect, evaluate); running the page itself
keeps it from drifting from the library.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    """The fenced ``python`` blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_block_reader_finds_python_blocks_only() -> None:
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\nprint(x)\n```\n"
    assert python_blocks(text) == ["x = 1\n", "print(x)\n"]


def test_the_walkthrough_in_docs_api_runs(tmp_path: Path) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "docs/api.md lost its walk-through"
    script = tmp_path / "walkthrough.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    env = {"GOOGLENET_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # Each step printed what the page says it prints.
    assert "Table 3 (section 7)" in out and "     1     10    10" in out
    assert "mAP" in out
    run = tmp_path / "api-walkthrough"
    assert (run / "classifier" / "model.safetensors").is_file()
    assert (run / "detector" / "detector.json").is_file()
