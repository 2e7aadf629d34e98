"""Shared test set-up: tests never touch the user's cache, and use few threads on the 2-core CI.

The fixtures every file may ask for; the functions tests share are in ``helpers.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import torch

from googlenet.inference.backends import torch_threads

from . import helpers

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(helpers.suite_cache(tmp_path_factory)))


@pytest.fixture(autouse=True)
def _restore_sigchld() -> None:
    # A DataLoader with workers installs a Python SIGCHLD handler in the main process and leaves it
    # there; later subprocesses then run it whenever they exit. Restore the handler after each test so
    # one test's loader does not reach into the others (the suite crashed without this).
    previous = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, previous)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test: in-process model work while several test processes share two
    cores, and the kernels one thread picks."""
    with torch_threads(1):
        yield
