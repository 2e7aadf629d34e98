"""benchmarks/train_throughput.py runs end to end and writes what it promises (format, not speed).

The script is run as a real subprocess in ``--quick`` mode (batch 4 at 64 px, one round, one thread so a
loaded 2-core machine does not stall it); the checks are on its table, its JSON and the marker section it
writes into a copy of docs/benchmarks.md, never on timings.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"
START, END = "<!-- training:start -->", "<!-- training:end -->"
OTHER = "<!-- inference:start -->\n## Inference\n\nkept as it was\n<!-- inference:end -->"
ROW = re.compile(
    r"^\| (?P<name>[^|]+?) \| (fp32|bf16) \| (NCHW|channels_last) \| [\d.]+ \| \d+ \| [\d.]+x \| [\d.]+x \|$"
)


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    docs = tmp / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\n{OTHER}\n\n{START}\nstale training table\n{END}\n\ntrailing text\n")
    out_json = tmp / "result.json"
    proc = _run(
        "--quick", "--threads", "1", "--profile", "--json", str(out_json), "--write-docs", "--docs", str(docs)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out_json.read_text()), docs


def test_table_lists_peer_first_and_ours(quick) -> None:
    proc, _, _ = quick
    rows = [m for line in proc.stdout.splitlines() if (m := ROW.match(line))]
    names = [m["name"] for m in rows]
    assert names[0] == "torchvision eager fp32"
    assert rows[0].group(0).endswith("| 1.00x | 1.00x |")
    assert any(n.startswith("googlenet_tv") and n.endswith("(default)") for n in names)
    assert {"googlenet_tv fp32 NCHW", "googlenet_tv fp32 channels_last"} <= set(names)
    assert any(n.startswith("googlenet_bn ") for n in names)


def test_json_rows_are_consistent(quick) -> None:
    _, report, _ = quick
    assert report["settings"]["batch_size"] == 4 and report["settings"]["image_size"] == 64
    rows = report["rows"]
    peer = rows[0]["rates"]
    for r in rows:
        assert len(r["rates"]) == 1  # --quick: one round
        assert r["images_per_s"] == r["rates"][0] > 0 and math.isfinite(r["images_per_s"])
        assert r["ms_per_step"] == pytest.approx(1000 * 4 / r["images_per_s"])
        assert r["ratio"] == pytest.approx(r["rates"][0] / peer[0])
    assert report["environment"]["cores"] >= 1 and report["environment"]["torch"]


def test_fast_path_loss_is_close_to_fp32(quick) -> None:
    # Loose on purpose (tight tolerances live in tests/test_precision.py): a broken autocast or
    # memory-format path gives a different loss already at step 1.
    _, report, _ = quick
    for check in report["precision"]:
        assert len(check["fp32"]) == len(check["fast_losses"]) == 2
        assert all(math.isfinite(v) for v in check["fp32"] + check["fast_losses"])
        assert check["fast_losses"][0] == pytest.approx(check["fp32"][0], rel=0.05)


def test_docs_section_replaced_and_others_kept(quick) -> None:
    _, report, docs = quick
    text = docs.read_text()
    assert OTHER in text and text.endswith("trailing text\n")
    assert "stale training table" not in text
    assert text.count(START) == 1 and text.count(END) == 1
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert "| torchvision eager fp32 | fp32 | NCHW |" in section
    assert report["environment"]["cpu"] in section and f"torch {report['environment']['torch']}" in section
    # --profile: the peer's and our default's op times, side by side
    assert next(iter(report["profile"])) == "torchvision eager fp32"
    profile = section.split("### Where the time goes", 1)[1]
    assert "| `aten::convolution_backward` |" in profile and re.search(
        r"\| total \| \d+ ms \| \d+ ms \|", profile
    )


def test_render_rewrites_the_same_section_from_json(quick, tmp_path: Path) -> None:
    docs = quick[2]
    assert "Target: `googlenet_tv " in docs.read_text()
    copy = tmp_path / "benchmarks.md"
    copy.write_text("# Benchmarks\n")
    proc = _run("--render", str(docs.parent / "result.json"), "--docs", str(copy), timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    section = docs.read_text().split(START, 1)[1].split(END, 1)[0]
    assert copy.read_text() == f"# Benchmarks\n\n{START}{section}{END}\n"


def test_bad_argument_is_one_line_error() -> None:
    proc = _run("--batch-size", "0", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("--batch-size must be >= 1")
