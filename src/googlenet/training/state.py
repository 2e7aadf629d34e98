"""What changes while a run trains (:class:`TrainState`), and whether a checkpoint may continue a run.

The state is the model, its Polyak average (section 6: "Polyak averaging was used to create the
final model used at inference time"), the optimizer, the schedule, the position in the run (epoch,
batch, step), the epoch records so far, the best averaged-weights score and this rank's running
epoch sums and RNGs. With the run's header (config, hashes, world size, class names) it is what a
checkpoint holds (:mod:`.checkpoint` writes and reads the file). :func:`load_resume_checkpoint` reads
``last.pt`` for ``--resume`` and refuses one that another config, task or world size wrote, or
whose run has nothing left to train.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from ..runs import RunLayout
from .checkpoint import capture_rng, load_checkpoint, restore_rng
from .config import TrainConfig, resume_hash
from .distributed import DistEnv
from .engine import EpochStats
from .task import Task

__all__ = ["BEST_SCORE_KEY", "TrainState", "load_resume_checkpoint"]

# The checkpoint entry of TrainState.best; checkpoints of older versions call it by the
# classifier's metric, whatever the task's best_metric was.
BEST_SCORE_KEY = "best_score"
_OLD_BEST_SCORE_KEY = "best_avg_val_top1_err"


def _mine(value: Any, rank: int) -> Any:
    # A checkpoint holds per-rank entries as lists indexed by rank; state_dict() gives this rank's.
    return value[rank] if isinstance(value, list) else value


@dataclass
class TrainState:
    """Everything that changes while a run trains; with the run's header, what a checkpoint holds.

    ``epoch`` is the epoch in progress (0-based, = epochs completed), ``batch`` the next batch of it,
    ``step`` the optimizer steps so far, ``best`` the lowest averaged-weights val score of the task's
    ``best_metric`` (classification: top-1 error; kept as ``best_score`` in checkpoints).
    """

    model: GoogLeNet
    ema: torch.optim.swa_utils.AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    epoch_stats: EpochStats = field(default_factory=EpochStats)

    def state_dict(self) -> dict[str, Any]:
        """This process's state (its own RNGs and epoch sums; :class:`~.checkpoint.CheckpointSaver`
        gathers ranks)."""
        device = next(self.model.parameters()).device
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": list(self.history),
            BEST_SCORE_KEY: self.best,
            "epoch_stats": self.epoch_stats.to_dict(),
            "rng": capture_rng(device),
        }

    def load_state_dict(self, state: Mapping[str, Any], rank: int = 0) -> None:
        """Restore from :meth:`state_dict` or a checkpoint (whose RNGs and sums are per rank; one
        written by an older version keeps the best score under its old name)."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = int(state["epoch"]), int(state["batch"]), int(state["step"])
        self.history = list(state["history"])
        self.best = state[BEST_SCORE_KEY] if BEST_SCORE_KEY in state else state[_OLD_BEST_SCORE_KEY]
        self.epoch_stats = EpochStats.from_dict(_mine(state["epoch_stats"], rank))
        restore_rng(_mine(state["rng"], rank), next(self.model.parameters()).device)


def load_resume_checkpoint(
    config: TrainConfig, env: DistEnv, layout: RunLayout, task: Task
) -> dict[str, Any]:
    """``layout``'s ``last.pt``, checked to continue the run ``config`` describes: written by the same
    training config (but the epoch count), the same task settings and as many processes, with epochs
    left to train. Errors name the run and what differs; nothing is changed."""
    if not layout.last_checkpoint.is_file() and layout.weights.is_file():
        raise GoogLeNetError(
            f"cannot resume: checkpoint {layout.last_checkpoint} not found: the run is finished and kept "
            f"only its weights (--keep-checkpoints last keeps {layout.last_checkpoint.name}); start a new "
            f"run with --init-from {layout.root} to train them further"
        )
    checkpoint = load_checkpoint(layout.last_checkpoint)
    if checkpoint["resume_hash"] != resume_hash(config):
        raise GoogLeNetError(
            f"cannot resume: {layout.last_checkpoint} was written by a different training config"
        )
    saved, given = dict(checkpoint.get("task_settings", {})), dict(task.settings)
    if saved and not given:
        raise GoogLeNetError(
            f"cannot resume: {layout.root} is a run of another task (its settings: {layout.task_settings}); "
            "continue it with the command that started it"
        )
    if saved != given:
        key = sorted(k for k in {*saved, *given} if saved.get(k) != given.get(k))[0]
        raise GoogLeNetError(
            f"cannot resume: {layout.root} was trained with {key}={saved.get(key)!r}, not "
            f"{given.get(key)!r} (the task's settings, {layout.task_settings}, must stay the run's)"
        )
    if checkpoint["world_size"] != env.world_size:
        raise GoogLeNetError(
            f"cannot resume {layout.root} with {env.world_size} process(es): it was trained with "
            f"{checkpoint['world_size']} (the data order and batch depend on it)"
        )
    done, batch = int(checkpoint["epoch"]), int(checkpoint["batch"])
    # Resuming with fewer epochs than were trained would rewrite the weights and config.yaml of a
    # longer run; only a run whose last epoch ended without its weights is finished off.
    if done > config.epochs or (done == config.epochs and (batch > 0 or layout.weights.is_file())):
        raise GoogLeNetError(
            f"run {layout.root} has already trained {done} epoch(s), --epochs {config.epochs}: nothing "
            f"to do, nothing changed; pass --epochs above {done} to train it further"
        )
    return checkpoint
