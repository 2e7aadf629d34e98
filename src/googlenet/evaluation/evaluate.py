"""The paper's test protocol (section 7) on a dataset, as one call: ``googlenet.evaluate``.

What ``googlenet evaluate`` runs, from Python: every image of a split (or ``limit`` of them,
spread evenly) is seen through 1, 10 or 144 crops by every model; the softmax probabilities are
averaged over the crops and the models; Table 3 (models x crops -> cost, top-k and top-1 error),
its spread over every k-subset of the models and the paper's two effects with paired intervals
come back in one :class:`~googlenet.evaluation.result.EvaluationResult`, the object
``evaluate --json`` writes and ``googlenet report --evaluation`` reads.

The steps are :mod:`googlenet.evaluation.protocol`'s pure functions over the models that
:mod:`googlenet.evaluation.loading` puts behind Predictors; this module checks the arguments first
and records what was evaluated. Table 3's last row is days of forward passes on one machine (7
models x 144 crops x 50,000 images), so the images are scored in chunks that can be spread over
torchrun's ranks (each a contiguous run of chunks; rank 0 gathers the probabilities), written as
they finish so that a killed run continues (:mod:`googlenet.evaluation.parts`), and timed on a few
warm-up batches first so that the cost is said before the work (:func:`estimate_evaluation`,
:mod:`googlenet.cost`).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data.multicrop import num_crops
from ..errors import GoogLeNetError
from ..parts import Shard, image_chunks
from ..progress import Progress, progress_callback
from ..version import __version__
from .loading import LoadedModels, ModelSource, check_run_arguments
from .parts import DEFAULT_CHUNK_IMAGES, EvaluationParts
from .protocol import DEFAULT_BATCH
from .result import EvaluationResult

if TYPE_CHECKING:
    from ..cost import CostEstimate, WorkPart

__all__ = ["estimate_evaluation", "evaluate"]

SPLITS = ("val", "train")
LAYOUTS = ("auto", "imagefolder", "ilsvrc")
COMBINES = ("mean", "max")
MODEL_COUNTS = ("paper", "every")


def evaluate(
    data: str | os.PathLike[str],
    checkpoint: ModelSource | Sequence[ModelSource],
    *,
    split: str = "val",
    layout: str = "auto",
    crops: Sequence[int | str] = (1, 10, 144),
    combine: str = "mean",
    model_counts: str = "paper",
    limit: int | None = None,
    image_size: int | None = None,
    backend: str = "torch",
    precision: str = "fp32",
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    workers: int = 2,
    allow_class_mismatch: bool = False,
    chunk_images: int = DEFAULT_CHUNK_IMAGES,
    work_dir: str | os.PathLike[str] | None = None,
    on_estimate: Callable[[CostEstimate], object] | None = None,
    progress: Progress = None,
) -> EvaluationResult:
    """Evaluate models with the paper's test protocol (section 7) and return Table 3.

    Args:
        data: a dataset folder (ImageFolder, or ILSVRC2012 with its synset list and ground truth)
            or ``"builtin"`` (the built-in set, made once in the cache).
        checkpoint: one model or a list of them, averaged: a ``.safetensors`` weights file, a
            training run directory, a training checkpoint (``.pt``, its Polyak-averaged weights),
            an ensemble directory (every member), a :class:`googlenet.runs.ModelRef`, or a
            :class:`googlenet.GoogLeNet` already in memory.
        split: ``"val"`` or ``"train"``.
        layout: ``"auto"``, ``"imagefolder"`` or ``"ilsvrc"``.
        crops: crop schemes among 1, 10 and 144 (section 7); each gets its rows.
        combine: ``"mean"`` over crops (the paper) or ``"max"`` (the paper's worse alternative).
        model_counts: ``"paper"`` (the best single model and all models) or ``"every"``
            (the best 1, 2, ..., all).
        limit: evaluate this many images spread evenly over the split (every class sampled);
            None for all.
        image_size: the crop side; default the models' trained size (their metadata, else their
            run's ``config.yaml``). Models trained at different sizes need it.
        backend: ``"torch"`` (exact fp32 reference numbers), ``"onnxruntime"``, ``"openvino"``
            or ``"auto"`` (timed, :class:`googlenet.Predictor`).
        precision: ``"fp32"``, ``"bf16"``, ``"int8"`` (calibrated on the data's train split) or
            ``"auto"``.
        device: ``"auto"`` (CUDA when available; under torchrun each rank's ``cuda:LOCAL_RANK``),
            ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: crops per forward pass (one image's crops are never split).
        workers: processes decoding and cropping images (0: in this process).
        allow_class_mismatch: score models whose class names differ from the data's folders by
            position (the counts must agree); by default that is refused.
        chunk_images: the images are scored in chunks of this many (no batch crosses a chunk, so
            the numbers depend on it in their last bits, never on the world size or a resume).
        work_dir: a folder where each finished chunk is written
            (:class:`~googlenet.evaluation.parts.EvaluationParts`): run again after a kill, the
            evaluation reuses them and computes only the rest; other settings are refused. Removed
            once the result exists. None: nothing is written.
        on_estimate: called (on rank 0) with the :class:`googlenet.cost.CostEstimate` of the work
            left, measured on a few warm-up batches of these models here, before the work starts.
            None: nothing is measured.
        progress: ``True`` for a progress bar on stderr, a callable ``progress(n)`` called after
            every ``n`` images, or None for silence (under torchrun, rank 0 reports its own share).

    Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) the process group is joined (Gloo on CPUs,
    NCCL on GPUs) unless it already is: the chunks are cut into contiguous, near-equal runs
    (:class:`googlenet.parts.Shard`), each rank scores its run, and rank 0 gathers the
    probabilities and builds the result, which every rank returns. It equals a one-process run's
    byte for byte except for ``world_size``, ``ranks`` and the timings.

    Returns:
        An :class:`~googlenet.evaluation.result.EvaluationResult`: the Table 3 rows, the spread
        over every k-subset of the models (with two or more models), the paired effects, each
        model's own errors, the checkpoints (with their tensor hashes), the data, the ``title``
        ``googlenet evaluate`` prints above the table, the ``unreadable`` images (index, path,
        message; counted as errors), the ranks and the images each scored or found done, and the
        wall time, date and versions. ``result.to_json()`` is the file ``evaluate --json`` writes.

    Raises:
        GoogLeNetError: one line naming the value or file: a bad argument (checked before any
            model is loaded or image read), a checkpoint or data folder that cannot be used, a
            backend whose package is not installed, models that cannot be averaged or whose
            classes differ from the data's, a work folder holding parts of other settings (what
            changed is named), or no readable image at all. Values the command also takes are
            named by its flags (``--limit``, ``--image-size``, ``--batch-size``, ``--chunk-images``).
    """
    # The arguments that decide the work, from this call's parameters (nothing else is bound yet).
    arguments = {name: value for name, value in locals().items() if name in JOB_ARGUMENTS}
    _one_of(model_counts, "model_counts", MODEL_COUNTS)
    with _open_job(data, checkpoint, arguments, progress) as job:
        estimate = job.estimate() if on_estimate is not None else None
        if estimate is not None and job.env.is_main:
            on_estimate(estimate)
        return job.run(model_counts, progress, estimate)


def estimate_evaluation(
    data: str | os.PathLike[str], checkpoint: ModelSource | Sequence[ModelSource], **arguments: Any
) -> CostEstimate:
    """What :func:`evaluate` with the same arguments would do and about how long it would take here,
    without doing it (``googlenet evaluate --dry-run``); ``model_counts``, ``on_estimate`` and
    ``progress`` are accepted and have no effect.

    The models are loaded and each kind is timed on a few warm-up batches of crops at the batch size
    the evaluation will use; a few images are read and cropped; the chunks already in ``work_dir``
    are left out. Under torchrun every rank measures its own share at the same time (on a shared
    machine the ranks slow each other down) and every rank returns the estimate.
    """
    bound = inspect.signature(evaluate).bind(data, checkpoint, **arguments)
    bound.apply_defaults()
    chosen = {name: value for name, value in bound.arguments.items() if name in JOB_ARGUMENTS}
    with _open_job(data, checkpoint, chosen, None) as job:
        return job.estimate()


# The arguments of evaluate() that decide the work: what the estimate measures and what the parts in
# a work folder must agree with.
JOB_ARGUMENTS = (
    "split", "layout", "crops", "combine", "limit", "image_size", "backend", "precision", "device",
    "batch_size", "workers", "allow_class_mismatch", "chunk_images", "work_dir",
)  # fmt: skip


@contextlib.contextmanager
def _open_job(
    data: str | os.PathLike[str],
    checkpoint: ModelSource | Sequence[ModelSource],
    arguments: dict[str, Any],
    progress: Progress,
) -> Iterator[_Job]:
    """Check the arguments, join torchrun's process group, load the models, list the images, cut
    the chunks, take this rank's share and look at the work folder; leave the group at the end."""
    from ..training import distributed as D

    a = arguments
    schemes = _check_choices(a["crops"], a["split"], a["layout"], a["combine"])
    for value, flag in ((a["limit"], "--limit"), (a["chunk_images"], "--chunk-images")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GoogLeNetError(f"{flag} must be at least 1. Got {value}")
    checks = ("image_size", "batch_size", "workers", "backend", "precision", "device")
    device = check_run_arguments(progress=progress, **{name: a[name] for name in checks})
    torchrun = D.launch_position()[1] > 1
    joined = torchrun and not torch.distributed.is_initialized()
    # One process sets nothing global (init_distributed would select the CUDA device).
    env = (
        D.init_distributed(device, timeout=D.RANK_WAIT)
        if torchrun
        else D.DistEnv(device=torch.device(device))
    )
    try:
        yield _agreed(env, lambda: _Job.prepare(env, data, checkpoint, schemes, device, arguments))
    finally:
        if joined:
            D.teardown(env)


def _agreed(env: Any, make: Callable[[], _Job]) -> _Job:
    """``make()`` on every rank; when it fails on any rank (a work folder another rank sees
    differently), every rank raises that rank's one-line error instead of waiting for the others."""
    from ..training import distributed as D

    error, job = None, None
    try:
        job = make()
    except GoogLeNetError as exc:
        error = str(exc)
    first = next((e for e in D.all_gather_objects(env, error) if e), None)
    if first is not None:
        raise GoogLeNetError(first)
    assert job is not None
    return job


@dataclass
class _Job:
    """One evaluation, ready to run on this rank: the models, the images and labels, the chunks, this
    rank's share of them (``shard``: chunk indices) and those found finished in the work folder."""

    env: Any  # training.distributed.DistEnv
    loaded: LoadedModels
    schemes: list[str]
    root: Path
    data_arg: str
    split: str
    layout: str
    classes: list[str]
    combine: str
    limit: int | None
    backend: str
    precision: str
    device: str
    batch_size: int
    workers: int
    chunk_images: int
    paths: list[str]
    labels: torch.Tensor
    chunks: list[range]
    shard: range
    parts: EvaluationParts | None
    done: set[int]

    @classmethod
    def prepare(
        cls,
        env: Any,
        data: str | os.PathLike[str],
        checkpoint: ModelSource | Sequence[ModelSource],
        schemes: list[str],
        device: str,
        arguments: dict[str, Any],
    ) -> _Job:
        from ..data.builtin import resolve_data
        from ..data.datasets import build_dataset
        from ..inference.calibration import calibration_loader
        from .loading import load_models, resolve_models
        from .protocol import check_models_fit_data, select_images

        a = arguments
        checkpoints = resolve_models(checkpoint)
        root = resolve_data(data)
        dataset = build_dataset(root, a["split"], layout=a["layout"])
        loaded = load_models(
            checkpoints,
            image_size=a["image_size"],
            backend=a["backend"],
            precision=a["precision"],
            device=str(env.device),
            calibration=calibration_loader(root, a["layout"]),
        )
        check_models_fit_data(
            loaded,
            dataset.classes,
            model=loaded.label,
            data=f"{root} ({a['split']})",
            allow_mismatch=a["allow_class_mismatch"],
        )
        picked = [dataset.samples[i] for i in select_images(len(dataset.samples), a["limit"])]
        if not picked:
            raise GoogLeNetError(f"{root} ({a['split']}) holds no images")
        paths = [str(p) for p, _ in picked]
        labels = torch.tensor([label for _, label in picked])
        size = a["chunk_images"]
        chunks = image_chunks(len(paths), size)
        shard = Shard(env.rank, env.world_size).chunks(len(chunks))
        parts = None
        if a["work_dir"] is not None:
            listing = "\n".join(f"{p}\t{label}" for p, label in picked)
            parts = EvaluationParts(
                a["work_dir"],
                {
                    "crops": [int(s) for s in schemes],
                    "combine": a["combine"],
                    "models": [m["sha256"] for m in loaded.info],
                    "backend": [m["backend"] for m in loaded.info],
                    "precision": [m["precision"] for m in loaded.info],
                    "data": str(root),
                    "split": a["split"],
                    "layout": dataset.layout,
                    "images": hashlib.sha256(listing.encode()).hexdigest(),
                    "num_images": len(paths),
                    "limit": a["limit"],
                    "image_size": loaded.image_size,
                    "device": torch.device(device).type,
                    "batch_size": a["batch_size"],
                    "chunk_images": size,
                    "num_classes": loaded.num_classes,
                },
            )
            parts.check()
        done = parts.done() & set(shard) if parts is not None else set()
        return cls(
            env, loaded, schemes, root, str(data), a["split"], dataset.layout, list(dataset.classes),
            a["combine"], a["limit"], a["backend"], a["precision"], device, a["batch_size"], a["workers"],
            size, paths, labels, chunks, shard, parts, done,
        )  # fmt: skip

    def images_of(self, rank: int) -> range:
        """The images of ``rank``'s share (contiguous: its chunks are)."""
        share = Shard(rank, self.env.world_size).chunks(len(self.chunks))
        n = len(self.paths)
        return range(min(share.start * self.chunk_images, n), min(share.stop * self.chunk_images, n))

    # ---------------------------------------------------------------------------------- estimate

    def estimate(self) -> CostEstimate:
        """The work left, measured on this machine (every rank its own share, at the same time)."""
        from ..cost import CostEstimate, format_count
        from ..training import distributed as D

        todo = [i for c in self.shard if c not in self.done for i in self.chunks[c]]
        own = self._measure(todo) if todo else None
        everyone = D.all_gather_objects(self.env, (len(todo), len(self.done), own))
        left = sum(n for n, _, _ in everyone)
        measured = next((m for _, _, m in everyone if m is not None), None)
        n, models = len(self.paths), len(self.loaded.models)
        per_image = sum(num_crops(s) for s in self.schemes)
        crops = f"{per_image} crop{'s' if per_image > 1 else ''}" + (
            f" ({' + '.join(self.schemes)})" if len(self.schemes) > 1 else ""
        )
        work = (
            f"{format_count(n)} images x {crops} x {models} model{'s' if models > 1 else ''} = "
            f"{format_count(n * per_image * models)} forward passes at {self.loaded.image_size} px"
        )
        done = None
        if left < n and self.parts is not None:
            finished = sum(d for _, d, _ in everyone)
            done = (
                f"{format_count(n - left)} of {format_count(n)} images ({finished} of {len(self.chunks)} "
                f"chunks of {self.chunk_images} images in {self.parts.root})"
            )
        parts = _work_parts(left, per_image, measured) if measured is not None else ()
        rank_seconds: tuple[float, ...] = ()
        if self.env.world_size > 1:
            rank_seconds = tuple(
                sum(p.seconds for p in _work_parts(k, per_image, m)) if m is not None else 0.0
                for k, _, m in everyone
            )
        notes: tuple[str, ...] = ()
        idle = self.env.world_size - len(self.chunks)
        if idle > 0:
            notes = (
                f"only {len(self.chunks)} chunks of {self.chunk_images} images for {self.env.world_size} "
                f"ranks: {idle} have nothing to do (a smaller --chunk-images shares the images out)",
            )
        return CostEstimate(
            "evaluate",
            work,
            tuple(parts),
            where=measured["where"] if measured else "",
            ranks=self.env.world_size,
            rank_seconds=rank_seconds,
            done=done,
            notes=notes,
        )

    def _measure(self, todo: list[int]) -> dict[str, Any]:
        """Time each kind of model on warm-up batches of crops at the batch size this evaluation uses,
        and the reading and cropping of a few of ``todo``'s images."""
        from ..cost import measure_throughput
        from ..cpu import cpu_name
        from ..data.datasets import open_image
        from .protocol import CropViews, model_probabilities

        heavy = max(num_crops(s) for s in self.schemes)
        batch = heavy * max(1, min(self.chunk_images, self.batch_size // heavy))
        side = self.loaded.image_size
        generator = torch.Generator().manual_seed(0)
        crops = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=generator)
        kinds: dict[tuple[Any, ...], list[int]] = {}
        for m, info in enumerate(self.loaded.info):
            kinds.setdefault((info["variant"], info["backend"], info["precision"]), []).append(m)
        forward = []
        for (variant, backend, precision), members in kinds.items():
            model = self.loaded.models[members[0]]
            on_device = crops.to(model.device)
            rate = measure_throughput(
                lambda model=model, on_device=on_device: model_probabilities(model, on_device),
                batch,
                warmup_steps=1,
                min_steps=2,
                min_seconds=0.5,
                max_steps=4,
            )
            label = f"{variant} {backend} {precision} x {len(members)}, batches of {batch} crops"
            forward.append((label, len(members), rate))
        views = CropViews(
            [self.paths[i] for i in todo[:3]], self.schemes, self.loaded.data_config, open_image
        )
        turn = iter(range(10**9))
        reading = measure_throughput(
            lambda: views[next(turn) % len(views)],
            1,
            warmup_steps=1,
            min_steps=2,
            min_seconds=0.0,
            max_steps=3,
        )
        device = torch.device(self.loaded.models[0].device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
        threads = torch.get_num_threads()
        how = f"{self.workers} reading workers" if self.workers else "reading in this process"
        where = f"{device.type}: {name}, {threads} torch thread{'s' if threads > 1 else ''}, {how}"
        return {"forward": forward, "reading": reading, "where": where}

    # ---------------------------------------------------------------------------------- run

    def run(self, model_counts: str, progress: Progress, estimate: CostEstimate | None) -> EvaluationResult:
        """Score this rank's chunks (reusing those found finished), gather on rank 0, build the result
        there and return it on every rank; the work folder is removed once the result exists."""
        from ..training import distributed as D
        from .protocol import CropProbabilities, crop_probabilities

        started = time.perf_counter()
        env, names = self.env, [m.name for m in self.loaded.models]
        mine = self.images_of(env.rank)
        local = CropProbabilities({}, names, list(self.schemes), len(mine), self.combine)
        todo, resumed = [], 0
        for c in self.shard:
            rows = self.chunks[c]
            part = self.parts.read(c, rows.start, len(rows)) if self.parts and c in self.done else None
            if part is None:
                todo.append(c)
            else:
                local.place(part, rows.start - mine.start)
                resumed += len(rows)
        images = [self.paths[i] for c in todo for i in self.chunks[c]]
        if self.parts is not None and images:
            self.parts.start()

        def on_chunk(at: int, part: CropProbabilities) -> None:
            chunk = todo[at // self.chunk_images]
            rows = self.chunks[chunk]
            if self.parts is not None:
                self.parts.write(chunk, rows.start, part)
            local.place(part, rows.start - mine.start)

        desc = f"evaluate {'/'.join(self.schemes)} crops"
        if env.is_distributed:
            desc += f" [rank {env.rank} of {env.world_size}]"
        start = time.perf_counter()
        with progress_callback(progress if env.is_main else None, len(images), desc) as update:
            if images:
                crop_probabilities(
                    images,
                    self.loaded.models,
                    self.schemes,
                    self.loaded.data_config,
                    self.combine,  # type: ignore[arg-type]
                    batch_size=self.batch_size,
                    workers=self.workers,
                    progress=update,
                    chunk_size=self.chunk_images,
                    on_chunk=on_chunk,
                )
        record = {
            "rank": env.rank,
            "first_image": mine.start,
            "stop_image": mine.stop,
            "images": len(mine),
            "computed": len(images),
            "resumed": resumed,
            "seconds": round(time.perf_counter() - start, 3),
        }
        full = self._gather(local)
        ranks = D.gather_objects(env, record)
        outcome: EvaluationResult | str | None = None
        if env.is_main:
            assert full is not None and ranks is not None
            if not full.probs:
                first = full.unreadable[0][1] if full.unreadable else "?"
                outcome = f"none of the {len(self.paths)} images could be read (first: {first})"
            else:
                wall = time.perf_counter() - started
                outcome = self._result(full, model_counts, ranks, estimate, wall)
        outcome = D.broadcast_object(env, outcome)
        if isinstance(outcome, str):
            raise GoogLeNetError(outcome)
        assert outcome is not None
        if self.parts is not None:
            D.barrier(env)  # every rank has its share in the result before any part goes
            self.parts.remove()
        return outcome

    def _gather(self, local: Any) -> Any:
        """Every rank's rows on rank 0, one ``(model, scheme)`` at a time (the largest message is one
        array of a rank's share, not all of them); None on the other ranks."""
        from ..training import distributed as D
        from .protocol import CropProbabilities

        env, n = self.env, len(self.paths)
        full = None
        if env.is_main:
            full = CropProbabilities({}, local.model_names, list(self.schemes), n, self.combine)
        shares = [self.images_of(r) for r in range(env.world_size)]
        for key in [(m, s) for m in range(len(self.loaded.models)) for s in self.schemes]:
            got = D.gather_objects(env, local.probs.get(key))
            if full is not None and got is not None:
                for share, rows in zip(shares, got, strict=True):
                    if rows is not None:
                        full.place(CropProbabilities({key: rows}, [], [], len(share)), share.start)
        unreadable = D.gather_objects(env, local.unreadable)
        if full is not None and unreadable is not None:
            for share, found in zip(shares, unreadable, strict=True):
                full.unreadable += [(share.start + i, msg) for i, msg in found]
            full.unreadable.sort()
        return full

    def _result(
        self,
        result: Any,
        model_counts: str,
        ranks: list[dict[str, Any]],
        estimate: CostEstimate | None,
        wall: float,
    ) -> EvaluationResult:
        from .metrics import topk_errors
        from .protocol import paired_effects, table3, table3_spread

        loaded, labels, schemes = self.loaded, self.labels, self.schemes
        rows = table3(result, labels, model_counts=model_counts)  # type: ignore[arg-type]
        k = rows[0].k
        names = ", ".join(m.name for m in loaded.models)
        title = (
            f"Table 3 (section 7) on {len(self.paths)} images of {self.root} [{self.split}], "
            f"{loaded.image_size}px crops, {self.combine} over crops; models: {names}"
        )
        per_model = [
            dict(
                zip(("top1_err", "topk_err"), topk_errors(result.probs[(m, s)], labels, (1, k)), strict=True),
                name=loaded.models[m].name,
                crops=int(s),
            )
            for m in range(len(loaded.models))
            for s in schemes
        ]
        computed = sum(r["computed"] for r in ranks)
        return EvaluationResult(
            rows=rows,
            spread=table3_spread(result, labels) if len(loaded.models) > 1 else [],
            effects=[e.to_dict() for e in paired_effects(result, labels)],
            per_model=per_model,
            checkpoints=loaded.info,
            top_k=k,
            data=str(self.root),
            data_arg=self.data_arg,
            split=self.split,
            layout=self.layout,
            num_images=len(self.paths),
            num_classes=loaded.num_classes,
            class_names=self.classes,
            limit=self.limit,
            image_size=loaded.image_size,
            schemes=[int(s) for s in schemes],
            combine=self.combine,
            model_counts=model_counts,
            backend=self.backend,
            precision=self.precision,
            device=self.device,
            batch_size=self.batch_size,
            chunk_images=self.chunk_images,
            unreadable=[{"index": i, "path": self.paths[i], "error": msg} for i, msg in result.unreadable],
            title=title,
            world_size=self.env.world_size,
            ranks=ranks,
            estimate=estimate.to_dict() if estimate is not None else None,
            wall_time_s=round(wall, 3),
            images_per_s=round(computed / wall, 3) if wall > 0 and computed else None,
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            googlenet_version=__version__,
            torch_version=torch.__version__,
        )


def _work_parts(images: int, crops_per_image: int, measured: dict[str, Any]) -> list[WorkPart]:
    """The forward passes of ``images`` images (each kind of model at its measured throughput) and
    their reading and cropping, added (reading workers overlap the two; the sum is the upper bound)."""
    from ..cost import WorkPart

    parts = [
        WorkPart(label, images * crops_per_image * members, rate, "forward passes")
        for label, members, rate in measured["forward"]
    ]
    parts.append(WorkPart("reading and cropping", images, measured["reading"], "images"))
    return parts


def _one_of(value: Any, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise GoogLeNetError(f"{name} must be one of {', '.join(choices)}. Got {value!r}")


def _check_choices(crops: Sequence[int | str], split: str, layout: str, combine: str) -> list[str]:
    """The crop schemes in crop order, once each; every choice checked."""
    from ..data.multicrop import parse_scheme

    _one_of(split, "split", SPLITS)
    _one_of(layout, "layout", LAYOUTS)
    _one_of(combine, "combine", COMBINES)
    if isinstance(crops, (str, int)):
        crops = [crops]
    try:
        schemes = sorted({parse_scheme(c) for c in crops}, key=int)
    except ValueError as exc:
        raise GoogLeNetError(f"crops: {exc}") from None
    if not schemes:
        raise GoogLeNetError("crops: give at least one crop scheme (1, 10 or 144)")
    return schemes
