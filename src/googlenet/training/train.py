"""Training runs: :func:`fit` builds, restores, runs the epochs and finalises one run of the recipe.

The recipe is the paper's section 6 ("Training Methodology") with the numbers of BVLC's Caffe
reproduction (``models/bvlc_googlenet/solver.prototxt``) where the paper gives none:

* SGD, momentum 0.9 (section 6); learning rate 0.01 at batch 32 (BVLC ``base_lr``), scaled linearly
  with the global batch; "decreasing the learning rate by 4% every 8 epochs" (section 6): x0.96 every
  8 epochs, applied at the iteration where the epoch count crosses the boundary; optional linear
  warm-up (not in the paper; helps large batches);
* weight decay 2e-4 (BVLC ``weight_decay``) on weights only: BVLC's ``decay_mult: 0`` on biases, and
  none on BatchNorm scale/shift; BVLC's ``lr_mult: 2`` on biases (``bias_lr_mult``);
* loss = main + 0.3 x (aux1 + aux2) (section 5) -- :func:`googlenet.training.engine.googlenet_loss`;
* "Polyak averaging [13] was used to create the final model used at inference time" (section 6):
  an exponential moving average of the weights (:class:`torch.optim.swa_utils.AveragedModel`),
  evaluated every epoch next to the raw weights and exported as ``model.safetensors``;
* section 6's image sampling lives in :func:`googlenet.data.transforms.train_transform`.

:func:`fit` follows the shape of torchvision's ``references/classification/train.py``:

1. :func:`build_run` checks the config, builds the task's data and model, the Polyak average,
   optimizer, schedule and loaders, and loads the checkpoint to continue -- everything that can
   fail on bad input -- before anything is written;
2. :meth:`TrainState.load_state_dict` restores a run (or the fresh run is seeded);
3. :func:`open_run_dir` writes ``config.yaml`` and ``env.json`` (rank 0; the layout is
   :class:`googlenet.runs.RunLayout`, see docs/training.md);
4. :func:`run_epochs`: ``train_one_epoch``, the task's validation of the raw and averaged weights,
   one ``metrics.jsonl`` record, ``checkpoints/last.pt`` (and ``best.pt`` with
   ``model_best.safetensors`` when the averaged weights' ``Task.best_metric`` -- the classifier's
   top-1 error -- improves) per epoch;
5. :func:`finalise` writes ``model.safetensors`` (averaged) and ``model_raw.safetensors``, then
   calls ``Task.finalise``.

What is trained comes from a :class:`~googlenet.training.task.Task` (data, model, loss builders and
the hooks of a task that is not a classifier); the default is the paper's classifier, the
detector's region classifier and MultiBox (:mod:`googlenet.detection.multibox`) pass their own.

Resume (:func:`fit` with ``config.resume``) restores model, averaged model, optimizer, scheduler,
every RNG and the position inside the epoch; the data order and augmentation are pure functions of
``(seed, epoch, position)`` (:mod:`.engine`), so an interrupted and resumed run ends with the
same weights, bit for bit in deterministic mode, as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..atomic import atomic_write_text
from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from ..runs import RunLayout
from . import distributed as D
from .checkpoint import CheckpointSaver, capture_rng, load_checkpoint, restore_rng
from .config import RUNTIME_KEYS, TrainConfig, config_hash, resolve_config, resume_config, resume_hash
from .engine import (
    EpochBatchSampler,
    EpochStats,
    SeededSamples,
    StepSettings,
    TrainForward,
    prepare_model,
    resolve_precision,
    train_one_epoch,
)
from .task import CLASSIFICATION, Task, TaskData

__all__ = [
    "RUNTIME_KEYS",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "config_hash",
    "fit",
    "load_checkpoint",
    "resolve_config",
    "resume_config",
]

logger = logging.getLogger("googlenet.train")


# --------------------------------------------------------------------------- schedule and optimizer


def lr_factor(
    iteration: int,
    *,
    iters_per_epoch: int,
    step_epochs: float,
    gamma: float,
    warmup_epochs: float = 0.0,
    warmup_start_factor: float = 0.1,
) -> float:
    """Multiplier of the base learning rate during optimizer step ``iteration`` (0-based).

    ``gamma ** floor(iteration / (step_epochs * iters_per_epoch))`` (section 6: x0.96 every 8 epochs,
    counted from iteration 0), times a linear ramp from ``warmup_start_factor`` to 1 over the first
    ``warmup_epochs``. A closed form (fed to LambdaLR) rather than SequentialLR(LinearLR, StepLR):
    SequentialLR restarts StepLR's count at the end of warm-up, which would shift every decay.
    """
    step_iters = max(1, round(step_epochs * iters_per_epoch))
    factor = gamma ** (iteration // step_iters)
    warmup_iters = round(warmup_epochs * iters_per_epoch)
    if iteration < warmup_iters:
        factor *= warmup_start_factor + (1 - warmup_start_factor) * iteration / warmup_iters
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    fn = partial(
        lr_factor,
        iters_per_epoch=iters_per_epoch,
        step_epochs=config.lr_step_epochs,
        gamma=config.lr_gamma,
        warmup_epochs=config.warmup_epochs,
        warmup_start_factor=config.warmup_start_factor,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_mult: float,
    pretrained_lr_mult: float = 1.0,
) -> list[dict[str, Any]]:
    """SGD parameter groups as BVLC sets them: weights decay; biases (lr x ``bias_lr_mult``) and
    normalisation scale/shift do not. Tensors loaded by ``--init-from`` get their rate times
    ``pretrained_lr_mult``; frozen tensors (no gradient) are left out."""
    from .finetune import parameter_lr_factors

    factors = parameter_lr_factors(model, pretrained_lr_mult)
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES):
                kind, mult, decay = "norm", 1.0, 0.0
            elif name == "bias":
                kind, mult, decay = "bias", bias_lr_mult, 0.0
            else:
                kind, mult, decay = "weight", 1.0, weight_decay
            factor = factors[id(p)]
            group = groups.setdefault(
                (kind, factor), {"params": [], "lr": lr * mult * factor, "weight_decay": decay}
            )
            group["params"].append(p)
    order = {"weight": 0, "bias": 1, "norm": 2}
    return [groups[k] for k in sorted(groups, key=lambda k: (order[k[0]], -k[1]))]


def build_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with momentum (section 6) or AdamW, on the BVLC parameter groups of :func:`param_groups`.

    AdamW is not the paper's: it is here because SGD needs tens of epochs to leave chance on the
    built-in set (every class is a colour-free shape; see docs/training.md), which a CPU demo cannot
    afford, while AdamW's per-parameter step sizes get through that plateau in a few hundred steps.
    Its ``weight_decay`` is decoupled (multiplied by the learning rate), so it wants values around
    0.05, not SGD's 2e-4.
    """
    groups = param_groups(
        model,
        lr=lr,
        weight_decay=config.weight_decay,
        bias_lr_mult=config.bias_lr_mult,
        pretrained_lr_mult=config.pretrained_lr_mult,
    )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)


def base_lr(config: TrainConfig, world_size: int) -> float:
    """``lr`` scaled by global batch / reference batch when ``lr_scale_with_batch``."""
    if not config.lr_scale_with_batch:
        return config.lr
    return config.lr * config.batch_size * world_size / config.lr_reference_batch


def epoch_lr(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> float:
    """The first group's learning rate during optimizer step ``step - 1``: the rate an epoch that
    ended at ``step`` trained its last batch with (not the rate after its last scheduler step,
    which is the next epoch's; issue 13)."""
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](max(step - 1, 0))


# --------------------------------------------------------------------------- the training state


def _mine(value: Any, rank: int) -> Any:
    # A checkpoint holds per-rank entries as lists indexed by rank; state_dict() gives this rank's.
    return value[rank] if isinstance(value, list) else value


@dataclass
class TrainState:
    """Everything that changes while a run trains; with the run's header, what a checkpoint holds.

    ``epoch`` is the epoch in progress (0-based, = epochs completed), ``batch`` the next batch of it,
    ``step`` the optimizer steps so far, ``best`` the lowest averaged-weights val score of the task's
    ``best_metric`` (classification: top-1 error; kept as ``best_avg_val_top1_err`` in checkpoints).
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
        """This process's state (its own RNGs and epoch sums; :class:`CheckpointSaver` gathers ranks)."""
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
            "best_avg_val_top1_err": self.best,
            "epoch_stats": self.epoch_stats.to_dict(),
            "rng": capture_rng(device),
        }

    def load_state_dict(self, state: Mapping[str, Any], rank: int = 0) -> None:
        """Restore from :meth:`state_dict` or a checkpoint (whose RNGs and sums are per rank)."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = int(state["epoch"]), int(state["batch"]), int(state["step"])
        self.history = list(state["history"])
        self.best = state["best_avg_val_top1_err"]
        self.epoch_stats = EpochStats.from_dict(_mine(state["epoch_stats"], rank))
        restore_rng(_mine(state["rng"], rank), next(self.model.parameters()).device)


# --------------------------------------------------------------------------- run directory


def environment(env: D.DistEnv) -> dict[str, Any]:
    """What produced the run: versions, device, CPU model, world size, git commit."""
    import torchvision

    from ..cpu import cpu_name

    cpu = cpu_name()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": str(env.device),
        "device_name": torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "world_size": env.world_size,
        "backend": env.backend,
        "git_commit": _git_commit(),
        "argv": sys.argv,
    }
    if env.device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- signals


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes the current step, checkpoints and returns."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[StopFlag]:
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


# --------------------------------------------------------------------------- fit


@dataclass
class TrainResult:
    """What :func:`fit` returns. ``interrupted`` is the signal name when a signal stopped the run."""

    run_dir: Path
    epochs_completed: int
    step: int
    metrics: list[dict[str, Any]]
    best_score: float | None  # lowest averaged val score of Task.best_metric (classifier: top-1 error)
    model_path: Path | None  # averaged weights; None when interrupted before the end
    raw_model_path: Path | None
    interrupted: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when finished; 128 + signal number when stopped by a signal (130 SIGINT, 143 SIGTERM)."""
        if self.interrupted is None:
            return 0
        return 128 + int(getattr(signal, self.interrupted))


def fit(config: TrainConfig, *, task: Task = CLASSIFICATION) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a run of ``task`` (default: the classifier).

    Under ``torchrun`` every rank calls this; rank 0 alone writes files. Bad input raises
    :class:`~googlenet.errors.GoogLeNetError` before the run directory is created or changed; a
    non-finite loss raises it too (the last checkpoint is left intact).
    """
    config.validate()
    env = D.init_distributed(config.device)
    # fit() is a run, not an import: it may set torch's thread count and determinism, but puts
    # them back so that a caller (a notebook, a test) is left as it was.
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        _apply_runtime(config, env)
        # A Ctrl-C while building raises KeyboardInterrupt: nothing is written yet. From here on a
        # signal finishes the current step, checkpoints and stops.
        run = build_run(config, env, task)
        with _stop_on_signals(config.handle_signals) as stop:
            restore(run)
            open_run_dir(run)
            with _RunLog(run.layout, env.is_main, purge_step=run.state.step if run.resumed else None) as log:
                log_start(run)
                interrupted = run_epochs(run, stop, log)
                if interrupted:
                    log.file_only(
                        logging.WARNING,
                        f"stopped by {interrupted} after step {run.state.step}; "
                        f"checkpoint {run.layout.last_checkpoint} written",
                    )
                    return _result(run, interrupted=interrupted)
                return finalise(run)
    finally:
        D.teardown(env)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark


@dataclass
class Run:
    """One run, built and checked by :func:`build_run` before anything is written."""

    config: TrainConfig
    env: D.DistEnv
    layout: RunLayout
    task: Task
    data: TaskData
    state: TrainState
    forward: nn.Module  # what train_one_epoch steps: TrainForward, maybe in DDP / torch.compile
    settings: StepSettings
    train_sampler: EpochBatchSampler
    train_loader: Any
    val_loader: Any
    saver: CheckpointSaver
    checkpoint: dict[str, Any] | None  # the loaded last.pt when resuming

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None

    @property
    def iters_per_epoch(self) -> int:
        return self.train_sampler.batches_per_epoch()


def check_run_dir(root: Path) -> None:
    """``root`` is, or can become, a directory: errors name it (``--out``) before any work."""
    if root.exists() and not root.is_dir():
        raise GoogLeNetError(f"--out {root} is a file, not a directory: pass a new or existing run directory")
    parent = root
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise GoogLeNetError(f"--out {root}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GoogLeNetError(f"--out {root}: cannot create it, {parent} is not writable")


def _load_resume_checkpoint(
    config: TrainConfig, env: D.DistEnv, layout: RunLayout, task: Task
) -> dict[str, Any]:
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
    # longer run (issue 12); only a run whose last epoch ended without its weights is finished off.
    if done > config.epochs or (done == config.epochs and (batch > 0 or layout.weights.is_file())):
        raise GoogLeNetError(
            f"run {layout.root} has already trained {done} epoch(s), --epochs {config.epochs}: nothing "
            f"to do, nothing changed; pass --epochs above {done} to train it further"
        )
    return checkpoint


def build_run(config: TrainConfig, env: D.DistEnv, task: Task) -> Run:
    """Every object of the run, with every input checked; nothing is written."""
    if not config.resume and config.data != "builtin" and Path(config.data).expanduser().is_dir():
        # config.yaml must name the data wherever --resume is run from
        config = replace(config, data=str(Path(config.data).expanduser().resolve()))
    layout = RunLayout(config.out)
    check_run_dir(layout.root)
    if config.resume:
        checkpoint: dict[str, Any] | None = _load_resume_checkpoint(config, env, layout, task)
    else:
        checkpoint = None
        if layout.last_checkpoint.exists():
            raise GoogLeNetError(
                f"{layout.root} already holds a training run ({layout.last_checkpoint}); continue it with "
                f"`googlenet train --resume {layout.root}` or choose another --out"
            )
    device = env.device
    precision = resolve_precision(config.precision, device)
    data = task.build_data(config)

    # the same initial weights on every rank and every run (and every ensemble member sharing init_seed)
    torch.manual_seed(config.seed if config.init_seed is None else config.init_seed)
    model = task.build_model(config, data.classes)
    if config.sync_bn and env.is_distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[assignment]
    prepare_model(model, device, channels_last=config.channels_last)
    # Polyak averaging (section 6) as an EMA of the weights. use_buffers=True averages BatchNorm's
    # running statistics along with the weights, so the averaged model is usable without a
    # recomputation pass over the data (SWA's update_bn); the paper variant has no buffers.
    ema = torch.optim.swa_utils.AveragedModel(
        model,
        multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay),
        use_buffers=True,
    )
    model.meta.source = f"googlenet train {layout.root} (raw weights)"
    ema.module.meta.source = (
        f"googlenet train {layout.root} (Polyak-averaged weights, EMA {config.ema_decay})"
    )
    optimizer = build_optimizer(model, config, base_lr(config, env.world_size))
    train_sampler = task.build_sampler(
        data.train, config.batch_size, seed=config.seed, rank=env.rank, world_size=env.world_size
    )
    val_sampler = EpochBatchSampler(
        len(data.val),
        config.val_batch_size or config.batch_size,
        rank=env.rank,
        world_size=env.world_size,
        shuffle=False,
    )
    iters_per_epoch = train_sampler.batches_per_epoch()
    if iters_per_epoch == 0:
        raise GoogLeNetError(
            f"{data.source} has {len(data.train)} training images, fewer than one global batch of "
            f"{train_sampler.global_batch_size}; lower --batch-size"
        )
    scheduler = build_scheduler(optimizer, config, iters_per_epoch)
    state = TrainState(model, ema, optimizer, scheduler)

    forward: nn.Module = TrainForward(model)
    if env.is_distributed:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    header = {
        "config": config.saved_dict(),
        "config_hash": config_hash(config),
        "resume_hash": resume_hash(config),
        "world_size": env.world_size,
        "class_names": data.classes,
    }
    if task.settings:
        header["task_settings"] = dict(task.settings)
    return Run(
        config=config,
        env=env,
        layout=layout,
        task=task,
        data=data,
        state=state,
        forward=forward,
        settings=StepSettings(
            loss_fn=task.build_loss(config),
            precision=precision,
            channels_last=config.channels_last,
            metric=task.train_metric,
        ),
        train_sampler=train_sampler,
        train_loader=_loader(data.train, train_sampler, config.workers, device, task.collate),
        val_loader=_loader(data.val, val_sampler, config.workers, device, task.collate),
        saver=CheckpointSaver(layout, env, header),
        checkpoint=checkpoint,
    )


def restore(run: Run) -> None:
    """Continue from the loaded checkpoint, or seed the fresh run's dropout and Python RNGs."""
    if run.checkpoint is not None:
        run.state.load_state_dict(run.checkpoint, rank=run.env.rank)
    else:
        # Dropout masks differ per rank, as they would on different machines.
        torch.manual_seed(run.config.seed + 1 + run.env.rank)
        random.seed(run.config.seed + run.env.rank)


def open_run_dir(run: Run) -> None:
    """Rank 0 writes ``config.yaml`` (on resume too: ``--epochs`` may have changed), ``env.json`` and,
    on resume, ``metrics.jsonl`` as the checkpoint's history (dropping records of lost work)."""
    layout, env = run.layout, run.env
    if env.is_main:
        layout.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_text(layout.config, yaml.safe_dump(run.config.saved_dict(), sort_keys=False))
        if run.task.settings:
            atomic_write_text(layout.task_settings, yaml.safe_dump(dict(run.task.settings), sort_keys=False))
        info = environment(env)
        if run.resumed:  # keep what produced the first part of the run; list each resume
            previous = _read_json(layout.env)
            info = {**previous, "resumed": [*previous.get("resumed", []), info]} if previous else info
        atomic_write_text(layout.env, json.dumps(info, indent=1) + "\n")
        if run.resumed:
            atomic_write_text(layout.metrics, "".join(json.dumps(r) + "\n" for r in run.state.history))
    D.barrier(env)


def log_start(run: Run) -> None:
    state = run.state
    logger.info(
        "%s %s: rank %d/%d on %s, precision %s, channels_last %s",
        "resuming" if run.resumed else "training",
        run.layout.root,
        run.env.rank,
        run.env.world_size,
        run.env.device,
        run.settings.precision,
        run.config.channels_last,
    )
    if run.resumed:
        logger.info(
            "resumed at epoch %d, batch %d/%d, step %d",
            state.epoch + 1,
            state.batch,
            run.iters_per_epoch,
            state.step,
        )


def _signal_name(stop: StopFlag) -> str:
    return signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"


def run_epochs(run: Run, stop: StopFlag, log: _RunLog) -> str | None:
    """Train epoch by epoch to ``config.epochs``; the signal's name when one stopped the run."""
    config, env, state, saver = run.config, run.env, run.state, run.saver
    progress = _Progress(env, config, run.iters_per_epoch, log)

    def after_step(batch_index: int, global_step: int, stats: EpochStats) -> bool:
        state.batch, state.step, state.epoch_stats = batch_index, global_step, stats
        if config.checkpoint_every and global_step % config.checkpoint_every == 0:
            saver.save_last(state.state_dict())
        if config.debug_hold_at_step is not None and global_step == config.debug_hold_at_step:
            logger.warning("debug_hold_at_step: holding after step %d (testing option)", global_step)
            deadline = time.monotonic() + 120
            while not stop and time.monotonic() < deadline:
                time.sleep(0.02)
        if D.any_rank(env, bool(stop)):
            saver.save_last(state.state_dict())
            return True
        return False

    while state.epoch < config.epochs:
        run.train_sampler.set_epoch(state.epoch, state.batch)
        progress.start(state.epoch, state.batch, state.epoch_stats.images)
        try:
            stats, state.step, stopped = train_one_epoch(
                run.forward,
                state.optimizer,
                run.train_loader,
                epoch=state.epoch,
                start_batch=state.batch,
                global_step=state.step,
                settings=run.settings,
                env=env,
                stats=state.epoch_stats,
                scheduler=state.scheduler,
                ema=state.ema,
                after_step=after_step,
                progress=progress.update,
            )
        finally:
            progress.close()
        if stopped:
            return _signal_name(stop)
        record = epoch_record(run, stats)
        state.history.append(record)
        score = record[f"avg_val_{run.task.best_metric}"]
        improved = state.best is None or score < state.best
        if improved:
            state.best = score
        state.epoch, state.batch, state.epoch_stats = state.epoch + 1, 0, EpochStats()
        saver.save_last(state.state_dict())
        if improved:
            saver.save_best(state.ema.module, _weights_extra(run, record["epoch"]))
        if env.is_main:
            with open(run.layout.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            log.scalars(
                {f"epoch/{k}": v for k, v in record.items() if k not in ("epoch", "step")}, state.step
            )
            _log_epoch(record, config.epochs, run.task.best_metric)
        if D.any_rank(env, bool(stop)):
            return _signal_name(stop)
    return None


def _log_epoch(record: Mapping[str, Any], epochs: int, best_metric: str) -> None:
    if "val_top1_err" not in record:  # another task: its fields as it names them

        def fields(prefix: str) -> str:
            scores = ((k, v) for k, v in record.items() if k.startswith(prefix) and isinstance(v, float))
            return " ".join(f"{k.removeprefix(prefix)} {v:.4f}" for k, v in scores)

        text = f"train {fields('train_')} | val {fields('val_')} | averaged val {fields('avg_val_')}"
        logger.info(
            "epoch %d/%d: %s | %.1f img/s, %.1f s, %d files skipped (best epoch: lowest averaged val %s)",
            record["epoch"],
            epochs,
            text,
            record["images_per_s"],
            record["epoch_time_s"],
            record["skipped_files"],
            best_metric,
        )
        return
    logger.info(
        "epoch %d/%d: train loss %.4f top-1 err %.4f | val top-1 err %.4f top-%d err %.4f | "
        "averaged val top-1 err %.4f top-%d err %.4f | %.1f img/s, %.1f s, %d files skipped",
        record["epoch"],
        epochs,
        record["train_loss"],
        record["train_top1_err"],
        record["val_top1_err"],
        record["top_k"],
        record["val_top5_err"],
        record["avg_val_top1_err"],
        record["top_k"],
        record["avg_val_top5_err"],
        record["images_per_s"],
        record["epoch_time_s"],
        record["skipped_files"],
    )


def epoch_record(run: Run, stats: EpochStats) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: the epoch's training sums over every rank, and the task's
    validation of the raw and the averaged weights (classification: section 7's single centre crop)."""
    env, state = run.env, run.state
    sums = D.all_reduce_sum(
        env,
        {
            "loss_sum": stats.loss_sum,
            **{f"metric.{k}": stats.sums.get(k, 0.0) for k in run.settings.metric.keys},
            "images": stats.images,
            "skipped": stats.skipped_files,
            "elapsed": stats.elapsed_s,
        },
    )
    metric_sums = {k.removeprefix("metric."): v for k, v in sums.items() if k.startswith("metric.")}
    scores = {
        prefix: run.task.validate(
            model,
            run.val_loader,
            data=run.data,
            env=env,
            precision=run.settings.precision,
            channels_last=run.config.channels_last,
        )
        for prefix, model in (("val_", state.model), ("avg_val_", state.ema.module))
    }
    raw = scores["val_"]
    images = sums["images"]
    elapsed = sums["elapsed"] / env.world_size
    return {
        "epoch": state.epoch + 1,
        "step": state.step,
        "lr": epoch_lr(state.scheduler, state.step),
        "train_loss": sums["loss_sum"] / images if images else math.nan,
        **run.settings.metric.epoch(metric_sums, images),
        **{f"{prefix}{k}": v for prefix, s in scores.items() for k, v in s.values.items()},
        **raw.shared,
        "train_images": int(images),
        "val_images": raw.images,
        "images_per_s": images / elapsed if elapsed > 0 else 0.0,
        "epoch_time_s": elapsed,
        "skipped_files": int(sums["skipped"]),
    }


def _weights_extra(run: Run, epochs: int) -> dict[str, str]:
    extra = {"epochs": str(epochs), "steps": str(run.state.step), "seed": str(run.config.seed)}
    record = next((r for r in reversed(run.state.history) if r["epoch"] == epochs), None)
    key = f"avg_val_{run.task.best_metric}"
    if record is not None and key in record:
        extra[key] = f"{record[key]:.6f}"
    return extra


def finalise(run: Run) -> TrainResult:
    """Write the averaged (``model.safetensors``) and raw weights of the finished run, then let the
    task write what it adds (``Task.finalise``)."""
    layout = run.layout
    if run.env.is_main:
        from ..weights.store import save_weights

        extra = _weights_extra(run, run.config.epochs)
        digest = run.saver.header["config_hash"]
        save_weights(run.state.ema.module, layout.weights, training_config_hash=digest, extra=extra)
        save_weights(run.state.model, layout.raw_weights, training_config_hash=digest, extra=extra)
        logger.info("wrote %s (averaged weights) and %s", layout.weights, layout.raw_weights)
        if run.task.finalise is not None:
            run.task.finalise(run.config, run.data, run.state.ema.module, layout.root)
    D.barrier(run.env)
    return _result(run)


def _result(run: Run, interrupted: str | None = None) -> TrainResult:
    state, layout = run.state, run.layout
    done = interrupted is None
    return TrainResult(
        run_dir=layout.root,
        epochs_completed=state.epoch,
        step=state.step,
        metrics=state.history,
        best_score=state.best,
        model_path=layout.weights if done else None,
        raw_model_path=layout.raw_weights if done else None,
        interrupted=interrupted,
    )


def _loader(
    dataset: Any, sampler: EpochBatchSampler, workers: int, device: torch.device, collate: Any
) -> Any:
    return torch.utils.data.DataLoader(
        SeededSamples(dataset),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        # Its own generator, so that creating an iterator never draws from the global RNG (which
        # dropout uses): a run resumed mid-epoch then continues the same random stream.
        generator=torch.Generator(),
    )


class _RunLog:
    """train.log handler and TensorBoard writer of rank 0 (no-ops elsewhere); a context manager."""

    def __init__(self, layout: RunLayout, enabled: bool, purge_step: int | None) -> None:
        self.handler: logging.Handler | None = None
        self.writer: Any = None
        self.previous_level = logger.level
        if not enabled:
            return
        self.handler = logging.FileHandler(layout.log)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("googlenet.train", "googlenet.data"):
            logging.getLogger(name).addHandler(self.handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(layout.tensorboard), purge_step=purge_step)

    def __enter__(self) -> _RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def file_only(self, level: int, message: str) -> None:
        """A line for train.log alone: what the caller (the CLI) tells the user in its own words."""
        if self.handler is not None:
            self.handler.handle(logger.makeRecord(logger.name, level, __file__, 0, message, (), None))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                if value is not None:
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.handler is not None:
            for name in ("googlenet.train", "googlenet.data"):
                logging.getLogger(name).removeHandler(self.handler)
            self.handler.close()
            logger.setLevel(self.previous_level)


def _apply_runtime(config: TrainConfig, env: D.DistEnv) -> None:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class _Progress:
    """tqdm bar on rank 0 when stderr is a terminal, else a plain log line every ``log_every`` steps."""

    def __init__(self, env: D.DistEnv, config: TrainConfig, total: int, runlog: _RunLog) -> None:
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
        if self.bar is not None:
            self.bar.close()
            self.bar = None
