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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from ..training.config import TrainConfig
from ..training.task import CLASSIFICATION, Task, TaskData
from .detector import PAPER_DETECTOR_MEMBERS, DetectorManifest, write_manifest
from .proposals import ProposalMethod, cached_proposals, proposal_method
from .regions import POSITIVE_FRACTION, RegionBatchSampler, RegionDataset, RegionSet, build_region_set

BACKGROUND_NAME = "__background__"
DEFAULT_PROPOSALS = "selective-search-2x"  # section 8: Selective Search with the superpixel size x2
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


def _train_config(config: TrainConfig | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> TrainConfig:
    from ..training.config import resolve_config

    if isinstance(config, TrainConfig):
        return TrainConfig.from_dict({**config.to_dict(), **fields}) if fields else config
    return resolve_config(None, {**(config or {}), **fields})


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
    messages: Callable[[str], object] | None = None,
    **fields: Any,
) -> DetectorManifest:
    """Train (or continue) the detector's ``members`` region classifiers and write its manifest.

    ``config``: the recipe, a :class:`~googlenet.training.config.TrainConfig` or a mapping of its
    fields; ``fields`` override it (``data``: a detection folder or ``builtin``; ``out``: the
    detector directory, members in ``OUT/member_XX``; ``init_from``: the classification weights
    to fine-tune; ``epochs``, ``image_size``, ...). ``proposals``: the method the regions come from
    (a name of :data:`.proposals.METHODS` or a ProposalMethod; ``multibox`` is the MultiBox folder
    ``paper`` needs), computed with ``proposal_workers`` processes (default every CPU of this
    process) and cached. ``same_init``: every member starts from the same initial weights (the
    paper's), else each from its own seed. ``scoring``: the test-time
    :class:`~.scoring.ScoringSettings` (or a mapping of them) the manifest records. ``messages``
    receives a line per step (proposals computed; a member skipped, started, resumed, done).

    Calling it again with the same arguments continues: finished members are skipped and an
    interrupted one resumes exactly. A signal stopping a member raises
    :class:`googlenet.training.ensemble.EnsembleInterrupted` (its checkpoint written). Returns the
    manifest written to ``OUT/detector.json`` once every member is trained.
    """
    from ..cpu import cpu_count
    from ..training import ensemble
    from .datasets import open_detection_dataset

    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise GoogLeNetError(f"--members must be at least 1. Got {members}")
    config = _train_config(config, fields)
    config.validate()
    settings = _scoring(scoring)
    method = proposals
    if not isinstance(method, ProposalMethod):
        method = proposal_method(proposals, multibox=multibox)
    class_names = open_detection_dataset(config.data, "train", strict=config.strict_data).class_names
    workers = cpu_count() if proposal_workers is None else proposal_workers
    task = region_task(method, proposal_workers=workers, progress=messages)
    words = {"skip": "complete, skipped", "start": "training", "resume": "resuming", "done": "done"}

    def on_member(i: int, state: str, run_dir: Any) -> None:
        if messages is not None:
            messages(f"member {i + 1}/{members} ({run_dir}): {words[state]}")

    ensemble.train_ensemble(config, members, config.out, same_init=same_init, on_member=on_member, task=task)
    manifest = DetectorManifest(
        class_names=list(class_names),
        members=member_dirs(config.out, members),
        proposals=method.settings(),
        scoring=settings.to_dict(),
        image_size=config.image_size,
        variant=config.model,
        data=str(config.data),
        init_from=config.init_from,
    )
    write_manifest(config.out, manifest)
    return manifest
