"""Training MultiBox with the classifier's loop: its options, its Task, and resume.

GoogLeNet's detector takes 200 MultiBox proposals per image (paper section 8; Erhan et al. 2014,
arXiv:1312.2249). :func:`multibox_task` trains the network of :mod:`.network` with the shared loop
(:func:`googlenet.training.train.fit`: optimizer, schedule, Polyak averaging, checkpoints, exact
resume, torchrun, TensorBoard). Its labels are each image's targets against the priors
(:class:`.data.MultiBoxSamples`), its validation the val loss and the coverage of the val boxes by
the ``top`` proposals, and the finished run's folder is a MultiBox model (:func:`.store.load_multibox`).
:class:`MultiBoxOptions` are the task's own settings, kept with the run; :func:`resume_options`
refuses a resume that changes them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...data.config import resolve_data_config
from ...errors import GoogLeNetError
from ...models.model import GoogLeNet
from ...runs import MULTIBOX_FILE, RunLayout, read_yaml
from ...training.config import TrainConfig
from ...training.distributed import DistEnv, all_reduce_sum
from ...training.engine import Scores, TrainMetric, autocast, collate_batch
from ...training.engine import split_outputs as main_output
from ...training.loading import model_options
from ...training.task import Task, TaskData, initialise_from
from ..boxes import denormalise_boxes
from ..proposal_recall import covered_boxes
from .data import MultiBoxSamples, positive_share
from .loss import DEFAULT_ALPHA, LABEL_INDEX, label_loss
from .model import DEFAULT_NMS_IOU, MultiBox
from .network import DEFAULT_IMAGE_SIZE, HEADS, MultiBoxHead, create_multibox_network, grid_size
from .priors import DEFAULT_NUM_PRIORS, fit_grid_priors, fit_priors, training_boxes
from .store import save_multibox

if TYPE_CHECKING:
    from ...training.train import TrainResult

__all__ = [
    "COVERAGE_COUNTS",
    "COVERAGE_IOU",
    "MULTIBOX_RECIPE",
    "MultiBoxLossParts",
    "MultiBoxOptions",
    "check_new_run",
    "multibox_task",
    "resume_options",
]

# The recipe train-multibox starts from, where it differs from the classifier's (docs/detection.md):
# Adam rather than section 6's SGD -- on the paper network (0-255 inputs, no BatchNorm) SGD at
# 0.01-0.05 diverged within a few steps on small sets here; Erhan et al. give no optimizer settings.
# AdamW without weight decay is Adam; 3e-4 at batch 16 (scaled with the global batch like the
# classifier's rate), every parameter at the same rate: on the built-in detection set the grid head
# reached 61% coverage at 100 after 4,000 images at 3e-4, 50% at 1e-4 (docs/detection.md).
MULTIBOX_RECIPE: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 3e-4,
    "lr_reference_batch": 16,
    "weight_decay": 0.0,
    "bias_lr_mult": 1.0,
    "batch_size": 16,
    "epochs": 10,
    "image_size": DEFAULT_IMAGE_SIZE,
    # Polyak averaging warmed up: the average of a run of a few hundred steps is then not mostly
    # its initial weights (training.optim.ema_decay_at).
    "ema_warmup": True,
}
COVERAGE_IOU = 0.5  # a box counts as found by a proposal with IoU >= 0.5 (R-CNN, section 8)
# Validation reports the coverage by the best 10 and 100 proposals as well as by ``top``, and by the
# priors alone (every prior a proposal): what the network adds to its priors.
COVERAGE_COUNTS = (10, 100)


@dataclass(frozen=True)
class MultiBoxOptions:
    """MultiBox's own settings beside the recipe (:class:`~googlenet.training.config.TrainConfig`).

    They are the task's ``settings``: kept in ``RUN/task.yaml`` and every checkpoint, and a resume
    must keep them (:func:`resume_options`). ``head``, ``head_tap``, ``priors_per_cell`` and
    ``head_hidden`` make the :class:`.network.MultiBoxHead`; ``num_priors`` is the ``pool`` head's
    ``K`` (the ``grid`` head has cells x ``priors_per_cell``). A ``task.yaml`` without ``head`` is a
    run of the ``pool`` head, the only one before heads had names. ``epoch_images``: samples per
    epoch, drawn at random from the training split (:class:`.data.MultiBoxSamples`); None: one pass.
    """

    num_priors: int = DEFAULT_NUM_PRIORS
    alpha: float = DEFAULT_ALPHA
    nms_iou: float = DEFAULT_NMS_IOU
    top: int = 200  # section 8: the proposals kept per image, for the validation coverage
    flip: bool = True
    train_split: str = "train"
    val_split: str = "val"
    head: str = MultiBoxHead.kind
    head_tap: str = MultiBoxHead.tap
    priors_per_cell: int = MultiBoxHead.per_cell
    head_hidden: int = MultiBoxHead.hidden
    epoch_images: int | None = None

    def head_spec(self) -> MultiBoxHead:
        return MultiBoxHead(self.head, self.head_tap, self.priors_per_cell, self.head_hidden)

    def validate(self) -> None:
        """A one-line error naming the first bad setting by its flag."""

        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        def number(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        for name in ("num_priors", "top", "priors_per_cell", "head_hidden", "epoch_images"):
            value = getattr(self, name)
            if name == "epoch_images" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoogLeNetError(f"{flag(name)} must be a positive integer. Got {value!r}")
        if self.head not in HEADS:
            raise GoogLeNetError(f"--head must be one of {', '.join(HEADS)}. Got {self.head!r}")
        if not (number(self.alpha) and self.alpha >= 0):
            raise GoogLeNetError(f"--alpha must be a non-negative number. Got {self.alpha!r}")
        if not (number(self.nms_iou) and 0 < self.nms_iou <= 1):
            raise GoogLeNetError(f"--nms-iou must be in (0, 1]. Got {self.nms_iou!r}")
        if not isinstance(self.flip, bool):
            raise GoogLeNetError(f"flip must be true or false. Got {self.flip!r}")
        for name in ("train_split", "val_split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise GoogLeNetError(f"{flag(name)} must name a split. Got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> MultiBoxOptions:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise GoogLeNetError(
                f"{source}: unknown MultiBox setting {unknown[0]!r} (known: {', '.join(known)})"
            )
        options = cls(**{"head": "pool", **data})  # no head: a run from before heads had names
        options.validate()
        return options


def resume_options(run_dir: str | Path, given: Mapping[str, Any]) -> MultiBoxOptions:
    """The MultiBox settings of the run in ``run_dir`` (its ``task.yaml``); a ``given`` setting
    (None: not given) that differs from the run's is a one-line error: a resume keeps them all."""
    path = RunLayout(run_dir).task_settings
    if not path.is_file():
        raise GoogLeNetError(f"cannot resume: {path} not found (is {run_dir} a train-multibox run?)")
    options = MultiBoxOptions.from_dict(read_yaml(path), source=str(path))
    saved = options.to_dict()
    for key, value in given.items():
        if value is not None and saved.get(key) != value:
            raise GoogLeNetError(
                f"cannot change {key!r} when resuming {run_dir}: it was trained with "
                f"{key}={saved.get(key)!r} ({path}); leave it out to keep it"
            )
    return options


def check_new_run(out: str | Path) -> None:
    """``out`` holds no MultiBox run yet (else: continue it with ``--resume``, or choose another)."""
    layout = RunLayout(out)
    if layout.last_checkpoint.is_file() or (layout.root / MULTIBOX_FILE).is_file():
        raise GoogLeNetError(
            f"--out {layout.root} already holds a MultiBox run: pass --resume to continue it or another --out"
        )


def train_multibox(
    config: TrainConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    options: MultiBoxOptions | Mapping[str, Any] | None = None,
    resume: str | Path | None = None,
    **fields: Any,
) -> TrainResult:
    """Train a MultiBox model, or continue one (``googlenet train-multibox``'s job).

    A new run: the recipe is ``config`` (a :class:`~googlenet.training.config.TrainConfig`, a mapping
    of its fields, or a YAML file) over :data:`MULTIBOX_RECIPE`'s defaults, with ``fields`` on top
    (``data``: a detection folder or ``builtin``; ``out``: the run directory, which must not hold a
    MultiBox run; ``init_from``: the classification weights of the backbone; ``epochs``, ...);
    ``options`` MultiBox's own settings (:class:`MultiBoxOptions` or its fields; ``num_priors`` is
    the pool head's and refused with the grid head). ``resume``: a run directory to continue exactly
    where it stopped, with its saved recipe and options (``fields`` may grow ``epochs`` or change
    runtime settings; an option given must be the saved one).

    Returns :func:`googlenet.fit`'s :class:`~googlenet.training.train.TrainResult` (``interrupted``
    when a signal stopped it, its checkpoint written); the run directory is the MultiBox model
    folder that :func:`.store.load_multibox` and the ``multibox`` proposals read. Bad settings are
    a one-line :class:`~googlenet.errors.GoogLeNetError` before any work.
    """
    from ...runs import resolve_checkpoint
    from ...training.config import resolve_config, resume_config
    from ...training.train import fit

    given = options.to_dict() if isinstance(options, MultiBoxOptions) else dict(options or {})
    known = {f.name for f in dataclasses.fields(MultiBoxOptions)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise GoogLeNetError(f"unknown MultiBox setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if resume is not None:
        if config is not None:
            raise GoogLeNetError("--resume takes the run's own config.yaml; leave out --config")
        recipe = resume_config(resume, {**fields, "out": str(resume)})
        chosen = resume_options(resume, given)
    else:
        if isinstance(config, TrainConfig):
            config = config.to_dict()
        if isinstance(config, Mapping):
            recipe = resolve_config(None, {**config, **fields}, defaults=MULTIBOX_RECIPE)
        else:
            recipe = resolve_config(config, fields, defaults=MULTIBOX_RECIPE)
        check_new_run(recipe.out)
        chosen = MultiBoxOptions(**{k: v for k, v in given.items() if v is not None})
        if chosen.head == "grid" and given.get("num_priors") is not None:
            raise GoogLeNetError(
                "--num-priors is the pool head's K; the grid head has cells x --priors-per-cell priors"
            )
    if recipe.init_from is not None:
        resolve_checkpoint(recipe.init_from)  # a missing or wrong path, before the priors are fitted
    return fit(recipe, task=multibox_task(chosen))


class MultiBoxLossParts(TrainMetric):
    """The training metric: ``F_conf`` and ``F_match`` of each step, the record's ``train_conf`` and
    ``train_match`` (the epoch's means over its images)."""

    keys = ("conf", "match")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def step(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            loss = label_loss(logits, labels.to(logits.device), alpha=self.alpha)
        n = labels.shape[0]
        return {"conf": float(loss.conf) * n, "match": float(loss.match) * n}

    def epoch(self, sums: Mapping[str, float], images: float) -> dict[str, float]:
        return {f"train_{k}": sums.get(k, 0.0) / images if images else math.nan for k in ("conf", "match")}


def multibox_task(options: MultiBoxOptions | None = None) -> Task:
    """MultiBox as a :class:`~googlenet.training.task.Task` of :func:`googlenet.training.train.fit`.

    * data: ``config.data``'s ``train_split`` and ``val_split`` (a detection dataset or
      ``builtin``), each image warped to ``config.image_size`` with its targets against the priors
      (:class:`.data.MultiBoxSamples`, flipped in training unless ``flip`` is off; ``epoch_images``
      random draws per epoch when given). The priors are fitted by k-means on the training boxes
      with ``config.seed`` (:func:`.priors.fit_grid_priors` for the grid head, on the cells of its
      tap at ``config.image_size``; :func:`.priors.fit_priors` for the pool head): every rank and a
      resumed run fit the same ones;
    * model: :func:`.network.create_multibox_network` of ``config.model`` and the options' head
      (confidences starting at the training split's :func:`.data.positive_share`), then
      ``config.init_from`` / ``freeze`` as for the classifier (the backbone of a classifier of the
      same variant; the new head stays);
    * loss: ``F_conf + alpha F_match`` (:func:`.loss.label_loss`); the training metric its two parts;
    * validation: the val loss, ``coverage_at_<n>`` for the best 10, 100 and ``top`` proposals and
      ``prior_coverage`` (the priors alone); the best epoch has the lowest averaged val loss;
    * finalise: ``multibox.json`` beside the run's ``model.safetensors`` (the Polyak-averaged
      network), so the run directory is what :func:`.store.load_multibox` reads.
    """
    options = options or MultiBoxOptions()
    options.validate()
    return Task(
        build_data=partial(_build_data, options=options),
        build_model=partial(_build_model, options=options),
        build_loss=lambda config: partial(_training_loss, alpha=options.alpha),
        collate=partial(collate_batch, label_dtype=torch.float32),
        train_metric=MultiBoxLossParts(options.alpha),
        validate=partial(_validate, options=options),
        best_metric="loss",
        finalise=partial(_finalise, options=options),
        settings=options.to_dict(),
    )


def _open_split(config: TrainConfig, split: str) -> Any:
    from ..datasets import open_detection_dataset

    return open_detection_dataset(config.data, split, strict=config.strict_data)


def _build_data(config: TrainConfig, *, options: MultiBoxOptions) -> TaskData:
    from ..datasets import drop_unreadable

    # Images that cannot be decoded are named once here and left out (--strict-data: an error).
    train_set, val_set = (
        drop_unreadable(_open_split(config, split), strict=config.strict_data, workers=config.workers)
        for split in (options.train_split, options.val_split)
    )
    boxes = training_boxes(train_set.targets())
    if options.head == "grid":
        grid = grid_size(config.model, options.head_tap, config.image_size, **model_options(config))
        priors = fit_grid_priors(boxes, grid, options.priors_per_cell, seed=config.seed)
    else:
        priors = fit_priors(boxes, options.num_priors, seed=config.seed)
    data = resolve_data_config(config.model_meta(), image_size=config.image_size)
    return TaskData(
        train=MultiBoxSamples(train_set, priors, data, flip=options.flip, epoch_images=options.epoch_images),
        val=MultiBoxSamples(val_set, priors, data, flip=False),
        classes=[],  # class-agnostic
        source=f"{train_set.root} ({options.train_split})",
    )


def _build_model(config: TrainConfig, data: TaskData, *, options: MultiBoxOptions) -> GoogLeNet:
    # The confidences start at the training split's share of matched priors (its readable images).
    num_priors = options.num_priors
    if options.head == "grid":
        cells = grid_size(config.model, options.head_tap, config.image_size, **model_options(config)) ** 2
        num_priors = cells * options.priors_per_cell
    share = positive_share(data.train.dataset.targets(), num_priors)
    net = create_multibox_network(
        num_priors,
        model=config.model,
        head=options.head_spec(),
        confidence_start=share,
        **model_options(config),
    )
    net.meta.input_size = (3, config.image_size, config.image_size)
    initialise_from(net, config)
    return net


def _training_loss(outputs: Any, labels: torch.Tensor, *, alpha: float) -> torch.Tensor:
    logits, _ = main_output(outputs)  # the network has no auxiliary heads
    return label_loss(logits, labels, alpha=alpha).total


@torch.no_grad()
def _validate(
    model: Any,
    loader: Iterable[Any],
    *,
    data: TaskData,
    env: DistEnv,
    precision: str,
    channels_last: bool,
    options: MultiBoxOptions,
) -> Scores:
    """This rank's share of the val split: its loss (and parts) and how many of its boxes the
    ``top`` proposals cover (IoU >= 0.5, as ``googlenet proposals`` would give them); sums over ranks."""
    samples: MultiBoxSamples = data.val
    model.eval()
    device = next(model.parameters()).device
    multibox = MultiBox(
        model, samples.priors, samples.data.image_size, options.alpha, options.nms_iou, options.head_spec()
    )
    counts = sorted({*COVERAGE_COUNTS, options.top})
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    sums = dict.fromkeys(("loss", "conf", "match", "images", "boxes", "covered_priors"), 0.0)
    sums.update({f"covered_{n}": 0.0 for n in counts})
    for batch in loader:
        if batch.labels.numel() == 0:
            continue
        images = batch.images.to(device, non_blocking=True, memory_format=memory_format)
        labels = batch.labels.to(device, non_blocking=True)
        with autocast(device, precision):
            outputs = model(images)
        n = labels.shape[0]
        loss = label_loss(outputs, labels, alpha=options.alpha)
        for key, value in zip(("loss", "conf", "match"), loss, strict=True):
            sums[key] += float(value) * n
        sums["images"] += n
        indices = labels[:, 0, LABEL_INDEX].round().long().tolist()
        for (boxes01, scores), index in zip(multibox.decode(outputs), indices, strict=True):
            target = samples.dataset.target(index)
            found = multibox.select(boxes01, scores, target.width, target.height, max(counts))
            sums["boxes"] += len(target.boxes)
            for count in counts:
                sums[f"covered_{count}"] += covered_boxes(target.boxes, found[:count], COVERAGE_IOU)
            priors = denormalise_boxes(samples.priors, target.width, target.height)
            sums["covered_priors"] += covered_boxes(target.boxes, priors, COVERAGE_IOU)
    sums = all_reduce_sum(env, sums)
    n = sums["images"]
    if n == 0:
        raise GoogLeNetError("the validation split has no image")
    values = {k: sums[k] / n for k in ("loss", "conf", "match")}
    for key in [f"{n}" for n in counts] + ["priors"]:
        name = "prior_coverage" if key == "priors" else f"coverage_at_{key}"
        values[name] = sums[f"covered_{key}"] / sums["boxes"] if sums["boxes"] else math.nan
    return Scores(values, int(n))


def _finalise(
    config: TrainConfig, data: TaskData, averaged: GoogLeNet, run_dir: Path, *, options: MultiBoxOptions
) -> None:
    """The run directory becomes a MultiBox model: ``multibox.json`` for its averaged weights."""
    multibox = MultiBox(
        averaged, data.train.priors, config.image_size, options.alpha, options.nms_iou, options.head_spec()
    )
    trained = {**config.training_dict(), **options.to_dict()}
    unreadable = [path for samples in (data.train, data.val) for path, _ in samples.dataset.unreadable]
    if unreadable:
        trained["unreadable_images"] = unreadable
    save_multibox(multibox, run_dir, write_weights=False, trained=trained, epochs_done=config.epochs)
