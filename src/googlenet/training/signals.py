"""Stopping a run cleanly on SIGINT / SIGTERM: finish the step, write ``last.pt``, return.

A cluster's scheduler ends a job with SIGTERM, a user with Ctrl-C; either is taken as "stop soon":
:func:`stop_on_signals` sets a :class:`StopFlag` that the loop checks after every optimizer step,
so the run stops at a step boundary with a checkpoint it resumes from exactly. A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["StopFlag", "signal_name", "stop_on_signals"]


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes the current step, checkpoints and returns."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals(enabled: bool) -> Iterator[StopFlag]:
    """A :class:`StopFlag` that SIGINT and SIGTERM set while the block runs (the previous handlers
    are put back after it). Off the main thread, where Python cannot install handlers, or without
    ``enabled``, the flag is never set."""
    flag = StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def signal_name(stop: StopFlag) -> str:
    """The name of the signal that set ``stop`` (``SIGTERM`` when another rank's signal stopped it)."""
    return signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"
