"""Training the detector (paper section 8, R-CNN style) with the classifier's own loop.

The detector's members are GoogLeNets with ``N + 1`` outputs (output 0 the background), trained on
warped proposals exactly as :func:`googlenet.fit` trains the classifier: same optimizer, schedule,
Polyak averaging, auxiliary losses (section 5), checkpoints, exact resume and torchrun. Only the
:class:`~googlenet.training.task.Task` differs (:func:`region_task`): its data are the labelled
regions of :mod:`.regions`, its batches hold 1/4 positives (:class:`~.regions.RegionBatchSampler`),
and its model usually starts from a classification model (``init_from``), as R-CNN fine-tunes its
ImageNet network. The members of a detector are an ensemble (:func:`googlenet.training.ensemble.
train_ensemble`): they differ in seed (data order and background sampling), as the paper's 6.
:func:`train_detector` trains (or continues) them and writes the detector directory's manifest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cost import CostEstimate, Throughput
from ..errors import GoogLeNetError
from ..training.config import TrainConfig
from ..training.task import CLASSIFICATION, Task, TaskData
from .detector import PAPER_DETECTOR_MEMBERS, DetectorManifest, write_manifest
from .proposals import ProposalMethod, cached_proposals, proposal_method
from .regions import POSITIVE_FRACTION, RegionBatchSampler, RegionDataset, RegionSet, build_region_set

BACKGROUND_NAME = "__background__"
DEFAULT_PROPOSALS = "selective-search-2x"  # section 8: Selective Search with the superpixel size x2
logger = logging.getLogger("googlenet.detection")

VAL_BACKGROUNDS_PER_POSITIVE = 3  # validation keeps the training mix: 1 positive to 3 background
# Where train-detector's recipe differs from the classifier's (docs/detection.md, "Defaults"): the
# Polyak average warmed up (a 1-epoch detector trains a few hundred steps, over which a fixed 0.999
# keeps most of the initial weights), and a finished member keeps its weights only (train-detector
# cannot train a finished member further; its last.pt stays while it trains, for an exact resume).
DETECTOR_RECIPE: dict[str, Any] = {"ema_warmup": True, "keep_checkpoints": "none"}


def _subsample_backgrounds(regions: RegionSet, per_positive: int, seed: int) -> RegionSet:
    """The positives and a fixed draw of ``per_positive`` times as many backgrounds (for validation:
    every proposal of every image would make an epoch's validation cost more than its training)."""
    want = min(regions.backgrounds, max(per_positive * regions.positives, 1))
    rng = np.random.default_rng(seed)
    picked = regions.positives + np.sort(rng.choice(regions.backgrounds, size=want, replace=False))
    keep = np.concatenate([np.arange(regions.positives), picked])
    return RegionSet(regions.image_index[keep], regions.boxes[keep], regions.labels[keep], regions.positives)


def region_data(
    method: ProposalMethod,
    *,
    proposal_workers: int = 0,
    progress: Callable[[str], Any] | None = None,
    classes: Sequence[str] | None = None,
    skip: Collection[str] = frozenset(),
) -> Callable[[TrainConfig], TaskData]:
    """The region classifier's data builder: ``config.data`` a detection dataset (or ``builtin``)
    with ``classes`` (default: the dataset's class list), regions from ``method``'s cached
    proposals, warped to ``config.image_size``. The images whose paths are in ``skip`` (those that
    cannot be decoded, :func:`.datasets.drop_unreadable`) are left out."""

    def build(config: TrainConfig) -> TaskData:
        from .datasets import open_detection_dataset

        names = list(classes) if classes is not None else None
        train_set = open_detection_dataset(config.data, "train", strict=config.strict_data, classes=names)
        val_set = open_detection_dataset(
            config.data, "val", strict=config.strict_data, classes=train_set.class_names
        )
        regions, sets = {}, {}
        for split, ds in (("train", train_set), ("val", val_set)):
            if progress is not None:
                progress(f"proposals ({method.name}) for {len(ds)} {split} images of {ds.root}")
            proposals = cached_proposals(ds, method, workers=proposal_workers)
            sets[split] = ds.subset([i for i in range(len(ds)) if str(ds.image_path(i)) not in skip])
            regions[split] = build_region_set(
                sets[split].targets(), proposals, include_ground_truth=split == "train"
            )
        if regions["train"].positives == 0:
            raise GoogLeNetError(f"{train_set.root}: no positive regions in the train split (no objects?)")
        val = _subsample_backgrounds(regions["val"], VAL_BACKGROUNDS_PER_POSITIVE, config.seed)
        meta = config.model_meta()
        size = config.image_size
        return TaskData(
            train=RegionDataset(sets["train"], regions["train"], size, meta.mean, meta.std, flip=True),
            val=RegionDataset(sets["val"], val, size, meta.mean, meta.std, flip=False),
            classes=[BACKGROUND_NAME, *train_set.class_names],
            source=str(train_set.root),
        )

    return build


def region_sampler(
    dataset: RegionDataset, batch_size: int, *, seed: int, rank: int, world_size: int
) -> RegionBatchSampler:
    """1/4 positives per batch (R-CNN: 32 of 128), an epoch = one pass over the positives."""
    r = dataset.regions
    return RegionBatchSampler(
        r.positives, r.backgrounds, batch_size, positive_fraction=POSITIVE_FRACTION, seed=seed, rank=rank,
        world_size=world_size,
    )  # fmt: skip


def region_task(
    method: ProposalMethod,
    *,
    proposal_workers: int = 0,
    progress: Callable[[str], Any] | None = None,
    classes: Sequence[str] | None = None,
    skip: Collection[str] = frozenset(),
) -> Task:
    """The region classifier's :class:`Task`: the classifier's model and loss, regions as data
    (:func:`region_data`)."""
    build = region_data(
        method, proposal_workers=proposal_workers, progress=progress, classes=classes, skip=skip
    )
    return dataclasses.replace(CLASSIFICATION, build_data=build, build_sampler=region_sampler)


def member_dirs(out: str | Path, n: int) -> list[str]:
    """The members' run directories relative to the detector directory (the ensemble's layout)."""
    from ..runs import EnsembleLayout

    return [EnsembleLayout(out).member(i).root.name for i in range(n)]


def _train_config(config: TrainConfig | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> TrainConfig:
    from ..training.config import resolve_config

    if isinstance(config, TrainConfig):
        return TrainConfig.from_dict({**config.to_dict(), **fields}) if fields else config
    return resolve_config(None, {**(config or {}), **fields}, defaults=DETECTOR_RECIPE)


def _scoring(scoring: Any) -> Any:
    from .scoring import ScoringSettings

    if scoring is None or isinstance(scoring, ScoringSettings):
        return scoring or ScoringSettings()
    try:
        return ScoringSettings(**scoring)
    except (TypeError, ValueError) as exc:
        raise GoogLeNetError(f"scoring settings {dict(scoring)}: {exc}") from None


def train_detector(
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    members: int = PAPER_DETECTOR_MEMBERS,
    proposals: str | ProposalMethod = DEFAULT_PROPOSALS,
    multibox: str | Path | None = None,
    same_init: bool = True,
    proposal_workers: int | None = None,
    scoring: Any = None,
    classes: str | Sequence[str] | None = None,
    messages: Callable[[str], object] | None = None,
    on_estimate: Callable[[CostEstimate], object] | None = None,
    **fields: Any,
) -> DetectorManifest:
    """Train (or continue) the detector's ``members`` region classifiers and write its manifest.

    ``config``: the recipe, a :class:`~googlenet.training.config.TrainConfig` or a mapping of its
    fields over :data:`DETECTOR_RECIPE`'s defaults; ``fields`` override it (``data``: a detection
    folder or ``builtin``; ``out``: the detector directory, members in ``OUT/member_XX``;
    ``init_from``: the classification weights to fine-tune; ``epochs``, ``image_size``, ...).
    ``classes``: the class list (names, or a ``--classes`` value: a file or comma-separated names;
    default the dataset's one list, :attr:`.datasets.DetectionDataset.class_source` says whence).
    ``proposals``: the method the regions come from (a name of :data:`.proposals.METHODS` or a
    ProposalMethod; ``multibox`` is the MultiBox folder ``paper`` needs), computed with
    ``proposal_workers`` processes (default every CPU of this process) and cached.
    ``same_init``: every member starts from the same initial weights (the paper's), else each from
    its own seed. ``scoring``: the test-time :class:`~.scoring.ScoringSettings` (or a mapping of
    them) the manifest records. ``messages`` receives a line per step (the classes and where they
    came from; images that cannot be decoded and are left out; proposals computed; a member
    skipped, started, resumed, done). A class with few objects or in one split only is a warning
    naming its annotation files (:func:`.datasets.class_warnings`); an image that cannot be decoded
    is left out and named (the manifest's ``unreadable_images``), or with ``strict_data`` stops the
    call before any write. ``on_estimate`` is called before the work with what it will do and about
    how long it will take here (:func:`estimate_train_detector`); when the proposals were not cached
    (the regions extrapolated from a few images'), again once they are computed, with the regions
    counted.

    Calling it again with the same arguments continues: finished members are skipped and an
    interrupted one resumes exactly. A signal stopping a member raises
    :class:`googlenet.training.ensemble.EnsembleInterrupted` (its checkpoint written). Returns the
    manifest written to ``OUT/detector.json`` once every member is trained.
    """
    from ..cpu import cpu_count
    from ..runs import DETECTOR_KIND
    from ..training import ensemble
    from .datasets import class_warnings, drop_unreadable

    def say(message: str) -> None:
        if messages is not None:
            messages(message)

    config, method, splits = _prepare(config, fields, members, proposals, multibox, classes)
    settings = _scoring(scoring)
    class_names = splits["train"].class_names
    say(f"{len(class_names)} classes ({', '.join(class_names)}) from {splits['train'].class_source}")
    for line in class_warnings(splits):
        logger.warning("%s", line)
    workers = cpu_count() if proposal_workers is None else proposal_workers
    unreadable = {}  # first: under --strict-data the first such image stops the call before the estimate
    for split, ds in splits.items():
        bad = drop_unreadable(ds, strict=config.strict_data, workers=config.workers).unreadable
        if bad:
            say(f"{len(bad)} unreadable image(s) of the {split} split left out (first: {bad[0][0]})")
            unreadable[split] = [path for path, _ in bad]
    skip = frozenset(path for paths in unreadable.values() for path in paths)
    if on_estimate is not None:
        _say_estimates(config, splits, method, members, workers, on_estimate, say)
    task = region_task(method, proposal_workers=workers, progress=messages, classes=class_names, skip=skip)
    words = {"skip": "complete, skipped", "start": "training", "resume": "resuming", "done": "done"}

    def on_member(i: int, state: str, run_dir: Any) -> None:
        say(f"member {i + 1}/{members} ({run_dir}): {words[state]}")

    ensemble.train_ensemble(
        config, members, config.out, same_init=same_init, on_member=on_member, task=task,
        extra={"kind": DETECTOR_KIND, "class_names": class_names},
    )  # fmt: skip
    manifest = DetectorManifest(
        class_names=list(class_names),
        members=member_dirs(config.out, members),
        proposals=method.settings(),
        scoring=settings.to_dict(),
        image_size=config.image_size,
        variant=config.model,
        data=str(config.data),
        init_from=config.init_from,
        class_source=splits["train"].class_source,
        unreadable_images=unreadable,
    )
    write_manifest(config.out, manifest)
    return manifest


def estimate_train_detector(
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    members: int = PAPER_DETECTOR_MEMBERS,
    proposals: str | ProposalMethod = DEFAULT_PROPOSALS,
    multibox: str | Path | None = None,
    proposal_workers: int | None = None,
    classes: str | Sequence[str] | None = None,
    **fields: Any,
) -> CostEstimate:
    """What :func:`train_detector` with the same arguments would do and about how long it would take
    here, without doing it (``train-detector --dry-run``): the proposals the cache lacks, the members
    left x epochs x steps over the positive regions and the validation, each timed on a few warm-up
    items (:func:`.estimates.training_estimate`)."""
    from ..cpu import cpu_count

    config, method, splits = _prepare(config, fields, members, proposals, multibox, classes)
    workers = cpu_count() if proposal_workers is None else proposal_workers
    return _estimate(config, splits, method, members, workers)


def _estimate(
    config: TrainConfig,
    splits: dict[str, Any],
    method: ProposalMethod,
    members: int,
    workers: int,
    timed: tuple[Throughput, Throughput] | None = None,
) -> CostEstimate:
    from .estimates import training_estimate

    return training_estimate(
        config, splits, method, members, val_backgrounds=VAL_BACKGROUNDS_PER_POSITIVE, workers=workers,
        timed=timed,
    )  # fmt: skip


def _say_estimates(
    config: TrainConfig,
    splits: dict[str, Any],
    method: ProposalMethod,
    members: int,
    workers: int,
    on_estimate: Callable[[CostEstimate], object],
    say: Callable[[str], None],
) -> None:
    """The estimate before the work; and when it had to extrapolate the regions from a few images'
    proposals (not cached yet), those of every image computed first (they are cached for the
    training, which needs them next) and the training said again on the exact region count, at the
    step times measured for the first (one process: under torchrun the ranks share the cache)."""
    from ..training.distributed import launch_position
    from .estimates import training_timings
    from .proposals import cached_proposals

    estimate = _estimate(config, splits, method, members, workers)
    if not estimate.parts:  # every member is trained already
        return
    on_estimate(estimate)
    timed = training_timings(estimate)
    if timed is None or not any(p.unit == "images" for p in estimate.parts) or launch_position()[1] > 1:
        return
    for split, ds in splits.items():
        say(f"proposals ({method.name}) for {len(ds)} {split} images of {ds.root}, to count the regions")
        cached_proposals(ds, method, workers=workers)
    on_estimate(_estimate(config, splits, method, members, workers, timed=timed))


def _prepare(
    config: TrainConfig | Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    members: int,
    proposals: str | ProposalMethod,
    multibox: str | Path | None,
    classes: str | Sequence[str] | None,
) -> tuple[TrainConfig, ProposalMethod, dict[str, Any]]:
    """The checked recipe, proposal method and open train and val splits of a detector's training
    (its classes: ``classes``, else the data's one list; refused when ``config.out`` was trained on
    other classes)."""
    from ..runs import read_ensemble_index
    from .datasets import open_detection_dataset, parse_classes

    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise GoogLeNetError(f"--members must be at least 1. Got {members}")
    config = _train_config(config, fields).with_absolute_data()  # detector.json works from anywhere
    config.validate()
    method = proposals
    if not isinstance(method, ProposalMethod):
        method = proposal_method(proposals, multibox=multibox)
    names = parse_classes(classes) if classes is not None else None
    splits = {"train": open_detection_dataset(config.data, "train", strict=config.strict_data, classes=names)}
    class_names = splits["train"].class_names
    splits["val"] = open_detection_dataset(config.data, "val", strict=config.strict_data, classes=class_names)
    index = read_ensemble_index(config.out) if Path(config.out).is_dir() else None
    trained = index.get("class_names") if isinstance(index, dict) else None
    if trained is not None and trained != class_names:
        raise GoogLeNetError(
            f"{config.out} was trained on the classes {trained}; the data now gives {class_names} "
            f"(from {splits['train'].class_source}): train the new list into another --out, or pass "
            "the old one (--classes)"
        )
    return config, method, splits
