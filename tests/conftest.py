"""Shared test set-up: tests never touch the user's cache, and use few threads on the 2-core CI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path_factory.getbasetemp() / "googlenet-cache"))


@pytest.fixture(autouse=True)
def _restore_sigchld() -> None:
    # A DataLoader with workers installs a Python SIGCHLD handler in the main process and leaves it
    # there; later subprocesses then run it whenever they exit. Restore the handler after each test so
    # one test's loader does not reach into the others (the suite crashed without this).
    previous = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, previous)


def run_cli(
    *args: object, timeout: float = 300, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run ``python -m googlenet ARGS`` as a real subprocess and capture its output.

    ``env`` holds variables set on top of this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-m", "googlenet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
