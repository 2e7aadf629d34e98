"""Progress of the package's long jobs (evaluation, prediction, proposals, detection), on stderr.

A long library function takes ``progress``: ``True`` for a ``tqdm`` bar on stderr, a callable
``progress(n)`` called after every ``n`` items (a notebook's own bar, a log), or ``False`` / ``None``
for silence. :func:`progress_callback` turns that argument into the callable (and closes the bar);
:func:`progress_bar` is the one bar: live on a terminal, a line every ``piped_every_s`` seconds when
stderr is a file or a pipe (a log stays short), or nothing there when ``piped_every_s`` is None.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

Progress = bool | Callable[[int], object] | None

__all__ = ["Progress", "progress_bar", "progress_callback"]


def progress_bar(
    total: int, desc: str, *, unit: str = "img", piped_every_s: float | None = 30.0, delay: float = 0.0
) -> Any:
    """A tqdm bar on stderr (stdout keeps the command's results)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        mininterval=0.1 if interactive else (piped_every_s or 0.1),
        dynamic_ncols=interactive,
        disable=not interactive and piped_every_s is None,
        delay=delay,
        leave=interactive or piped_every_s is not None,
    )


@contextlib.contextmanager
def progress_callback(
    progress: Progress, total: int, desc: str, **bar_options: Any
) -> Iterator[Callable[[int], object] | None]:
    """The callable a ``progress`` argument stands for, for the length of a job."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        with progress_bar(total, desc, **bar_options) as bar:
            yield bar.update
    elif callable(progress):
        yield progress
    else:
        raise TypeError(f"progress must be a bool or a callable. Got {progress!r}")
