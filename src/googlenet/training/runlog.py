"""What a run tells its user while it trains: ``train.log``, TensorBoard scalars and the progress line.

Rank 0 alone talks (the other ranks' objects are no-ops). :class:`RunLog` adds the run's
``train.log`` handler to the package's training loggers and opens its TensorBoard writer;
:class:`Progress` draws a tqdm bar when stderr is a terminal and otherwise logs a line every
``log_every`` steps (loss, images per second, the epoch's time left). The line of a finished epoch
is the task's (:attr:`googlenet.training.task.Task.epoch_line`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

from ..runs import RunLayout
from .config import TrainConfig
from .distributed import DistEnv
from .engine import EpochStats

__all__ = ["Progress", "RunLog"]

logger = logging.getLogger("googlenet.train")
# The loggers whose lines train.log keeps: the loop's, and the data's (skipped unreadable files).
_LOGGERS = ("googlenet.train", "googlenet.data")


class RunLog:
    """train.log handler and TensorBoard writer of rank 0 (no-ops elsewhere); a context manager."""

    def __init__(self, layout: RunLayout, enabled: bool, purge_step: int | None) -> None:
        """Open ``layout``'s train.log and TensorBoard folder when ``enabled`` (rank 0); a resumed run
        passes its step as ``purge_step``, so TensorBoard drops the events of the lost work."""
        self.handler: logging.Handler | None = None
        self.writer: Any = None
        self.previous_level = logger.level
        if not enabled:
            return
        self.handler = logging.FileHandler(layout.log)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in _LOGGERS:
            logging.getLogger(name).addHandler(self.handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(layout.tensorboard), purge_step=purge_step)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def file_only(self, level: int, message: str) -> None:
        """A line for train.log alone: what the caller (the CLI) tells the user in its own words."""
        if self.handler is not None:
            self.handler.handle(logger.makeRecord(logger.name, level, __file__, 0, message, (), None))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """TensorBoard scalars at ``step`` (None values are left out)."""
        if self.writer is not None:
            for key, value in values.items():
                if value is not None:
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the writer, detach and close the handler, restore the logger's level."""
        if self.writer is not None:
            self.writer.close()
        if self.handler is not None:
            for name in _LOGGERS:
                logging.getLogger(name).removeHandler(self.handler)
            self.handler.close()
            logger.setLevel(self.previous_level)


class Progress:
    """tqdm bar on rank 0 when stderr is a terminal, else a plain log line every ``log_every`` steps."""

    def __init__(self, env: DistEnv, config: TrainConfig, total: int, runlog: RunLog) -> None:
        self.enabled = env.is_main
        self.tty = self.enabled and sys.stderr.isatty()
        self.config = config
        self.total = total
        self.runlog = runlog
        self.world = env.world_size
        self.bar: Any = None
        self.epoch = 0
        self.t0 = 0.0
        self.images0 = 0.0

    def start(self, epoch: int, start_batch: int, images_before: float) -> None:
        """An epoch (0-based) begins at ``start_batch`` (mid-epoch on resume), with ``images_before``
        images of it already trained."""
        self.epoch = epoch
        self.t0 = time.perf_counter()
        self.images0 = images_before
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=start_batch,
                desc=f"epoch {epoch + 1}/{self.config.epochs}",
                unit="batch",
                dynamic_ncols=True,
                leave=False,
            )

    def update(self, batch_index: int, step: int, stats: EpochStats) -> None:
        """After each optimizer step: the bar, and every ``log_every`` steps the running scalars
        (and, without a bar, the log line)."""
        if not self.enabled:
            return
        dt = time.perf_counter() - self.t0
        rate = (stats.images - self.images0) * self.world / dt if dt > 0 else 0.0
        loss = stats.loss_sum / stats.images if stats.images else math.nan
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(step=step, loss=f"{loss:.4f}", img_s=f"{rate:.1f}", refresh=False)
        if step % self.config.log_every == 0:
            self.runlog.scalars({"train/loss_running": loss, "train/images_per_s": rate}, step)
            if self.bar is None:
                left = (self.total - batch_index) * self.config.batch_size * self.world / rate if rate else 0
                logger.info(
                    "epoch %d/%d batch %d/%d step %d: loss %.4f, %.1f img/s, epoch ETA %.0f s",
                    self.epoch + 1,
                    self.config.epochs,
                    batch_index,
                    self.total,
                    step,
                    loss,
                    rate,
                    left,
                )

    def close(self) -> None:
        """Remove the epoch's bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
