"""The training engine: the loss, one SGD step, an epoch of training, validation, and the data order.

Paper section 6 ("Training Methodology") and section 5 (auxiliary classifiers):

* the loss is the main softmax loss plus the two auxiliary losses "with a discount weight (the
  losses of the auxiliary classifiers were weighted by 0.3)": :func:`googlenet_loss`;
* one SGD step (:func:`train_step`) optionally under bf16 autocast and channels-last memory, followed
  by the Polyak (exponential moving) average update of the weights;
* :func:`validate` reports the single-centre-crop top-1 / top-5 error of section 7's first row
  (counted by :mod:`googlenet.evaluation.metrics`, like every other score of the package).

Reproducibility: the data order of an epoch is a pure function of ``(seed, epoch)`` and the random
augmentation of each sample a pure function of ``(seed, epoch, position in the epoch)``
(:class:`EpochBatchSampler`, :class:`SeededSamples`), independent of the number of DataLoader workers
and of where a run was interrupted. A resumed run therefore draws exactly the batches and the crops
the uninterrupted run would have drawn, by starting the epoch's sampler at the saved batch index.

Everything here takes objects (models, optimizers, loaders), never argparse namespaces; the run
directory, checkpoints and configuration live in :mod:`googlenet.training.train`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Sampler, default_collate

from ..errors import GoogLeNetError
from ..evaluation.metrics import topk_correct, topk_for
from ..models.model import GoogLeNet, GoogLeNetOutputs
from .distributed import DistEnv, all_reduce_sum

logger = logging.getLogger("googlenet.train")

AUX_LOSS_WEIGHT = 0.3  # section 5: auxiliary losses "weighted by 0.3"

Precision = Literal["auto", "fp32", "bf16"]
# loss(outputs of the training forward, labels) -> scalar tensor
LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- precision


def bf16_native(device: torch.device) -> bool:
    """True when ``device`` computes bf16 natively (CUDA with bf16, or a CPU with AVX512-BF16 / AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        from ..cpu import native_bf16

        return native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device) -> Literal["fp32", "bf16"]:
    """``"auto"`` -> ``"bf16"`` where the device has native bf16, else ``"fp32"``."""
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16'. Got {precision!r}")
    return precision  # type: ignore[return-value]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` for ``precision == "bf16"``; a no-op context for fp32.

    bf16 keeps fp32's exponent range, so no gradient scaler is needed (unlike fp16).
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device, *, channels_last: bool = True) -> nn.Module:
    """Move ``model`` to ``device`` and, with ``channels_last``, to NHWC memory (faster convolutions)."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


# --------------------------------------------------------------------------- the loss


class TrainForward(nn.Module):
    """``forward(x) -> GoogLeNetOutputs``: GoogLeNet's training forward as a plain ``forward``.

    DistributedDataParallel and ``torch.compile`` hook ``forward``; wrapping ``forward_train`` lets
    them see the auxiliary heads, so every parameter receives a gradient (no unused-parameter error).
    """

    def __init__(self, model: GoogLeNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> GoogLeNetOutputs:
        return self.model.forward_train(x)


def split_outputs(outputs: torch.Tensor | GoogLeNetOutputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(logits, [aux logits...])`` from the main logits alone or a :class:`GoogLeNetOutputs`
    (absent auxiliary heads are dropped)."""
    if isinstance(outputs, torch.Tensor):
        return outputs, []
    if not isinstance(outputs, GoogLeNetOutputs):
        raise TypeError(
            "the training forward must return logits or GoogLeNetOutputs(logits, aux1, aux2) "
            f"(wrap other models to do so). Got {type(outputs).__name__}"
        )
    return outputs.logits, [a for a in (outputs.aux1, outputs.aux2) if a is not None]


def googlenet_loss(
    outputs: Any,
    labels: torch.Tensor,
    *,
    aux_loss_weight: float = AUX_LOSS_WEIGHT,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``CE(main) + aux_loss_weight * (CE(aux1) + CE(aux2))``, each a mean over the batch (section 5).

    Computed in fp32 even under autocast (cross entropy is autocast's fp32 list anyway).
    """
    logits, aux = split_outputs(outputs)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    for a in aux:
        loss = loss + aux_loss_weight * F.cross_entropy(a.float(), labels, label_smoothing=label_smoothing)
    return loss


# --------------------------------------------------------------------------- the step


class NonFiniteLossError(GoogLeNetError):
    """The loss became NaN or infinite; the weights were not updated with it."""


@dataclass
class StepResult:
    loss: torch.Tensor  # detached scalar, fp32
    logits: torch.Tensor  # detached N x C main-classifier logits
    images: int


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    loss_fn: LossFn = googlenet_loss,
    precision: str = "fp32",
    channels_last: bool = True,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    check_finite: bool = True,
) -> StepResult:
    """One full training step: forward (main + auxiliary heads), loss, backward, SGD update, then the
    learning-rate schedule and the Polyak average, if given.

    ``model`` is a :class:`~googlenet.models.model.GoogLeNet` (its ``forward_train`` is used) or a
    module whose ``forward`` returns :class:`GoogLeNetOutputs`: :class:`TrainForward` and its DDP or
    ``torch.compile`` wrapping. ``loss_fn(outputs, labels)`` defaults to section 5's
    :func:`googlenet_loss` (pass a ``functools.partial`` of it for another weight or label
    smoothing). ``images`` may live on the CPU; they are moved to the model's device. ``precision``
    is ``"fp32"`` or ``"bf16"`` (resolve ``"auto"`` first with :func:`resolve_precision`).

    With ``check_finite`` a NaN/inf loss raises :class:`NonFiniteLossError` *before* the update, so the
    weights stay those of the last good step (costs one device sync per step).
    """
    device = next(model.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = images.to(device, non_blocking=True, memory_format=memory_format)
    labels = labels.to(device, non_blocking=True)
    with autocast(device, precision):
        outputs = model.forward_train(images) if isinstance(model, GoogLeNet) else model(images)
    loss = loss_fn(outputs, labels)
    if check_finite and not bool(torch.isfinite(loss)):
        raise NonFiniteLossError(f"non-finite loss ({loss.item()})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if ema is not None:
        ema.update_parameters(_unwrap(model))
    logits, _ = split_outputs(outputs)
    return StepResult(loss=loss.detach(), logits=logits.detach(), images=int(labels.shape[0]))


def _unwrap(model: nn.Module) -> nn.Module:
    """The GoogLeNet inside DDP / torch.compile / :class:`TrainForward` wrappers."""
    while True:
        if isinstance(model, GoogLeNet):
            return model
        inner = (
            getattr(model, "_orig_mod", None)
            or getattr(model, "module", None)
            or getattr(model, "model", None)
        )
        if inner is None:
            return model
        model = inner


# --------------------------------------------------------------------------- data order


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of the augmentation of the sample at ``position`` of ``epoch``'s data order.

    A hash rather than ``seed + position`` so that neighbouring runs and epochs share no streams.
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(dataset index, augmentation seed)`` for one rank; a seeded DistributedSampler.

    Training (``shuffle=True``): the epoch's order is ``torch.randperm`` seeded with ``(seed, epoch)``.
    Global batch ``b`` is ``order[b*G:(b+1)*G]`` with ``G = batch_size * world_size``; rank ``r`` takes
    the ``r``-th slice of ``batch_size``. The incomplete last global batch is dropped, so every rank
    sees equal batch sizes and ``world_size`` ranks of ``B`` see exactly the samples of one process of
    ``B * world_size``. Written by hand (instead of :class:`~torch.utils.data.DistributedSampler`)
    because resuming needs to start at a batch index without iterating the batches before it, and the
    augmentation seeds must follow the sample's position, not the worker that loads it.

    Evaluation (``shuffle=False``): rank ``r`` takes indices ``r, r + W, ...`` in order, nothing is
    dropped or padded (sums of counts are all-reduced).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Got {batch_size}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        if self.shuffle:
            return self.num_samples // self.global_batch_size
        mine = len(range(self.rank, self.num_samples, self.world_size))
        return math.ceil(mine / self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate ``epoch`` from batch ``start_batch`` on (set before creating the loader iterator)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self.shuffle:
            mine = list(range(self.rank, self.num_samples, self.world_size))
            for b in range(self.start_batch, self.batches_per_epoch()):
                yield [(i, 0) for i in mine[b * self.batch_size : (b + 1) * self.batch_size]]
            return
        order = self.order(self.epoch).tolist()
        G, B = self.global_batch_size, self.batch_size
        for b in range(self.start_batch, self.batches_per_epoch()):
            first = b * G + self.rank * B
            yield [(order[p], sample_seed(self.seed, self.epoch, p)) for p in range(first, first + B)]


SKIPPED = "__skipped__"


class SeededSamples(Dataset):
    """A view of ``dataset`` indexed by ``(index, seed)``: the sample's random transform runs with torch's
    RNG seeded to ``seed`` (inside :func:`torch.random.fork_rng`, so the caller's RNG is untouched).

    An unreadable file (the dataset returns None) becomes ``(SKIPPED, path)`` so the batch can report it.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item = self.dataset[index]
        if item is None:
            return (SKIPPED, str(self.dataset.samples[index][0]))
        return item


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor
    skipped: list[str] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.skipped)


def collate_batch(items: list[Any], label_dtype: torch.dtype = torch.long) -> Batch:
    """Stack the readable samples; list the paths of the unreadable ones (skipped, counted, logged).

    The labels become one tensor of ``label_dtype``: class indices by default; a task with other
    targets (MultiBox's boxes) passes ``functools.partial(collate_batch, label_dtype=torch.float32)``.
    """
    good = [it for it in items if not (isinstance(it[0], str) and it[0] == SKIPPED)]
    skipped = [it[1] for it in items if isinstance(it[0], str) and it[0] == SKIPPED]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=label_dtype), skipped)
    images, labels = default_collate(good)
    return Batch(images, torch.as_tensor(labels, dtype=label_dtype), skipped)


# --------------------------------------------------------------------------- epochs


_EPOCH_STATS_KEYS = ("loss_sum", "images", "steps", "skipped_files", "elapsed_s")


@dataclass
class EpochStats:
    """Running sums of one epoch on this rank; saved in step checkpoints so a resumed epoch's metrics
    cover the whole epoch. ``sums`` are the training metric's (:class:`TrainMetric`; classification:
    ``correct1``, the top-1 hits)."""

    loss_sum: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    images: float = 0.0
    steps: int = 0
    skipped_files: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "loss_sum": self.loss_sum,
            **self.sums,
            "images": self.images,
            "steps": float(self.steps),
            "skipped_files": float(self.skipped_files),
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> EpochStats:
        return cls(
            loss_sum=float(d["loss_sum"]),
            sums={k: float(v) for k, v in d.items() if k not in _EPOCH_STATS_KEYS},
            images=float(d["images"]),
            steps=int(d["steps"]),
            skipped_files=int(d["skipped_files"]),
            elapsed_s=float(d["elapsed_s"]),
        )


class TrainMetric:
    """What an epoch's training reports besides its loss: ``step(logits, labels)`` gives sums over
    one batch's images (accumulated per epoch and over the ranks), ``epoch(sums, images)`` the epoch
    record's ``train_*`` fields. The default counts top-1 hits of the main classifier and reports
    ``train_top1_err``; a task without a per-step metric returns ``{}`` from both. ``keys`` names
    the sums ``step`` gives: every rank reduces all of them (0 where it made no step), so the ranks'
    all-reduce always sees the same keys."""

    keys: tuple[str, ...] = ("correct1",)

    def step(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return {"correct1": topk_correct(logits, labels.to(logits.device), [1])[0]}

    def epoch(self, sums: Mapping[str, float], images: float) -> dict[str, float]:
        return {"train_top1_err": 1 - sums["correct1"] / images if images else math.nan}


TOP1 = TrainMetric()


@dataclass(frozen=True)
class StepSettings:
    """How :func:`train_one_epoch` runs each step (see :func:`train_step`) and what it counts."""

    loss_fn: LossFn = googlenet_loss
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = True
    metric: TrainMetric = TOP1


# after_step(batch_index_done, global_step, stats) -> True to stop the epoch early (signal)
AfterStep = Callable[[int, int, EpochStats], bool]


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Batch],
    *,
    epoch: int,
    start_batch: int,
    global_step: int,
    settings: StepSettings,
    env: DistEnv,
    stats: EpochStats | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    after_step: AfterStep | None = None,
    progress: Any = None,
) -> tuple[EpochStats, int, bool]:
    """Train from batch ``start_batch`` of ``epoch`` to its end (or until ``after_step`` says stop).

    Returns ``(stats on this rank, global step, stopped early)``. A non-finite loss raises
    :class:`~googlenet.errors.GoogLeNetError` naming the epoch and step.
    """
    stats = stats or EpochStats()
    model.train()
    batch_index = start_batch
    t0 = time.perf_counter()
    elapsed0 = stats.elapsed_s
    for batch in loader:
        for path in batch.skipped:
            logger.warning("skipped unreadable training file %s", path)
        stats.skipped_files += len(batch.skipped)
        if batch.labels.numel() == 0:
            if env.is_distributed:
                raise GoogLeNetError(
                    f"every file of batch {batch_index} of epoch {epoch} is unreadable "
                    f"({batch.skipped[0]}, ...); remove them (see --strict-data)"
                )
        else:
            try:
                result = train_step(
                    model,
                    optimizer,
                    batch.images,
                    batch.labels,
                    loss_fn=settings.loss_fn,
                    precision=settings.precision,
                    channels_last=settings.channels_last,
                    ema=ema,
                    scheduler=scheduler,
                )
            except NonFiniteLossError as exc:
                raise NonFiniteLossError(
                    f"{exc} at step {global_step + 1} (epoch {epoch + 1}, batch {batch_index}); "
                    "training stopped, the weights were not updated with it"
                ) from None
            n = result.images
            stats.loss_sum += float(result.loss) * n
            for key, value in settings.metric.step(result.logits, batch.labels).items():
                stats.sums[key] = stats.sums.get(key, 0.0) + value
            stats.images += n
            stats.steps += 1
            global_step += 1  # counts optimizer steps; a batch of only unreadable files makes none
        batch_index += 1
        stats.elapsed_s = elapsed0 + time.perf_counter() - t0
        if progress is not None:
            progress(batch_index, global_step, stats)
        if after_step is not None and after_step(batch_index, global_step, stats):
            return stats, global_step, True
    return stats, global_step, False


@dataclass(frozen=True)
class Scores:
    """One validation pass as a task reports it (:attr:`googlenet.training.task.Task.validate`):
    ``values`` become the epoch record's ``val_<name>`` (raw weights) and ``avg_val_<name>``
    (averaged weights), ``images`` its ``val_images``; ``shared`` (from the raw weights' pass) is
    recorded under its own names (classification: ``top_k``)."""

    values: dict[str, float]
    images: int
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationResult:
    """Single-crop scores of the main classifier over the whole validation split."""

    loss: float
    top1_err: float
    topk_err: float
    k: int
    images: int


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: Iterable[Batch],
    *,
    num_classes: int,
    env: DistEnv,
    precision: str = "fp32",
    channels_last: bool = True,
) -> ValidationResult:
    """Single-crop top-1 / top-k error (k: :func:`..evaluation.metrics.topk_for`) and mean CE of the main
    classifier, summed over every rank's share of the split."""
    model.eval()
    device = next(model.parameters()).device
    k = topk_for(num_classes)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    sums = {"loss": 0.0, "c1": 0.0, "ck": 0.0, "n": 0.0}
    for batch in loader:
        for path in batch.skipped:
            logger.warning("skipped unreadable validation file %s", path)
        if batch.labels.numel() == 0:
            continue
        images = batch.images.to(device, non_blocking=True, memory_format=memory_format)
        labels = batch.labels.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(images)
        sums["loss"] += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        c1, ck = topk_correct(logits, labels, [1, k])
        sums["c1"] += c1
        sums["ck"] += ck
        sums["n"] += labels.shape[0]
    sums = all_reduce_sum(env, sums)
    n = sums["n"]
    if n == 0:
        raise GoogLeNetError("the validation split has no readable image")
    return ValidationResult(
        loss=sums["loss"] / n, top1_err=1 - sums["c1"] / n, topk_err=1 - sums["ck"] / n, k=k, images=int(n)
    )
