"""What section 8's long jobs will cost, said before they run: proposals, a detector's evaluation and
its training, counted and timed on a few warm-up items on this machine (:mod:`googlenet.cost`).

Selective Search over a split, every region of every image through every member of the ensemble,
and the members' training on warped regions take days at ILSVRC's scale (fast-rcnn issue #51 puts
R-CNN's proposals for ILSVRC DET's 220,000 training images at about 15 days). Each estimate counts the work
left (what the proposals cache, the parts or the finished members do not hold), times the real step
on a few of this split's items here (Selective Search on images, a member's network on a batch of
regions, a training step), and says the total, divided over the shards or torchrun ranks that share
it. Left out: decoding and warping, which run in worker processes beside the network, and NMS (a
few percent of the network's time on the built-in set, docs/detection.md), and checkpoints.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cost import CostEstimate, Throughput, WorkPart, format_count, measure_throughput
from ..parts import Shard
from .proposals import ProposalMethod, cached_counts, check_method, iter_proposals

__all__ = [
    "estimate_proposals",
    "evaluation_estimate",
    "time_proposals",
    "training_estimate",
    "training_timings",
]

WARMUP_IMAGES = 3  # images whose proposals are timed (the first one untimed, as a warm-up)


def time_proposals(
    dataset: Any, method: ProposalMethod, indices: Sequence[int]
) -> tuple[Throughput, dict[int, np.ndarray]]:
    """Seconds per image of ``method``'s proposals in one process (decoding included), timed on the
    first :data:`WARMUP_IMAGES` of ``indices`` after one warm-up call; and the proposals found."""
    images = list(indices)[:WARMUP_IMAGES]
    if not images:
        raise ValueError("no images to time proposals on")
    turn = itertools.count()
    found: dict[int, np.ndarray] = {}

    def step() -> None:
        i = images[next(turn) % len(images)]
        found[i] = next(iter_proposals(dataset, method, [i]))

    steps = len(images)
    rate = measure_throughput(
        step, 1, warmup_steps=1, min_steps=min(2, steps), min_seconds=0.0, max_steps=steps
    )
    return rate, found


def _processes(rate: Throughput, processes: int) -> Throughput:
    """``rate`` of one process, as ``processes`` processes on as many cores give it together."""
    return Throughput(rate.seconds_per_item / processes, rate.items, rate.warmup_items)


def _where() -> str:
    from ..cpu import cpu_count, cpu_name

    return f"cpu: {cpu_name()}, {cpu_count()} usable cores"


def _method_part(
    dataset: Any, method: ProposalMethod, todo: Sequence[int], mine: Sequence[int], workers: int
) -> tuple[WorkPart, dict[int, np.ndarray]]:
    """``todo`` images' proposals as a work part, timed on this process's own images (``mine``) when
    it has some left; and the boxes of the timed images."""
    rate, found = time_proposals(dataset, method, mine or todo)
    processes = max(1, min(workers, len(mine or todo)))
    what = f"{method.name} proposals, " + (f"{processes} processes" if processes > 1 else "1 process")
    return WorkPart(what, len(todo), _processes(rate, processes), unit="images"), found


def _share(shard: Shard | None, n: int) -> list[int]:
    return list(range(n)) if shard is None else shard.images(n)


def _done(done: int, n: int, where: str) -> str | None:
    return f"{format_count(done)} of {format_count(n)} images ({where})" if done else None


def estimate_proposals(
    dataset: Any,
    method: ProposalMethod,
    *,
    shard: Shard | None = None,
    workers: int = 0,
    refresh: bool = False,
) -> CostEstimate:
    """What :func:`.proposals.fill_proposals` (``googlenet proposals``) would do for ``dataset``:
    the images whose proposals the cache does not hold (all with ``refresh``), at the seconds per
    image of a few of them (this ``shard``'s, when it has some left) in one process, over
    ``workers`` processes, and divided over the shard count."""
    check_method(method)
    n = len(dataset.image_ids)
    cached = {} if refresh else cached_counts(dataset, method)
    todo = [i for i in range(n) if i not in cached]
    mine = [i for i in _share(shard, n) if i not in cached]
    work = f"{format_count(n)} images of {dataset.root} [{dataset.split}] -> {method.name} proposals"
    if shard is not None:
        work += f"; shard {shard}: {format_count(len(_share(shard, n)))} of them"
    parts: tuple[WorkPart, ...] = ()
    notes: tuple[str, ...] = ()
    if todo:
        part, found = _method_part(dataset, method, todo, mine, workers)
        parts = (part,)
        notes = (f"{statistics.fmean(len(b) for b in found.values()):.0f} proposals per timed image",)
    return CostEstimate(
        "proposals",
        work,
        parts,
        where=_where(),
        ranks=shard.count if shard is not None else 1,
        done=_done(n - len(todo), n, "in the proposals cache"),
        notes=notes,
    )


def evaluation_estimate(
    detector: Any,
    dataset: Any,
    methods: Sequence[ProposalMethod],
    combos: Sequence[tuple[int, ...]],
    options: dict[str, Any],
    *,
    shard: Shard | None = None,
    workers: int = 0,
) -> CostEstimate:
    """What :func:`.evaluation.evaluate_detector` would do: each method's proposals the cache does
    not hold (timed on a few images), then every region of every image through each member loaded
    (timed on a batch of as many regions as an image has, with the member's backend; the members
    are one variant, so one is timed), divided over the shard count."""
    from .detector import REGION_BATCH, Detector

    n = len(dataset.image_ids)
    loaded = max(max(c) for c in combos) + 1
    parts: list[WorkPart] = []
    regions: list[float] = []
    timed = False
    for method in methods:
        cached = cached_counts(dataset, method)
        todo = [i for i in range(n) if i not in cached]
        counts = list(cached.values())
        if todo:
            mine = [i for i in _share(shard, n) if i not in cached]
            part, found = _method_part(dataset, method, todo, mine, workers)
            parts.append(part)
            counts += [len(b) for b in found.values()]
            timed = True
        regions.append(statistics.fmean(counts) if counts else 0.0)
    clock = time.perf_counter()
    model = Detector.load(detector, members=1, **options)
    load = Throughput(time.perf_counter() - clock, 1)
    parts.append(WorkPart("loading a member (weights, backend)", loaded, load, unit="members"))
    member = model.predictors[0]
    batch = max(1, min(REGION_BATCH, round(statistics.fmean(regions)) if regions else 1))
    side = model.image_size
    warped = _regions(batch, side)
    rate = measure_throughput(
        lambda: member(warped), batch, warmup_steps=1, min_steps=2, min_seconds=0.5, max_steps=5
    )
    passes = sum(round(r * n) for r in regions) * loaded
    parts.append(
        WorkPart(
            f"a member's network ({member.backend} {member.precision}), batches of {batch} regions",
            passes,
            rate,
            unit="regions",
        )
    )
    per_image = statistics.fmean(regions) if regions else 0.0
    work = (
        f"{format_count(n)} images x {per_image:.0f} regions x {loaded} member{'s' * (loaded > 1)} x "
        f"{len(methods)} proposal method{'s' * (len(methods) > 1)} = {format_count(passes)} forward passes "
        f"at {side} px"
    )
    if shard is not None:
        work += f"; shard {shard}: {format_count(len(_share(shard, n)))} of the images"
    threads = _torch_threads()
    return CostEstimate(
        "evaluate-detection",
        work,
        tuple(parts),
        where=f"{_where()}, {threads} torch thread{'s' * (threads > 1)}",
        ranks=shard.count if shard is not None else 1,
        notes=("regions per image: the timed images' proposals (not cached yet)",) if timed else (),
    )


def _regions(batch: int, side: int) -> Any:
    """A seeded batch of normalised-looking regions (what a member's network sees)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, side, side, generator=generator)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def training_estimate(
    config: Any,
    splits: Mapping[str, Any],
    method: ProposalMethod,
    members: int,
    *,
    val_backgrounds: int,
    workers: int = 0,
    timed: tuple[Throughput, Throughput] | None = None,
) -> CostEstimate:
    """What :func:`.training.train_detector` would do with the recipe ``config`` on ``splits`` (the
    open ``train`` and ``val`` DetectionDatasets): the proposals the cache lacks (timed on a few
    images), then per member left (those without final weights) and epoch, the training steps over
    the positive regions (1/4 of each batch, R-CNN's mix) and the validation's forward passes (its
    positives and ``val_backgrounds`` backgrounds each, raw and averaged weights), timed as real
    steps of the recipe's model, batch, precision and Polyak average on random regions. Positive
    regions per image: counted on the cached proposals, else on the timed images' (the notes say
    which). ``timed``: the training step's and the forward pass's throughputs measured already (an
    earlier estimate's, :func:`training_timings`), instead of timing them again. Left out: decoding
    and warping (the recipe's ``workers`` processes beside the steps), checkpoints."""
    from ..runs import RunLayout
    from ..training.ensemble import member_dir
    from .proposals import fill_proposals
    from .regions import POSITIVE_FRACTION, build_region_set

    left = [i for i in range(members) if not RunLayout(member_dir(config.out, i)).weights.is_file()]
    done = None
    if len(left) < members:
        done = f"{members - len(left)} of {members} members (their weights are in {config.out})"
    if not left:  # nothing to train, and so no proposals to compute
        return CostEstimate("train-detector", "every member is trained", (), where=_where(), done=done)
    parts: list[WorkPart] = []
    positives: dict[str, float] = {}
    extrapolated: list[str] = []
    for split, ds in splits.items():
        n = len(ds.image_ids)
        cached = cached_counts(ds, method)
        todo = [i for i in range(n) if i not in cached]
        truth = split == "train"  # R-CNN trains on the ground-truth boxes too
        if todo:
            part, found = _method_part(ds, method, todo, todo, workers)
            parts.append(dataclasses.replace(part, what=f"{split}: {part.what}"))
            targets = [ds.target(i) for i in found]
            boxes = {ds.target(i).image_id: b for i, b in found.items()}
            counted = build_region_set(targets, boxes, include_ground_truth=truth).positives
            # Positives are proposals on an object: scale the timed images' count by the split's
            # objects (read from the annotations), not its images (a few images hold few or many).
            timed_objects = sum(len(t.labels) for t in targets)
            objects = sum(len(t.labels) for t in ds.targets())
            positives[split] = (
                counted / timed_objects * objects if timed_objects else counted / len(found) * n
            )
            extrapolated.append(f"{split} from {len(found)} of its {format_count(n)} images")
        else:
            proposals = fill_proposals(ds, method, workers=workers).proposals  # read from the cache
            positives[split] = build_region_set(ds.targets(), proposals, include_ground_truth=truth).positives
    train_step, forward = timed or _time_training(config, len(splits["train"].class_names) + 1)
    batch = config.batch_size
    per_batch = max(1, round(batch * POSITIVE_FRACTION))
    steps = int(positives["train"] // per_batch)
    val_regions = round(positives["val"] * (1 + val_backgrounds))
    runs = len(left) * config.epochs
    what = f"training steps of {batch} regions ({config.model} at {config.image_size} px)"
    parts.append(WorkPart(what, runs * steps * batch, train_step, unit="regions"))
    parts.append(WorkPart("validation forward passes", runs * val_regions * 2, forward, unit="regions"))
    work = (
        f"{len(left)} of {members} member{'s' * (members > 1)} x {config.epochs} epoch"
        f"{'s' * (config.epochs > 1)} x {format_count(steps)} steps of {batch} regions (about "
        f"{format_count(round(positives['train']))} positives / {per_batch} per batch) + validation on "
        f"{format_count(val_regions)} regions, raw and averaged weights; {method.name} proposals of "
        f"{format_count(len(splits['train']))} + {format_count(len(splits['val']))} images"
    )
    counted = (
        "positive regions extrapolated by objects (" + "; ".join(extrapolated) + ")"
        if extrapolated
        else "positive regions counted on every image's proposals"
    )
    return CostEstimate("train-detector", work, tuple(parts), where=_where(), done=done, notes=(counted,))


def training_timings(estimate: CostEstimate) -> tuple[Throughput, Throughput] | None:
    """The training step's and the forward pass's throughputs a :func:`training_estimate` measured
    (its last two parts), or None when it has no training parts (every member trained)."""
    if len(estimate.parts) < 2:
        return None
    step, forward = estimate.parts[-2:]
    return step.throughput, forward.throughput


def _time_training(config: Any, outputs: int) -> tuple[Throughput, Throughput]:
    """Seconds per region of the recipe's training step (forward, loss with the auxiliary heads,
    backward, update, Polyak average) and of an evaluation forward pass, on random regions."""
    import torch

    from ..training.distributed import resolve_device
    from ..training.engine import autocast, prepare_model, resolve_precision, train_step
    from ..training.loading import untrained_model
    from ..training.optim import build_optimizer, polyak_average
    from ..training.task import recipe_loss

    classes = [str(i) for i in range(outputs)]
    model = untrained_model(config, classes)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    prepare_model(model, device, channels_last=config.channels_last)
    optimizer = build_optimizer(model, config, config.lr)
    ema = polyak_average(model, config.ema_decay, warmup=config.ema_warmup)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(config.batch_size, 3, config.image_size, config.image_size, generator=generator)
    labels = torch.randint(0, outputs, (config.batch_size,), generator=generator)
    loss_fn = recipe_loss(config)

    def step() -> None:
        train_step(model, optimizer, images, labels, loss_fn=loss_fn, precision=precision,
                   channels_last=config.channels_last, ema=ema, check_finite=False)  # fmt: skip

    def forward() -> None:
        with torch.no_grad(), autocast(device, precision):
            model(images.to(device))

    model.train()
    trained = measure_throughput(
        step, config.batch_size, warmup_steps=1, min_steps=2, min_seconds=0.5, max_steps=4
    )
    model.eval()
    evaluated = measure_throughput(
        forward, config.batch_size, warmup_steps=1, min_steps=2, min_seconds=0.25, max_steps=4
    )
    return trained, evaluated
