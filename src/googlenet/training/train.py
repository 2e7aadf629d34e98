"""Training runs: the configuration, the run directory, checkpoints, exact resume, signals, :func:`fit`.

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

A run directory holds (rank 0 writes; see docs/training.md)::

    config.yaml            the resolved TrainConfig (defaults < YAML < flags)
    env.json               versions, device, CPU, world size, git commit
    metrics.jsonl          one JSON record per epoch
    train.log              the human log
    tensorboard/           SummaryWriter event files
    checkpoints/last.pt    everything needed to continue exactly (every epoch, every N steps)
    checkpoints/best.pt    the checkpoint with the lowest averaged-weights val top-1 error
    model.safetensors      the averaged (Polyak) weights, googlenet.save format
    model_raw.safetensors  the raw weights

Resume (:func:`fit` with ``config.resume``) restores model, averaged model, optimizer, scheduler,
every RNG and the position inside the epoch; the data order and augmentation are pure functions of
``(seed, epoch, position)`` (:mod:`.engine`), so an interrupted and resumed run ends with the
same weights, bit for bit in deterministic mode, as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..atomic import atomic_write
from ..errors import GoogLeNetError
from . import distributed as D
from .engine import (
    AUX_LOSS_WEIGHT,
    EpochBatchSampler,
    EpochStats,
    SeededSamples,
    StepSettings,
    TrainForward,
    collate_batch,
    evaluate,
    prepare_model,
    resolve_precision,
    train_one_epoch,
)

logger = logging.getLogger("googlenet.train")

CHECKPOINT_FORMAT = "googlenet-train-checkpoint"
CHECKPOINT_VERSION = 1

# Keys that change how a run executes but not the weights it produces: they may differ on --resume
# and are left out of the training-config hash.
RUNTIME_KEYS: frozenset[str] = frozenset(
    {"out", "resume", "workers", "log_every", "checkpoint_every", "handle_signals", "debug_hold_at_step"}
)
# What --resume may change: the runtime keys and the number of epochs (train a finished run further).
RESUME_KEYS = RUNTIME_KEYS | {"epochs"}


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the paper's recipe (module docstring)."""

    # data and model
    data: str = "builtin"  # a folder with train/ and val/ (ImageFolder or ILSVRC2012 layout) or "builtin"
    layout: str = "auto"  # "auto" | "imagefolder" | "ilsvrc"
    builtin: dict[str, Any] = field(default_factory=dict)  # make_builtin parameters for data: builtin
    model: str = "googlenet"  # a registered model (googlenet, googlenet_bn, googlenet_tv)
    model_options: dict[str, Any] = field(default_factory=dict)  # create_model overrides, e.g. dropout: 0.0
    image_size: int = 224  # Table 1 input
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig overrides (section 6 switches)
    strict_data: bool = False  # decode every file first; stop naming the first unreadable one
    out: str = "runs/train"
    # schedule
    epochs: int = 60  # not in the paper; BVLC's quick solver: 2.4 M iterations at batch 32 = 60 epochs
    batch_size: int = 32  # per process; BVLC batch 32
    val_batch_size: int | None = None  # default: batch_size
    lr: float = 0.01  # BVLC base_lr at lr_reference_batch
    lr_reference_batch: int = 32
    lr_scale_with_batch: bool = True  # lr x (global batch / lr_reference_batch), the linear scaling rule
    optimizer: str = "sgd"  # section 6: "sgd" (momentum); "adamw" for short CPU runs (docs/training.md)
    momentum: float = 0.9  # section 6 (sgd only)
    weight_decay: float = 2e-4  # BVLC solver weight_decay
    bias_lr_mult: float = 2.0  # BVLC train_val.prototxt: biases lr_mult 2, decay_mult 0
    lr_step_epochs: float = 8.0  # section 6: "every 8 epochs"
    lr_gamma: float = 0.96  # section 6: "decreasing the learning rate by 4%"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    aux_loss_weight: float = AUX_LOSS_WEIGHT  # section 5: 0.3
    label_smoothing: float = 0.0
    ema_decay: float = 0.999  # Polyak (EMA) decay per step; 0.9999 for ImageNet-length runs
    # execution
    seed: int = 0  # data order, augmentation, dropout (and the initial weights unless init_seed)
    init_seed: int | None = None  # initial weights; None: seed (section 7 ensembles share it)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"  # "auto" | "fp32" | "bf16"
    channels_last: bool = True
    compile: bool = False  # torch.compile the training forward
    sync_bn: bool = False  # SyncBatchNorm across ranks (googlenet_bn/_tv under torchrun, CUDA)
    deterministic: bool = False  # torch.use_deterministic_algorithms(True), no cudnn autotuning
    num_threads: int | None = None  # torch.set_num_threads (CPU); None: torch's default
    workers: int = 4  # DataLoader worker processes per rank
    checkpoint_every: int = 0  # also write checkpoints/last.pt every N steps (0: at epoch ends only)
    log_every: int = 50  # steps between plain log lines (non-TTY) and TensorBoard step scalars
    handle_signals: bool = True  # SIGINT/SIGTERM: finish the step, checkpoint, stop
    resume: str | None = None  # run directory to continue (its config.yaml is the config)
    # testing only: inject a NaN loss at this global step / pause after this step until a signal
    debug_nan_at_step: int | None = None
    debug_hold_at_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys and wrongly typed values are errors naming ``source``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise GoogLeNetError(
                f"{source}: unknown training option {unknown[0]!r} (known: {', '.join(known)})"
            )
        defaults = cls()
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = _coerce(key, value, getattr(defaults, key), known[key].type, source)
        config = cls(**values)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        def bad(key: str, why: str) -> GoogLeNetError:
            return GoogLeNetError(f"{source}: {key}={getattr(self, key)!r} {why}")

        for key in ("epochs", "batch_size", "lr_reference_batch", "image_size"):
            if getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        if self.image_size < 64:
            raise bad("image_size", "is too small; GoogLeNet needs at least 64")
        for key in ("lr", "lr_step_epochs", "lr_gamma", "warmup_start_factor"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be > 0")
        for key in (
            "weight_decay",
            "momentum",
            "aux_loss_weight",
            "warmup_epochs",
            "workers",
            "checkpoint_every",
        ):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise bad("ema_decay", "must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        if self.optimizer not in ("sgd", "adamw"):
            raise bad("optimizer", "must be sgd or adamw")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise bad("precision", "must be auto, fp32 or bf16")
        if self.layout not in ("auto", "imagefolder", "ilsvrc"):
            raise bad("layout", "must be auto, imagefolder or ilsvrc")
        if self.log_every < 1:
            raise bad("log_every", "must be >= 1")
        if self.init_seed is not None and self.init_seed < 0:
            raise bad("init_seed", "must be >= 0")
        for key in ("num_threads", "val_batch_size", "debug_nan_at_step", "debug_hold_at_step"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise bad(key, "must be >= 1")

    def training_dict(self) -> dict[str, Any]:
        """The keys that determine the trained weights (everything but :data:`RUNTIME_KEYS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_KEYS}


def _coerce(key: str, value: Any, default: Any, annotation: Any, source: str) -> Any:
    # YAML gives ints where floats are meant (lr: 1) and flags give strings; accept exactly the
    # conversions that cannot lose meaning and name the key otherwise.
    text = str(annotation)
    if value is None:
        if "None" in text:
            return None
        raise GoogLeNetError(f"{source}: {key} must not be empty")
    if "dict" in text:
        if not isinstance(value, Mapping):
            raise GoogLeNetError(f"{source}: {key} must be a mapping. Got {value!r}")
        return dict(value)
    if text.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise GoogLeNetError(f"{source}: {key} must be true or false. Got {value!r}")
    if text.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise GoogLeNetError(f"{source}: {key} must be an integer. Got {value!r}")
    if text.startswith("float"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise GoogLeNetError(f"{source}: {key} must be a number. Got {value!r}")
    if text.startswith("str"):
        if isinstance(value, str | os.PathLike):
            return str(value)
        raise GoogLeNetError(f"{source}: {key} must be a string. Got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; a missing file or bad YAML is an error naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GoogLeNetError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GoogLeNetError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GoogLeNetError(f"{path}: a training config must be a YAML mapping of options")
    return data


def resolve_config(
    config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """Defaults in code < ``config_file`` (YAML) < ``overrides`` (command-line flags).

    ``model_options``, ``augment`` and ``builtin`` mappings merge key by key.
    """
    merged: dict[str, Any] = {}
    source = "config"
    if config_file is not None:
        merged.update(load_yaml(config_file))
        source = str(config_file)
    for key, value in (overrides or {}).items():
        if key in ("model_options", "augment", "builtin") and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return TrainConfig.from_dict(merged, source=source)


def resume_config(run_dir: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` set up to continue it.

    Only :data:`RUNTIME_KEYS` and ``epochs`` (to train a finished run further; the schedule does not
    depend on it) may change.
    """
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise GoogLeNetError(
            f"cannot resume: {config_file} not found (is {run_dir} a training run directory?)"
        )
    saved = load_yaml(config_file)
    changed = sorted(k for k in (overrides or {}) if k not in RESUME_KEYS)
    if changed:
        raise GoogLeNetError(
            f"cannot change {changed[0]!r} when resuming {run_dir}; an exact resume uses the run's "
            f"config.yaml (only {', '.join(sorted(RESUME_KEYS - {'out', 'resume'}))} may change)"
        )
    # The testing pause belongs to the interrupted process, not to the run.
    data = {**saved, "debug_hold_at_step": None, **(overrides or {})}
    data.update(out=str(run_dir), resume=str(run_dir))
    return TrainConfig.from_dict(data, source=str(config_file))


def _resume_hash(config: TrainConfig) -> str:
    # what a checkpoint must agree on to be continued: everything but the epoch count
    blob = json.dumps({**config.training_dict(), "epochs": None}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def config_hash(config: TrainConfig) -> str:
    """SHA-256 of the canonical JSON of :meth:`TrainConfig.training_dict`."""
    blob = json.dumps(config.training_dict(), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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
    model: nn.Module, *, lr: float, weight_decay: float, bias_lr_mult: float
) -> list[dict[str, Any]]:
    """SGD parameter groups as BVLC sets them: weights decay; biases (lr x ``bias_lr_mult``) and
    normalisation scale/shift do not."""
    weights: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    norms: list[nn.Parameter] = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES):
                norms.append(p)
            elif name == "bias":
                biases.append(p)
            else:
                weights.append(p)
    groups = [
        {"params": weights, "lr": lr, "weight_decay": weight_decay},
        {"params": biases, "lr": lr * bias_lr_mult, "weight_decay": 0.0},
        {"params": norms, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with momentum (section 6) or AdamW, on the BVLC parameter groups of :func:`param_groups`.

    AdamW is not the paper's: it is here because SGD needs tens of epochs to leave chance on the
    built-in set (every class is a colour-free shape; see docs/training.md), which a CPU demo cannot
    afford, while AdamW's per-parameter step sizes get through that plateau in a few hundred steps.
    Its ``weight_decay`` is decoupled (multiplied by the learning rate), so it wants values around
    0.05, not SGD's 2e-4.
    """
    groups = param_groups(model, lr=lr, weight_decay=config.weight_decay, bias_lr_mult=config.bias_lr_mult)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)


def base_lr(config: TrainConfig, world_size: int) -> float:
    """``lr`` scaled by global batch / reference batch when ``lr_scale_with_batch``."""
    if not config.lr_scale_with_batch:
        return config.lr
    return config.lr * config.batch_size * world_size / config.lr_reference_batch


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file, fsync, rename: a kill at any moment leaves the old file whole."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint (``weights_only=True``); a missing or damaged file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise GoogLeNetError(f"cannot resume: checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors all mean the same to the user
        reason = " ".join(str(exc).split())[:200]
        raise GoogLeNetError(
            f"cannot resume: checkpoint {path} is corrupt or unreadable ({reason})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise GoogLeNetError(f"cannot resume: {path} is not a googlenet training checkpoint")
    return state


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and primitives (``weights_only``-loadable)."""
    import numpy as np

    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype("int64")),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- run directory


def environment(env: D.DistEnv) -> dict[str, Any]:
    """What produced the run: versions, device, CPU model, world size, git commit."""
    import torchvision

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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
    best_avg_val_top1_err: float | None
    model_path: Path | None  # averaged weights; None when interrupted before the end
    raw_model_path: Path | None
    interrupted: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when finished; 128 + signal number when stopped by a signal (130 SIGINT, 143 SIGTERM)."""
        if self.interrupted is None:
            return 0
        return 128 + int(getattr(signal, self.interrupted))


def _loader(dataset: Any, sampler: EpochBatchSampler, workers: int, device: torch.device) -> Any:
    return torch.utils.data.DataLoader(
        SeededSamples(dataset),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        # Its own generator, so that creating an iterator never draws from the global RNG (which
        # dropout uses): a run resumed mid-epoch then continues the same random stream.
        generator=torch.Generator(),
    )


class _RunLog:
    """train.log handler and TensorBoard writer of rank 0 (no-ops elsewhere)."""

    def __init__(self, run_dir: Path, enabled: bool, purge_step: int | None) -> None:
        self.handler: logging.Handler | None = None
        self.writer: Any = None
        self.previous_level = logger.level
        if not enabled:
            return
        self.handler = logging.FileHandler(run_dir / "train.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("googlenet.train", "googlenet.data"):
            logging.getLogger(name).addHandler(self.handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)

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


def _model_options(config: TrainConfig) -> dict[str, Any]:
    """``model_options`` for create_model; an ``aux`` mapping (e.g. ``{dropout: 0.0}``) updates the
    variant's :class:`~googlenet.models.spec.AuxSpec` field by field."""
    from ..models.registry import model_entry
    from ..models.spec import AuxSpec

    options = dict(config.model_options)
    aux = options.get("aux")
    if isinstance(aux, Mapping):
        base = dataclasses.asdict(model_entry(config.model).config.aux)
        unknown = sorted(set(aux) - set(base))
        if unknown:
            raise GoogLeNetError(f"model_options.aux: unknown key {unknown[0]!r} (known: {', '.join(base)})")
        options["aux"] = AuxSpec(**{**base, **aux})
    return options


def _build_datasets(config: TrainConfig, meta: Any) -> tuple[Any, Any, Path]:
    from ..data.builtin import resolve_data
    from ..data.datasets import build_dataset
    from ..data.transforms import AugmentConfig, eval_transform, train_transform

    root = resolve_data(config.data, **config.builtin)
    try:
        augment = AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in config.augment.items()}
        )
    except TypeError as exc:
        raise GoogLeNetError(f"augment: {exc}") from None
    train_ds = build_dataset(
        root, "train", train_transform(meta, config.image_size, augment=augment), layout=config.layout
    )
    val_ds = build_dataset(root, "val", eval_transform(meta, config.image_size), layout=config.layout)
    if list(val_ds.classes) != list(train_ds.classes):
        raise GoogLeNetError(f"{root}: the val split's classes differ from the train split's")
    return train_ds, val_ds, root


def _strict_check(datasets: Mapping[str, Any], workers: int) -> None:
    from ..data.datasets import scan_unreadable

    for split, ds in datasets.items():
        bad = scan_unreadable(ds, workers=workers)
        if bad:
            path, reason = bad[0]
            raise GoogLeNetError(
                f"unreadable image {path} ({reason}) in the {split} split"
                + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                + " (--strict-data; remove it or train without --strict-data to skip it)"
            )


def fit(config: TrainConfig) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a run; see the module docstring for the run dir.

    Under ``torchrun`` every rank calls this; rank 0 alone writes files. Raises
    :class:`~googlenet.errors.GoogLeNetError` for bad input and for a non-finite loss (the last
    checkpoint is left intact).
    """
    config.validate()
    env = D.init_distributed(config.device)
    # fit() is a run, not an import: it may set torch's thread count and determinism, but puts
    # them back so that a caller (a notebook, a test) is left as it was.
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        with _stop_on_signals(config.handle_signals) as stop:
            return _fit(config, env, stop)
    finally:
        D.teardown(env)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark


def _fit(config: TrainConfig, env: D.DistEnv, stop: StopFlag) -> TrainResult:
    _apply_runtime(config, env)
    if not config.resume and config.data != "builtin" and Path(config.data).expanduser().is_dir():
        # config.yaml must name the data wherever --resume is run from
        config = dataclasses.replace(config, data=str(Path(config.data).expanduser().resolve()))
    run_dir = Path(config.out)
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    checkpoint: dict[str, Any] | None = None
    if config.resume:
        checkpoint = load_checkpoint(last_path)
        if checkpoint["resume_hash"] != _resume_hash(config):
            raise GoogLeNetError(f"cannot resume: {last_path} was written by a different training config")
        if checkpoint["world_size"] != env.world_size:
            raise GoogLeNetError(
                f"cannot resume {run_dir} with {env.world_size} process(es): it was trained with "
                f"{checkpoint['world_size']} (the data order and batch depend on it)"
            )
    elif last_path.exists():
        raise GoogLeNetError(
            f"{run_dir} already holds a training run ({last_path}); continue it with "
            f"`googlenet train --resume {run_dir}` or choose another --out"
        )
    if env.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        # on resume too: --epochs may have changed
        _write_text(run_dir / "config.yaml", yaml.safe_dump(_saved_config(config), sort_keys=False))
        info = environment(env)
        if config.resume:  # keep what produced the first part of the run; list each resume
            previous = _read_json(run_dir / "env.json")
            info = {**previous, "resumed": [*previous.get("resumed", []), info]} if previous else info
        _write_text(run_dir / "env.json", json.dumps(info, indent=1) + "\n")
    D.barrier(env)
    start_step = int(checkpoint["step"]) if checkpoint else 0
    runlog = _RunLog(run_dir, env.is_main, purge_step=start_step if checkpoint else None)
    try:
        return _train(config, env, stop, run_dir, checkpoint, runlog)
    finally:
        runlog.close()


def _saved_config(config: TrainConfig) -> dict[str, Any]:
    d = config.to_dict()
    d.pop("resume")
    return d


def _train(
    config: TrainConfig,
    env: D.DistEnv,
    stop: StopFlag,
    run_dir: Path,
    checkpoint: dict[str, Any] | None,
    runlog: _RunLog,
) -> TrainResult:
    from ..models.model import GoogLeNet
    from ..models.registry import create_model

    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    device = env.device
    precision = resolve_precision(config.precision, device)
    logger.info(
        "%s %s: rank %d/%d on %s, precision %s, channels_last %s",
        "resuming" if checkpoint else "training",
        run_dir,
        env.rank,
        env.world_size,
        device,
        precision,
        config.channels_last,
    )

    # ---- data (class names first: the model needs their count; the transforms need its meta)
    model_options = _model_options(config)
    probe_meta = create_model(config.model, num_classes=1, aux_logits=False, **model_options).meta
    train_ds, val_ds, root = _build_datasets(config, probe_meta)
    classes = list(train_ds.classes)
    if config.strict_data and not checkpoint:
        _strict_check({"train": train_ds, "val": val_ds}, config.workers)

    # ---- model, averaged model, optimizer, schedule
    # the same initial weights on every rank and every run (and every ensemble member sharing init_seed)
    torch.manual_seed(config.seed if config.init_seed is None else config.init_seed)
    model: GoogLeNet = create_model(
        config.model, num_classes=len(classes), class_names=classes, **model_options
    )
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
    lr = base_lr(config, env.world_size)
    optimizer = build_optimizer(model, config, lr)
    train_sampler = EpochBatchSampler(
        len(train_ds), config.batch_size, seed=config.seed, rank=env.rank, world_size=env.world_size
    )
    val_sampler = EpochBatchSampler(
        len(val_ds),
        config.val_batch_size or config.batch_size,
        rank=env.rank,
        world_size=env.world_size,
        shuffle=False,
    )
    iters_per_epoch = train_sampler.batches_per_epoch()
    if iters_per_epoch == 0:
        raise GoogLeNetError(
            f"{root}/train has {len(train_ds)} images, fewer than one global batch of "
            f"{train_sampler.global_batch_size}; lower --batch-size"
        )
    scheduler = build_scheduler(optimizer, config, iters_per_epoch)

    epoch, start_batch, step = 0, 0, 0
    history: list[dict[str, Any]] = []
    best: float | None = None
    stats: EpochStats | None = None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        ema.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        epoch, start_batch, step = int(checkpoint["epoch"]), int(checkpoint["batch"]), int(checkpoint["step"])
        history = list(checkpoint["history"])
        best = checkpoint["best_avg_val_top1_err"]
        stats = EpochStats.from_dict(checkpoint["epoch_stats"][env.rank])
        restore_rng(checkpoint["rng"][env.rank], device)
        if env.is_main:  # metrics.jsonl = the checkpoint's history (drops records of lost work)
            _write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        logger.info(
            "resumed at epoch %d, batch %d/%d, step %d", epoch + 1, start_batch, iters_per_epoch, step
        )
    else:
        # Dropout masks differ per rank, as they would on different machines.
        torch.manual_seed(config.seed + 1 + env.rank)
        random.seed(config.seed + env.rank)

    # ---- the forward DDP / compile see
    forward: nn.Module = TrainForward(model)
    if env.is_distributed:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]

    settings = StepSettings(
        aux_loss_weight=config.aux_loss_weight,
        label_smoothing=config.label_smoothing,
        precision=precision,
        channels_last=config.channels_last,
        poison_loss_at_step=config.debug_nan_at_step,
    )
    train_loader = _loader(train_ds, train_sampler, config.workers, device)
    val_loader = _loader(val_ds, val_sampler, config.workers, device)
    config_sha = config_hash(config)

    def checkpoint_state(next_epoch: int, next_batch: int, epoch_stats: EpochStats) -> dict[str, Any] | None:
        rngs = D.all_gather_objects(env, capture_rng(device))
        all_stats = D.all_gather_objects(env, epoch_stats.to_dict())
        if not env.is_main:
            return None
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": _saved_config(config),
            "config_hash": config_sha,
            "resume_hash": _resume_hash(config),
            "world_size": env.world_size,
            "class_names": classes,
            "epoch": next_epoch,
            "batch": next_batch,
            "step": step_box[0],
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rngs,
            "epoch_stats": all_stats,
            "history": history,
            "best_avg_val_top1_err": best,
        }

    def write_checkpoint(next_epoch: int, next_batch: int, epoch_stats: EpochStats) -> None:
        state = checkpoint_state(next_epoch, next_batch, epoch_stats)
        if state is not None:
            save_checkpoint(last_path, state)

    step_box = [step]
    progress = _Progress(env, config, iters_per_epoch, runlog)

    def after_step(batch_index: int, global_step: int, epoch_stats: EpochStats) -> bool:
        step_box[0] = global_step
        if config.checkpoint_every and global_step % config.checkpoint_every == 0:
            write_checkpoint(epoch, batch_index, epoch_stats)
        if config.debug_hold_at_step is not None and global_step == config.debug_hold_at_step:
            logger.warning("debug_hold_at_step: holding after step %d (testing option)", global_step)
            deadline = time.monotonic() + 120
            while not stop and time.monotonic() < deadline:
                time.sleep(0.02)
        if D.any_rank(env, bool(stop)):
            write_checkpoint(epoch, batch_index, epoch_stats)
            return True
        return False

    interrupted: str | None = None
    while epoch < config.epochs:
        train_sampler.set_epoch(epoch, start_batch)
        progress.start(epoch, start_batch, stats.images if stats else 0.0)
        try:
            stats, step, stopped = train_one_epoch(
                forward,
                optimizer,
                train_loader,
                epoch=epoch,
                start_batch=start_batch,
                global_step=step,
                settings=settings,
                env=env,
                stats=stats,
                scheduler=scheduler,
                ema=ema,
                after_step=after_step,
                progress=progress.update,
            )
        finally:
            progress.close()
        step_box[0] = step
        if stopped:
            interrupted = signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"
            break
        record = _epoch_record(config, env, epoch, step, optimizer, stats, model, ema, val_loader, precision)
        history.append(record)
        improved = best is None or record["avg_val_top1_err"] < best
        if improved:
            best = record["avg_val_top1_err"]
        write_checkpoint(epoch + 1, 0, EpochStats())
        if env.is_main:
            if improved:
                atomic_write(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            runlog.scalars({f"epoch/{k}": v for k, v in record.items() if k not in ("epoch", "step")}, step)
            logger.info(
                "epoch %d/%d: train loss %.4f top-1 err %.4f | val top-1 err %.4f top-%d err %.4f | "
                "averaged val top-1 err %.4f top-%d err %.4f | %.1f img/s, %.1f s, %d files skipped",
                record["epoch"],
                config.epochs,
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
        epoch, start_batch, stats = epoch + 1, 0, None
        if D.any_rank(env, bool(stop)):
            interrupted = signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"
            break

    if interrupted and env.is_main:
        logger.warning(
            "stopped by %s after step %d; checkpoint %s written. Continue with: googlenet train --resume %s",
            interrupted,
            step,
            last_path,
            run_dir,
        )
    if interrupted:
        return TrainResult(run_dir, epoch, step, history, best, None, None, interrupted)

    model_path = run_dir / "model.safetensors"
    raw_path = run_dir / "model_raw.safetensors"
    if env.is_main:
        from ..weights.store import save_weights

        extra = {"epochs": str(config.epochs), "steps": str(step), "seed": str(config.seed)}
        averaged: GoogLeNet = ema.module  # type: ignore[assignment]
        averaged.meta.source = f"googlenet train {run_dir} (Polyak-averaged weights, EMA {config.ema_decay})"
        model.meta.source = f"googlenet train {run_dir} (raw weights)"
        # The size the weights were trained at is the size to run them at: predict, evaluate, export
        # and Predictor default to meta.input_size when no config.yaml is beside the file.
        for m in (averaged, model):
            m.meta.input_size = (3, config.image_size, config.image_size)
        if history:
            extra["avg_val_top1_err"] = f"{history[-1]['avg_val_top1_err']:.6f}"
        save_weights(averaged, model_path, training_config_hash=config_sha, extra=extra)
        save_weights(model, raw_path, training_config_hash=config_sha, extra=extra)
        logger.info("wrote %s (averaged weights) and %s", model_path, raw_path)
    D.barrier(env)
    return TrainResult(run_dir, epoch, step, history, best, model_path, raw_path)


def _epoch_record(
    config: TrainConfig,
    env: D.DistEnv,
    epoch: int,
    step: int,
    optimizer: torch.optim.Optimizer,
    stats: EpochStats,
    model: nn.Module,
    ema: torch.optim.swa_utils.AveragedModel,
    val_loader: Any,
    precision: str,
) -> dict[str, Any]:
    sums = D.all_reduce_sum(
        env,
        {
            "loss_sum": stats.loss_sum,
            "correct1": stats.correct1,
            "images": stats.images,
            "skipped": stats.skipped_files,
            "elapsed": stats.elapsed_s,
        },
    )
    num_classes = int(model.num_classes)  # type: ignore[arg-type]
    raw = evaluate(
        model,
        val_loader,
        num_classes=num_classes,
        env=env,
        precision=precision,
        channels_last=config.channels_last,
    )
    avg = evaluate(
        ema.module,
        val_loader,
        num_classes=num_classes,
        env=env,
        precision=precision,
        channels_last=config.channels_last,
    )
    images = sums["images"]
    elapsed = sums["elapsed"] / env.world_size
    return {
        "epoch": epoch + 1,
        "step": step,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": sums["loss_sum"] / images if images else math.nan,
        "train_top1_err": 1 - sums["correct1"] / images if images else math.nan,
        "val_loss": raw.loss,
        "val_top1_err": raw.top1_err,
        "val_top5_err": raw.topk_err,
        "avg_val_loss": avg.loss,
        "avg_val_top1_err": avg.top1_err,
        "avg_val_top5_err": avg.topk_err,
        "top_k": raw.k,
        "train_images": int(images),
        "val_images": raw.images,
        "images_per_s": images / elapsed if elapsed > 0 else 0.0,
        "epoch_time_s": elapsed,
        "skipped_files": int(sums["skipped"]),
    }


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
