"""Training the region classifier (paper section 8, R-CNN style) with the classifier's own loop.

The detector's members are GoogLeNets with ``N + 1`` outputs (output 0 the background), trained on
warped proposals exactly as :func:`googlenet.fit` trains the classifier: same optimizer, schedule,
Polyak averaging, auxiliary losses (section 5), checkpoints, exact resume and torchrun. Only the
:class:`~googlenet.training.task.Task` differs: its data are the labelled regions of
:mod:`.regions`, its batches hold 1/4 positives (:class:`~.regions.RegionBatchSampler`), and its
model usually starts from a classification model (``init_from``), as R-CNN fine-tunes its
ImageNet network. The members of a detector are an ensemble (:func:`googlenet.training.ensemble.
train_ensemble`): they differ in seed (data order and background sampling), as the paper's 6.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from ..training.config import TrainConfig
from ..training.task import CLASSIFICATION, Task, TaskData
from .proposals import ProposalMethod, cached_proposals
from .regions import POSITIVE_FRACTION, RegionBatchSampler, RegionDataset, RegionSet, build_region_set

BACKGROUND_NAME = "__background__"
VAL_BACKGROUNDS_PER_POSITIVE = 3  # validation keeps the training mix: 1 positive to 3 background


def _subsample_backgrounds(regions: RegionSet, per_positive: int, seed: int) -> RegionSet:
    """The positives and a fixed draw of ``per_positive`` times as many backgrounds (for validation:
    every proposal of every image would make an epoch's validation cost more than its training)."""
    want = min(regions.backgrounds, max(per_positive * regions.positives, 1))
    rng = np.random.default_rng(seed)
    picked = regions.positives + np.sort(rng.choice(regions.backgrounds, size=want, replace=False))
    keep = np.concatenate([np.arange(regions.positives), picked])
    return RegionSet(regions.image_index[keep], regions.boxes[keep], regions.labels[keep], regions.positives)


def region_data(
    method: ProposalMethod, *, proposal_workers: int = 0, progress: Callable[[str], Any] | None = None
) -> Callable[[TrainConfig], TaskData]:
    """The region classifier's data builder: ``config.data`` a detection dataset (or ``builtin``),
    regions from ``method``'s cached proposals, warped to ``config.image_size``."""

    def build(config: TrainConfig) -> TaskData:
        from .datasets import open_detection_dataset

        train_set = open_detection_dataset(config.data, "train", strict=config.strict_data)
        val_set = open_detection_dataset(
            config.data, "val", strict=config.strict_data, classes=train_set.class_names
        )
        regions = {}
        for split, ds in (("train", train_set), ("val", val_set)):
            if progress is not None:
                progress(f"proposals ({method.name}) for {len(ds)} {split} images of {ds.root}")
            proposals = cached_proposals(ds, method, workers=proposal_workers)
            regions[split] = build_region_set(ds.targets(), proposals, include_ground_truth=split == "train")
        if regions["train"].positives == 0:
            raise GoogLeNetError(f"{train_set.root}: no positive regions in the train split (no objects?)")
        val = _subsample_backgrounds(regions["val"], VAL_BACKGROUNDS_PER_POSITIVE, config.seed)
        meta = config.model_meta()
        size = config.image_size
        return TaskData(
            train=RegionDataset(train_set, regions["train"], size, meta.mean, meta.std, flip=True),
            val=RegionDataset(val_set, val, size, meta.mean, meta.std, flip=False),
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
    method: ProposalMethod, *, proposal_workers: int = 0, progress: Callable[[str], Any] | None = None
) -> Task:
    """The region classifier's :class:`Task`: the classifier's model and loss, regions as data."""
    return dataclasses.replace(
        CLASSIFICATION,
        build_data=region_data(method, proposal_workers=proposal_workers, progress=progress),
        build_sampler=region_sampler,
    )


def member_dirs(out: str | Path, n: int) -> list[str]:
    """The members' run directories relative to the detector directory (the ensemble's layout)."""
    from ..runs import EnsembleLayout

    return [EnsembleLayout(out).member(i).root.name for i in range(n)]
