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
   optimizer and schedule (:mod:`.optim`) and loaders, and loads the checkpoint to continue
   (:func:`.state.load_resume_checkpoint`) -- everything that can fail on bad input -- before
   anything is written;
2. :func:`restore`: :meth:`.state.TrainState.load_state_dict` restores a run (or the fresh run is
   seeded);
3. :func:`open_run_dir` writes ``config.yaml`` and ``env.json`` (rank 0; the layout is
   :class:`googlenet.runs.RunLayout`, see docs/training.md);
4. :func:`run_epochs`: ``train_one_epoch``, the task's validation of the raw and averaged weights,
   one ``metrics.jsonl`` record (:func:`epoch_record`) and its log line (``Task.epoch_line``),
   ``checkpoints/last.pt`` (and ``best.pt`` with ``model_best.safetensors`` when the averaged
   weights' ``Task.best_metric`` -- the classifier's top-1 error -- improves) per epoch; logs and
   progress go through :mod:`.runlog`, a signal stops at a step boundary (:mod:`.signals`);
5. :func:`finalise` writes ``model.safetensors`` (averaged) and ``model_raw.safetensors``, removes
   the checkpoints ``keep_checkpoints`` does not keep (:func:`.checkpoint.prune_run`), then calls
   ``Task.finalise``.

What is trained comes from a :class:`~googlenet.training.task.Task` (data, model, loss builders and
the hooks of a task that is not a classifier); the default is the paper's classifier, the
detector's region classifier and MultiBox (:mod:`googlenet.detection.multibox`) pass their own.

``fit(config, on_step=callback)`` calls ``callback(step)`` after every optimizer step (a user's
own logging, profiling or time limit; the tests pause a real process there to signal it).

Resume (:func:`fit` with ``config.resume``) restores model, averaged model, optimizer, scheduler,
every RNG and the position inside the epoch; the data order and augmentation are pure functions of
``(seed, epoch, position)`` (:mod:`.engine`), so an interrupted and resumed run ends with the
same weights, bit for bit in deterministic mode, as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..atomic import atomic_write_text, writable_ancestor
from ..environment import environment
from ..errors import GoogLeNetError
from ..manifest import write_json
from ..runs import RunLayout
from . import distributed as D
from .checkpoint import CheckpointSaver, prune_run
from .config import TrainConfig, config_hash, resume_hash
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
from .optim import base_lr, build_optimizer, build_scheduler, ema_horizon, epoch_lr, polyak_average
from .runlog import Progress, RunLog
from .signals import StopFlag, signal_name, stop_on_signals
from .state import TrainState, load_resume_checkpoint
from .task import CLASSIFICATION, Task, TaskData

__all__ = [
    "Run",
    "TrainResult",
    "build_run",
    "check_run_dir",
    "epoch_record",
    "finalise",
    "fit",
    "open_run_dir",
    "polyak_line",
    "restore",
    "run_epochs",
]

logger = logging.getLogger("googlenet.train")

# on_step(global step), called after every optimizer step
OnStep = Callable[[int], object]


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


def fit(
    config: TrainConfig,
    *,
    task: Task = CLASSIFICATION,
    on_step: OnStep | None = None,
    on_start: Callable[[], object] | None = None,
) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a run of ``task`` (default: the classifier).

    Under ``torchrun`` every rank calls this; rank 0 alone writes files. Bad input raises
    :class:`~googlenet.errors.GoogLeNetError` before the run directory is created or changed; a
    non-finite loss raises it too (the last checkpoint is left intact).

    ``on_step(step)`` is called on every rank after each optimizer step, with the run's global
    step count, once that step's periodic checkpoint (``checkpoint_every``) is written; a signal
    that arrives while it runs stops the run when it returns. ``on_start()`` is called once every
    input is checked, before the run directory is written (an ensemble writes its index then).
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
        with stop_on_signals(config.handle_signals) as stop:
            restore(run)
            if on_start is not None:
                on_start()
            open_run_dir(run)
            with RunLog(run.layout, env.is_main, purge_step=run.state.step if run.resumed else None) as log:
                log_start(run)
                interrupted = run_epochs(run, stop, log, on_step)
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
        """Whether the run continues a checkpoint (``--resume``)."""
        return self.checkpoint is not None

    @property
    def iters_per_epoch(self) -> int:
        """Optimizer steps per epoch (global batches)."""
        return self.train_sampler.batches_per_epoch()


def check_run_dir(root: Path) -> None:
    """``root`` is, or can become, a directory: errors name it (``--out``) before any work."""
    if root.exists() and not root.is_dir():
        raise GoogLeNetError(f"--out {root} is a file, not a directory: pass a new or existing run directory")
    try:
        writable_ancestor(root)
    except NotADirectoryError as exc:
        raise GoogLeNetError(f"--out {root}: {exc.filename} is a file, not a directory") from None
    except PermissionError as exc:
        raise GoogLeNetError(f"--out {root}: cannot create it, {exc.filename} is not writable") from None


def build_run(config: TrainConfig, env: D.DistEnv, task: Task) -> Run:
    """Every object of the run, with every input checked; nothing is written."""
    if not config.resume:
        config = config.with_absolute_data()  # config.yaml names the data wherever --resume runs
    layout = RunLayout(config.out)
    check_run_dir(layout.root)
    if config.resume:
        checkpoint: dict[str, Any] | None = load_resume_checkpoint(config, env, layout, task)
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
    if checkpoint is not None and checkpoint.get("class_names") not in (None, list(data.classes)):
        raise GoogLeNetError(
            f"cannot resume: {layout.root} was trained on the classes {checkpoint['class_names']}; "
            f"its data ({config.data}) now gives {list(data.classes)}"
        )

    # the same initial weights on every rank and every run (and every ensemble member sharing init_seed)
    torch.manual_seed(config.seed if config.init_seed is None else config.init_seed)
    model = task.build_model(config, data)
    if config.sync_bn and env.is_distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[assignment]
    prepare_model(model, device, channels_last=config.channels_last)
    ema = polyak_average(model, config.ema_decay, warmup=config.ema_warmup)
    model.meta.source = f"googlenet train {layout.root} (raw weights)"
    warm = ", warmed up" if config.ema_warmup else ""
    ema.module.meta.source = (
        f"googlenet train {layout.root} (Polyak-averaged weights, EMA {config.ema_decay}{warm})"
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
        saver=CheckpointSaver(layout, env, header, keep_best=config.keep_checkpoints == "all"),
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
        info = environment(env.device, env.world_size, env.backend)
        if run.resumed:  # keep what produced the first part of the run; list each resume
            previous = _read_json(layout.env)
            info = {**previous, "resumed": [*previous.get("resumed", []), info]} if previous else info
        write_json(layout.env, info)
        if run.resumed:
            atomic_write_text(layout.metrics, "".join(json.dumps(r) + "\n" for r in run.state.history))
    D.barrier(env)


def log_start(run: Run) -> None:
    """The run's first log line (where, which rank, device, precision) and, on resume, where it continues."""
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
    logger.info("%s", polyak_line(run.config, run.iters_per_epoch * run.config.epochs))
    if run.resumed:
        logger.info(
            "resumed at epoch %d, batch %d/%d, step %d",
            state.epoch + 1,
            state.batch,
            run.iters_per_epoch,
            state.step,
        )


def polyak_line(config: TrainConfig, steps: int) -> str:
    """What the run's Polyak average will be: its decay, whether warmed up, the steps it spans at
    the end of a run of ``steps`` steps and, without warm-up, the share of the initial weights left."""
    horizon = ema_horizon(steps, config.ema_decay, config.ema_warmup)
    if config.ema_warmup:
        return (
            f"Polyak averaging: EMA decay min({config.ema_decay}, (1 + t) / (10 + t)) at update t "
            f"(warmed up); after this run's {steps} steps it spans about the last {horizon:.0f} steps"
        )
    left = config.ema_decay**steps
    line = (
        f"Polyak averaging: EMA decay {config.ema_decay} (no warm-up), a horizon of {horizon:.0f} steps; "
        f"after this run's {steps} steps {100 * left:.0f}% of the average is the initial weights"
    )
    return line + (" (--ema-warmup or a lower --ema-decay fits a run this short)" if left > 0.05 else "")


def run_epochs(run: Run, stop: StopFlag, log: RunLog, on_step: OnStep | None = None) -> str | None:
    """Train epoch by epoch to ``config.epochs``; the signal's name when one stopped the run.
    ``on_step(step)`` is called after every optimizer step (see :func:`fit`)."""
    config, env, state, saver = run.config, run.env, run.state, run.saver
    progress = Progress(env, config, run.iters_per_epoch, log)

    def after_step(batch_index: int, global_step: int, stats: EpochStats) -> bool:
        state.batch, state.step, state.epoch_stats = batch_index, global_step, stats
        if config.checkpoint_every and global_step % config.checkpoint_every == 0:
            saver.save_last(state.state_dict())
        if on_step is not None:
            on_step(global_step)
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
            return signal_name(stop)
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
            logger.info("%s", run.task.epoch_line(record, config.epochs, run.task.best_metric))
        if D.any_rank(env, bool(stop)):
            return signal_name(stop)
    return None


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
    # The metadata of the weights of epoch ``epochs``: its step, the seed and its best-metric score.
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
        removed = prune_run(layout.root, run.config.keep_checkpoints)
        if removed:
            names = ", ".join(str(p.relative_to(layout.root)) for p in removed)
            logger.info("removed %s (--keep-checkpoints %s)", names, run.config.keep_checkpoints)
        if run.task.finalise is not None:
            run.task.finalise(run.config, run.data, run.state.ema.module, layout.root)
    D.barrier(run.env)
    return _result(run)


def _result(run: Run, interrupted: str | None = None) -> TrainResult:
    # What fit returns, finished or stopped by the signal named ``interrupted``.
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
    # A loader of the (seed, epoch, position)-seeded samples in the sampler's batches.
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


def _apply_runtime(config: TrainConfig, env: D.DistEnv) -> None:
    # The process-wide torch settings of the run: threads, determinism, cudnn autotuning.
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _read_json(path: Path) -> dict[str, Any] | None:
    # A JSON object from ``path``; None when it is missing, damaged or not an object.
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
