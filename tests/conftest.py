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


def cli_in_process(*args: object) -> subprocess.CompletedProcess:
    """``googlenet ARGS`` through the real ``googlenet.cli.main`` in this process, as ``run_cli`` reports
    it (exit status, stdout, stderr), without the seconds a new interpreter spends importing torch.

    For what does not need a process of its own; signals, threads and exit codes set by the
    interpreter keep ``run_cli``. An exception escaping ``main`` is printed as the interpreter would
    (a traceback, status 1).
    """
    import contextlib
    import io
    import logging
    import traceback

    from googlenet.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    # What a command sets up for its run is put back: the training commands add a handler to the
    # ``googlenet`` logger and set its level; --deterministic sets an environment variable.
    logger = logging.getLogger("googlenet")
    handlers, level, environ = list(logger.handlers), logger.level, dict(os.environ)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            for handler in [h for h in logger.handlers if h not in handlers]:
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(level)
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            os.environ.update(environ)
    return subprocess.CompletedProcess(["googlenet", *argv], code, out.getvalue(), err.getvalue())


def check_report_page(folder: Path, title: str) -> None:
    """A report's ``index.html`` read with ``html.parser``: ``title`` in <title> and <h1>, one <table>
    per markdown table of ``index.md`` with as many rows, no <pre>, every <img src> a file there."""
    import re
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.images: list[str] = []
            self.text: dict[str, str] = {}
            self.inside: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            if tag == "img":
                self.images.append(str(dict(attrs)["src"]))
            if tag in ("title", "h1"):
                self.inside = tag
                self.text[tag] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == self.inside:
                self.inside = None

        def handle_data(self, data: str) -> None:
            if self.inside is not None:
                self.text[self.inside] += data

    page = Page()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    markdown = (folder / "index.md").read_text(encoding="utf-8")
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    separators = [line for line in table_lines if re.fullmatch(r"\|(?: *:?-+:? *\|)+", line)]
    assert page.text.get("title") == title and page.text.get("h1") == title, page.text
    assert separators and page.tags.count("table") == len(separators), (page.tags.count("table"), separators)
    assert page.tags.count("tr") == len(table_lines) - len(separators)  # header and body rows
    assert "pre" not in page.tags
    assert len(page.images) == len(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))
    assert page.images and all((folder / src).is_file() for src in page.images), page.images
