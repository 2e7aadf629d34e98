"""What a training run trains -- its data, its model, its loss -- as one small object, :class:`Task`.

The loop of :func:`googlenet.training.train.fit` (optimizer, schedule, Polyak averaging, checkpoints,
exact resume, torchrun) is the same whatever is trained; a :class:`Task` supplies the rest. The
default task is the paper's classifier: section 6's image sampling on an image folder (ImageFolder,
ILSVRC2012) or the built-in set, a registered GoogLeNet and section 5's loss. Another task (the
region classifier of the detector, section 5's R-CNN-style use of GoogLeNet) replaces one or more
builders and keeps the loop.

The contract (the builders run in this order, before the run directory is created: bad input
raises there and leaves nothing):

* ``build_data(config) -> TaskData``: the train and val datasets and the class names. A dataset
  returns ``(image tensor, label)`` for an index, or ``None`` for an unreadable sample, and has
  ``samples[index][0]``, the sample's file (named when it is skipped). Its random transforms draw
  from torch's RNG, which the loop seeds per sample (exact resume).
* ``build_model(config, data) -> GoogLeNet``: ``data`` is what ``build_data`` returned (the
  classifier has one output per ``data.classes``; MultiBox starts its confidences from its training
  split); called with torch's RNG seeded to the run's initial-weights seed, so every rank and every
  ensemble member sharing it starts alike.
* ``build_loss(config) -> loss(outputs, labels)``: ``outputs`` is the model's
  :class:`~googlenet.models.model.GoogLeNetOutputs` (``aux1``/``aux2`` None without auxiliary heads).
* ``build_sampler(train_dataset, batch_size, *, seed, rank, world_size) -> EpochBatchSampler``: the
  training batches (default: every sample once per epoch in a seeded order; the detector's
  regions use one with 1/4 positives per batch). Validation always visits every sample in order.

and what a task that is not a classifier changes (MultiBox, :mod:`googlenet.detection.multibox`):

* ``collate(items) -> Batch``: the loader's collate; ``Batch.labels`` is one tensor of any shape
  (default :func:`~.engine.collate_batch`: class indices as ``long``).
* ``train_metric``: a :class:`~.engine.TrainMetric`, the per-step sums (all-reduced, checkpointed)
  and the ``train_*`` fields they give the epoch record (default: top-1 hits, ``train_top1_err``).
* ``validate(model, loader, *, data, env, precision, channels_last) -> Scores``: one pass over the
  val loader (this rank's share; sums all-reduced), run for the raw and the averaged weights; its
  ``values`` become the record's ``val_*`` / ``avg_val_*`` (default :func:`classification_scores`:
  loss, top-1 and top-k error of the single centre crop).
* ``best_metric``: the name in ``validate``'s values whose averaged-weights value picks the best
  epoch (``best.pt``, ``model_best.safetensors``); lower is better (default ``top1_err``).
* ``finalise(config, data, averaged_model, run_dir)``: called on rank 0 once the finished run's
  weights are written (MultiBox writes its ``multibox.json`` there); default none.
* ``epoch_line(record, epochs, best_metric) -> str``: the log line of a finished epoch from its
  ``metrics.jsonl`` record (default :func:`fields_epoch_line`: the record's scores as the task names
  them; the classifier, :data:`CLASSIFICATION`, and the tasks derived from it with
  :func:`dataclasses.replace` say loss and top-1 / top-k errors, :func:`classification_epoch_line`).
* ``settings``: the task's own options (JSON-able), kept in ``RUN/task.yaml`` and every checkpoint;
  a resume with other settings is refused (default none, and no file).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import GoogLeNetError
from ..models.model import GoogLeNet
from .config import TrainConfig, augment_config
from .distributed import DistEnv
from .engine import (
    TOP1,
    Batch,
    EpochBatchSampler,
    LossFn,
    Scores,
    TrainMetric,
    collate_batch,
    googlenet_loss,
    validate,
)
from .loading import untrained_model

logger = logging.getLogger("googlenet.train")


@dataclass(frozen=True)
class TaskData:
    """The two splits of a task; ``source`` names the data in messages (a folder, a file list)."""

    train: Any
    val: Any
    classes: list[str]
    source: str


def image_folders(config: TrainConfig) -> TaskData:
    """The classifier's data: ``config.data`` (a folder or ``builtin``) with section 6's training
    transform and the single centre crop for validation, normalised as the model expects."""
    from ..data.builtin import resolve_data
    from ..data.datasets import build_dataset
    from ..data.transforms import eval_transform, train_transform

    meta = config.model_meta()
    root = resolve_data(config.data, **config.builtin)
    augment = augment_config(config.augment)
    train = build_dataset(
        root, "train", train_transform(meta, config.image_size, augment=augment), layout=config.layout
    )
    val = build_dataset(root, "val", eval_transform(meta, config.image_size), layout=config.layout)
    if list(val.classes) != list(train.classes):
        raise GoogLeNetError(f"{root}: the val split's classes differ from the train split's")
    if config.strict_data and not config.resume:
        check_readable({"train": train, "val": val}, config.workers)
    return TaskData(train, val, list(train.classes), str(root))


def check_readable(datasets: Mapping[str, Any], workers: int) -> None:
    """``--strict-data``: decode every file first and stop naming the first unreadable one."""
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


def registered_model(config: TrainConfig, classes: Sequence[str]) -> GoogLeNet:
    """``config.model`` from the registry with one output per class (:func:`.loading.untrained_model`),
    then ``config.init_from`` / ``config.freeze`` applied (:func:`initialise_from`)."""
    model = untrained_model(config, classes)
    initialise_from(model, config)
    return model


def classifier_model(config: TrainConfig, data: TaskData) -> GoogLeNet:
    """The default ``build_model``: :func:`registered_model` with one output per class of ``data``."""
    return registered_model(config, data.classes)


def initialise_from(model: GoogLeNet, config: TrainConfig) -> None:
    """``config.init_from`` (the backbone, and the classifiers whose shapes fit) and ``config.freeze``
    applied to a freshly built ``model`` (:mod:`.finetune`)."""
    if config.init_from is not None:
        from .finetune import freeze_until, load_pretrained

        report = load_pretrained(model, config.init_from)
        logger.info("%s", report.summary())
        if config.freeze is not None:
            frozen = freeze_until(model, config.freeze)
            logger.info("froze %d tensors, conv1 .. %s", len(frozen), config.freeze)


def recipe_loss(config: TrainConfig) -> LossFn:
    """Section 5's loss with the config's auxiliary weight (0.3) and label smoothing."""
    return partial(
        googlenet_loss, aux_loss_weight=config.aux_loss_weight, label_smoothing=config.label_smoothing
    )


def epoch_sampler(
    dataset: Any, batch_size: int, *, seed: int, rank: int, world_size: int
) -> EpochBatchSampler:
    """Every training sample once per epoch, in an order seeded by (seed, epoch)."""
    return EpochBatchSampler(len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size)


def classification_scores(
    model: Any, loader: Any, *, data: TaskData, env: DistEnv, precision: str, channels_last: bool
) -> Scores:
    """Section 7's single-crop loss, top-1 and top-k error (k from :func:`..evaluation.metrics.topk_for`;
    recorded as ``top5_err`` beside ``top_k``) of the main classifier over the whole val split."""
    r = validate(
        model,
        loader,
        num_classes=len(data.classes),
        env=env,
        precision=precision,
        channels_last=channels_last,
    )
    return Scores({"loss": r.loss, "top1_err": r.top1_err, "top5_err": r.topk_err}, r.images, {"top_k": r.k})


def fields_epoch_line(record: Mapping[str, Any], epochs: int, best_metric: str) -> str:
    """An epoch's log line for any task: its ``train_*``, ``val_*`` and ``avg_val_*`` scores under
    the names the task gives them, the throughput, and which score picks the best epoch."""

    def scores(prefix: str) -> str:
        found = ((k, v) for k, v in record.items() if k.startswith(prefix) and isinstance(v, float))
        return " ".join(f"{k.removeprefix(prefix)} {v:.4f}" for k, v in found)

    return (
        f"epoch {record['epoch']}/{epochs}: train {scores('train_')} | val {scores('val_')} | "
        f"averaged val {scores('avg_val_')} | {record['images_per_s']:.1f} img/s, "
        f"{record['epoch_time_s']:.1f} s, {record['skipped_files']} files skipped "
        f"(best epoch: lowest averaged val {best_metric})"
    )


def classification_epoch_line(record: Mapping[str, Any], epochs: int, best_metric: str) -> str:
    """The classifier's epoch line: training loss and top-1 error, then the top-1 and top-k errors
    of the raw and the averaged (section 6's Polyak) weights on the val split."""
    k = record["top_k"]
    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} top-1 err "
        f"{record['train_top1_err']:.4f} | val top-1 err {record['val_top1_err']:.4f} top-{k} err "
        f"{record['val_top5_err']:.4f} | averaged val top-1 err {record['avg_val_top1_err']:.4f} "
        f"top-{k} err {record['avg_val_top5_err']:.4f} | {record['images_per_s']:.1f} img/s, "
        f"{record['epoch_time_s']:.1f} s, {record['skipped_files']} files skipped"
    )


# validate(model, loader, *, data, env, precision, channels_last) -> Scores
Validate = Callable[..., Scores]
# finalise(config, data, averaged model, run directory), on rank 0 after the weights are written
Finalise = Callable[[TrainConfig, TaskData, GoogLeNet, Path], None]
# epoch_line(metrics.jsonl record, epochs of the run, best_metric) -> the epoch's log line
EpochLine = Callable[[Mapping[str, Any], int, str], str]


@dataclass(frozen=True)
class Task:
    """The builders and hooks :func:`~googlenet.training.train.fit` calls (see the module docstring);
    the defaults train the paper's classifier and log any task's scores by their names
    (:data:`CLASSIFICATION` is the classifier with its own epoch line)."""

    build_data: Callable[[TrainConfig], TaskData] = image_folders
    build_model: Callable[[TrainConfig, TaskData], GoogLeNet] = classifier_model
    build_loss: Callable[[TrainConfig], LossFn] = recipe_loss
    build_sampler: Callable[..., EpochBatchSampler] = epoch_sampler
    collate: Callable[[list[Any]], Batch] = collate_batch
    train_metric: TrainMetric = TOP1
    validate: Validate = classification_scores
    best_metric: str = "top1_err"
    finalise: Finalise | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    epoch_line: EpochLine = fields_epoch_line


CLASSIFICATION = Task(epoch_line=classification_epoch_line)
