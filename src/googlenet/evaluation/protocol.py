"""The paper's test protocol (section 7): crops x models -> softmax probabilities -> Table 3.

Section 7 of Szegedy et al. (2014): each image is seen through several crops (1, 10 or 144,
:mod:`googlenet.data.multicrop`); "the softmax probabilities are averaged over multiple crops and
over all the individual classifiers to obtain the final prediction" ("max pooling over crops and
averaging over classifiers ... lead to inferior performance than the simple averaging", kept here
as ``combine="max"``). Table 3 then reports, for 1 and 7 models and 1, 10 and 144 crops, the cost
(models x crops forward passes per image) and the top-5 error against the 1-model, 1-crop base
(top-k with k = :func:`googlenet.evaluation.metrics.topk_for` of the class count: top-5 from six
classes up, top-(C - 1) with C <= 5 classes).

Two pure steps, so that each can be tested and reused on its own:

* :func:`crop_probabilities` runs any callables (a GoogLeNet, a :class:`googlenet.Predictor`,
  a hand-written ``nn.Module``) over every scheme's crops of every image and returns, per
  ``(model, scheme)``, an ``[num_images, num_classes]`` array of crop-combined probabilities.
  Each model normalises the crops with its own mean/std (ensemble members may differ).
* :func:`table3` turns those arrays and the labels into Table 3's rows.

An image that cannot be read is recorded with its path and reason, its rows are NaN, and
:func:`table3` counts it as wrong (:mod:`googlenet.evaluation.metrics`, the one rule): the
denominator is always the full number of images. :func:`select_images` is the one choice of which
images a capped run (``evaluate --limit``, ``report --max-images``) looks at.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import PIL.Image
import torch
import torch.utils.data

from ..data.config import DataConfig
from ..data.datasets import select_images
from ..data.multicrop import multicrop, normalize_crops, num_crops, parse_scheme
from ..errors import GoogLeNetError
from .metrics import topk_errors, topk_for

__all__ = [
    "CropProbabilities",
    "EvalModel",
    "SpreadRow",
    "Table3Row",
    "check_class_names",
    "check_models_fit_data",
    "crop_probabilities",
    "ensemble_probabilities",
    "model_probabilities",
    "rank_models",
    "select_images",
    "table3",
    "table3_spread",
]

Combine = Literal["mean", "max"]
DEFAULT_BATCH = 144  # crops per forward pass: one 144-crop image, or 144 single-crop images
Image = str | Path | PIL.Image.Image | torch.Tensor


@dataclass(frozen=True)
class EvalModel:
    """A classifier as the protocol sees it: ``forward`` maps a normalised float batch
    ``N x 3 x S x S`` to logits ``N x C``; the crops are normalised as ``(x - mean) / std`` first,
    on ``device`` (the uint8 crops travel there, a quarter of the bytes of floats)."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: str = "cpu"

    @classmethod
    def from_model(
        cls,
        model: Any,
        name: str | None = None,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str | None = None,
    ) -> EvalModel:
        """From a GoogLeNet (its ``meta`` gives the preprocessing); ``forward`` defaults to the model
        and ``device`` to the model's parameters' device."""
        meta = model.meta
        if meta.channel_order != "RGB":
            raise ValueError(f"only RGB channel order is supported. Got {meta.channel_order!r}")
        if device is None:
            device = str(next(model.parameters()).device) if forward is None else "cpu"
        return cls(name or meta.variant, forward or model, tuple(meta.mean), tuple(meta.std), device)


@dataclass
class CropProbabilities:
    """Output of :func:`crop_probabilities`.

    ``probs[(m, scheme)]``: ``[num_images, num_classes]`` float32, model ``m``'s probabilities
    combined over the scheme's crops (rows of unreadable images are NaN). ``unreadable``:
    ``(image index, message naming the file)``.
    """

    probs: dict[tuple[int, str], torch.Tensor]
    model_names: list[str]
    schemes: list[str]
    num_images: int
    combine: str = "mean"
    unreadable: list[tuple[int, str]] = field(default_factory=list)

    def place(self, part: CropProbabilities, first: int) -> None:
        """Copy ``part`` (the probabilities of images ``first`` to ``first + part.num_images``: a chunk,
        a torchrun rank's share) into these rows, its unreadable images with them."""
        if first < 0 or first + part.num_images > self.num_images:
            raise ValueError(f"rows {first}..{first + part.num_images} lie outside {self.num_images} images")
        for key, rows in part.probs.items():
            if key not in self.probs:
                self.probs[key] = torch.full((self.num_images, rows.shape[-1]), math.nan)
            self.probs[key][first : first + part.num_images] = rows
        self.unreadable += [(first + i, msg) for i, msg in part.unreadable]


@dataclass(frozen=True)
class Table3Row:
    """One row of Table 3: errors are fractions (0.0789 = 7.89%); deltas are against the base row.

    ``k``: the top-k of ``topk_error`` (:func:`.metrics.topk_for`: 5, or one less than the classes
    with five classes or fewer). ``top1_error``
    and the deltas may be None in a hand-written table (left empty when printed).
    """

    models: int
    crops: int
    cost: int
    topk_error: float
    top1_error: float | None
    delta_topk: float | None
    delta_top1: float | None
    model_names: tuple[str, ...] = ()
    k: int = 5

    def to_dict(self, *, base: bool = False) -> dict[str, Any]:
        """The JSON form (``googlenet evaluate --json``): keys models, crops, cost, topk_err, top1_err,
        delta_topk, delta_top1 (null on the base row), model_names; the k is the file's ``top_k``."""
        return {
            "models": self.models,
            "crops": self.crops,
            "cost": self.cost,
            "topk_err": self.topk_error,
            "top1_err": self.top1_error,
            "delta_topk": None if base else self.delta_topk,
            "delta_top1": None if base else self.delta_top1,
            "model_names": list(self.model_names),
        }


def _identity(item: Any) -> Any:
    return item


class CropViews(torch.utils.data.Dataset):
    """Image ``i`` -> ``(i, {scheme: uint8 crops})``, or ``(i, message)`` when it cannot be read.

    A Dataset so that decoding and cropping can run in DataLoader workers; uint8 crops are a
    quarter of the float bytes to pass between processes.
    """

    def __init__(
        self,
        images: Sequence[Image],
        schemes: Sequence[str],
        size: int | DataConfig,
        load: Callable[[str | Path], PIL.Image.Image],
    ) -> None:
        self.images, self.schemes, self.size, self.load = images, schemes, size, load

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, dict[str, torch.Tensor] | str]:
        image = self.images[index]
        try:
            pixels = self.load(image) if isinstance(image, (str, Path)) else image
        except OSError as exc:  # open_image raises UnreadableImageError (an OSError) naming the file
            return index, " ".join(str(exc).split())
        try:
            return index, {s: multicrop(pixels, s, self.size, dtype=torch.uint8) for s in self.schemes}
        except ValueError as exc:  # e.g. too elongated to resize; one bad image must not stop the run
            name = image if isinstance(image, (str, Path)) else f"#{index}"
            return index, f"unusable image {name}: {exc}"


def crop_probabilities(
    images: Sequence[Image],
    models: Sequence[EvalModel],
    schemes: Sequence[str | int],
    size: int | DataConfig,
    combine: Combine = "mean",
    *,
    batch_size: int = 128,
    workers: int = 0,
    load: Callable[[str | Path], PIL.Image.Image] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
    on_chunk: Callable[[int, CropProbabilities], object] | None = None,
) -> CropProbabilities:
    """Crop-combined softmax probabilities for every ``(model, scheme)``.

    Each image is decoded once (``load``, default :func:`googlenet.data.datasets.open_image`, for
    paths; PIL images and ``3 x H x W`` uint8 tensors are used as given) and cut into every
    scheme's crops once (``size``: the crop side, or the models' shared
    :class:`googlenet.data.config.DataConfig`,
    :attr:`googlenet.evaluation.loading.LoadedModels.data_config`); the crops of whole images are
    gathered into batches of at most ``batch_size`` crops (one image's crops always share a batch,
    so a 144-crop image makes a batch of its own when ``batch_size < 144``) and every model runs on
    the same batch.
    ``combine``: ``"mean"`` (the paper) or ``"max"`` over crops, per class, not renormalised.
    ``workers`` > 0 decodes and crops in that many DataLoader worker processes. ``progress(n)``
    is called after every ``n`` images.

    ``chunk_size``: no batch mixes images of two chunks (runs of ``chunk_size`` images from the
    first). The kernels may round an image's logits differently in a batch of another size (on
    CPUs a batch of one image differs from a batch of three in the last bits), so an image's
    probabilities are a function of its chunk alone: a process given any run of whole chunks
    computes the same bytes as one given them all (torchrun shards, a resumed evaluation).
    ``on_chunk(first, part)`` is called as each chunk completes, ``first`` the index of its first
    image here, ``part`` its rows alone (unreadable indices counted from the chunk's start; an
    ``(m, scheme)`` is missing while no image so far could be read).
    """
    if load is None:
        from ..data.datasets import open_image as load
    schemes = [parse_scheme(s) for s in schemes]
    if not schemes or len(set(schemes)) != len(schemes):
        raise ValueError(f"schemes must be non-empty and distinct. Got {schemes!r}")
    if not models:
        raise ValueError("at least one model is needed")
    if combine not in ("mean", "max"):
        raise ValueError(f"combine must be 'mean' or 'max'. Got {combine!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1. Got {batch_size!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1. Got {chunk_size!r}")
    result = CropProbabilities({}, [m.name for m in models], list(schemes), len(images), combine)
    pending: dict[str, list[tuple[int, torch.Tensor]]] = {s: [] for s in schemes}

    def flush(scheme: str) -> None:
        items = pending[scheme]
        if not items:
            return
        pending[scheme] = []
        rows = torch.tensor([i for i, _ in items])
        crops = torch.cat([c for _, c in items]) if len(items) > 1 else items[0][1]  # uint8
        per_image = num_crops(scheme)
        on_device = {"cpu": crops}
        for m, model in enumerate(models):
            if model.device not in on_device:
                on_device[model.device] = crops.to(model.device, non_blocking=True)
            probs = model_probabilities(model, on_device[model.device]).view(len(items), per_image, -1)
            combined = probs.mean(1) if combine == "mean" else probs.amax(1)
            out = result.probs.get((m, scheme))
            if out is None:
                out = torch.full((len(images), combined.shape[-1]), math.nan)
                result.probs[(m, scheme)] = out
            elif out.shape[-1] != combined.shape[-1]:
                raise ValueError(
                    f"model {model.name} gives {combined.shape[-1]} classes, expected {out.shape[-1]}"
                )
            out[rows] = combined

    views = CropViews(images, schemes, size, load)
    loader: Any = views
    if workers > 0:
        loader = torch.utils.data.DataLoader(
            views, batch_size=None, num_workers=workers, collate_fn=_identity
        )
    size_of_chunk = chunk_size or max(1, len(images))

    def finish_chunk(chunk: int) -> None:
        for scheme in schemes:
            flush(scheme)
        if on_chunk is None:
            return
        first, stop = chunk * size_of_chunk, min((chunk + 1) * size_of_chunk, len(images))
        part = CropProbabilities(
            {key: probs[first:stop].clone() for key, probs in result.probs.items()},
            result.model_names,
            result.schemes,
            stop - first,
            combine,
            [(i - first, msg) for i, msg in result.unreadable if first <= i < stop],
        )
        on_chunk(first, part)

    chunk = 0
    for index, item in loader:
        if index // size_of_chunk != chunk:
            finish_chunk(chunk)
            chunk = index // size_of_chunk
        if isinstance(item, str):
            result.unreadable.append((index, item))
        else:
            for scheme, crops in item.items():
                queued = sum(len(c) for _, c in pending[scheme])
                if queued and queued + len(crops) > batch_size:
                    flush(scheme)
                pending[scheme].append((index, crops))
        if progress is not None:
            progress(1)
    if images:
        finish_chunk(chunk)
    # Every image unreadable: no forward ran, so the class count is unknown; leave probs empty.
    return result


def model_probabilities(model: EvalModel, crops: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float32, on the CPU) of ``model`` for a batch of uint8 crops already on
    its device: normalised with the model's mean / std, run without autograd. The one forward step
    of the protocol, also what a cost estimate times (:func:`googlenet.cost.measure_throughput`)."""
    with torch.inference_mode():
        logits = model.forward(normalize_crops(crops, model.mean, model.std))
    return torch.softmax(logits.detach().to("cpu", torch.float32), dim=-1)


def ensemble_probabilities(
    probs: Mapping[tuple[int, str], torch.Tensor] | CropProbabilities,
    scheme: str,
    models: Sequence[int] | None = None,
) -> torch.Tensor:
    """Section 7's ensemble: the probabilities of ``models`` (default: all) at ``scheme``, averaged."""
    if isinstance(probs, CropProbabilities):
        probs = probs.probs
    if models is None:
        models = sorted({m for m, s in probs if s == scheme})
    if not models:
        raise ValueError(f"no probabilities at scheme {scheme!r}")
    return torch.stack([probs[(m, scheme)] for m in models]).mean(0)


def rank_models(
    probs: Mapping[tuple[int, str], torch.Tensor], labels: torch.Tensor, scheme: str
) -> list[int]:
    """Model indices, best first by top-1 error at ``scheme`` (then top-k, then index)."""
    models = sorted({m for m, s in probs if s == scheme})
    ks = (1, topk_for(next(iter(probs.values())).shape[-1]))
    scores = {m: topk_errors(probs[(m, scheme)], labels, ks) for m in models}
    return sorted(models, key=lambda m: (scores[m][0], scores[m][1], m))


def _tabulation_inputs(
    probs: Mapping[tuple[int, str], torch.Tensor] | CropProbabilities, labels: torch.Tensor | Sequence[int]
) -> tuple[Mapping[tuple[int, str], torch.Tensor], torch.Tensor, list[str], list[int]]:
    """``(probs, labels, schemes in crop order, model indices)`` for :func:`table3` and
    :func:`table3_spread`."""
    if isinstance(probs, CropProbabilities):
        probs = probs.probs
    if not probs:
        raise ValueError("no probabilities to tabulate (were all images unreadable?)")
    schemes = sorted({s for _, s in probs}, key=num_crops)
    models = sorted({m for m, _ in probs})
    return probs, torch.as_tensor(labels).long(), schemes, models


def table3(
    probs: Mapping[tuple[int, str], torch.Tensor] | CropProbabilities,
    labels: torch.Tensor | Sequence[int],
    *,
    model_counts: Sequence[int] | Literal["paper", "every"] = "paper",
    model_names: Sequence[str] | None = None,
) -> list[Table3Row]:
    """Table 3's rows from crop-combined probabilities.

    Schemes are taken in crop order (1, 10, 144). For ``k`` models the ``k`` best single models are
    used (ranked by top-1 error at the cheapest scheme, :func:`rank_models`) and their
    probabilities averaged; ``k = 1`` is the best single model. ``model_counts``: ``"paper"`` =
    1 and all (Table 3's 1 and 7), ``"every"`` = 1, 2, ..., all, or explicit counts. Cost = models x
    crops forward passes per image. The base row is 1 model at the cheapest scheme (Table 3's
    "base"); rows come grouped by models, then crops, as in the paper.
    """
    if isinstance(probs, CropProbabilities):
        model_names = model_names or probs.model_names
    probs, labels, schemes, models = _tabulation_inputs(probs, labels)
    missing = [(m, s) for m in models for s in schemes if (m, s) not in probs]
    if missing:
        raise ValueError(f"probabilities missing for (model, scheme) {missing[0]}")
    ranking = rank_models(probs, labels, schemes[0])
    total = len(models)
    if model_counts == "paper":
        counts = sorted({1, total})
    elif model_counts == "every":
        counts = list(range(1, total + 1))
    else:
        counts = sorted(set(model_counts))
        if not counts or counts[0] < 1 or counts[-1] > total:
            raise ValueError(f"model counts must lie in 1..{total}. Got {list(model_counts)!r}")
    k = _top_k(probs)
    rows: list[Table3Row] = []
    base: list[float] | None = None
    for count in counts:
        chosen = ranking[:count]
        for scheme in schemes:
            top1, topk = topk_errors(ensemble_probabilities(probs, scheme, chosen), labels, (1, k))
            if base is None:
                base = [topk, top1]
            names = tuple(model_names[m] for m in chosen) if model_names else tuple(str(m) for m in chosen)
            crops = num_crops(scheme)
            rows.append(
                Table3Row(count, crops, count * crops, topk, top1, topk - base[0], top1 - base[1], names, k)
            )
    return rows


Z_975 = 1.959964  # the normal 97.5% quantile: the paired interval's half-width in standard errors
BOOTSTRAP_DRAWS = 10_000


@dataclass(frozen=True)
class PairedEffect:
    """One of the paper's effects measured on the same images: ``mean`` is the mean per-image drop
    in top-1 error (a fraction; positive = the second setting is better), with a paired normal
    interval (mean +- 1.96 standard errors of the per-image differences; the t quantile differs from
    it by under 2% for n >= 60) and a paired bootstrap interval (images resampled, seeded)."""

    name: str
    mean: float
    low: float
    high: float
    boot_low: float
    boot_high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """Both intervals on one side of zero: the effect is not noise of these images."""
        return min(self.low, self.boot_low) > 0 or max(self.high, self.boot_high) < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def _paired(name: str, d: torch.Tensor, *, draws: int, seed: int) -> PairedEffect:
    n = d.numel()
    mean = float(d.mean())
    half = Z_975 * float(d.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("inf")
    generator = torch.Generator().manual_seed(seed)
    means = d[torch.randint(0, n, (draws, n), generator=generator)].mean(1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975])).tolist()
    return PairedEffect(name, mean, mean - half, mean + half, low, high, n)


def paired_effects(
    probs: Mapping[tuple[int, str], torch.Tensor] | CropProbabilities,
    labels: torch.Tensor | Sequence[int],
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> list[PairedEffect]:
    """Table 3's two effects with paired intervals over the same images (section 7):

    * the most crops vs the fewest: the mean single model's per-image top-1 error, fewest minus most;
    * the ensemble of every model vs the mean member, at each crop scheme (with two or more models).

    Unreadable images (NaN rows) count as errors in every setting, so they add nothing to a difference.
    """
    probs, labels, schemes, models = _tabulation_inputs(probs, labels)

    def errors(p: torch.Tensor) -> torch.Tensor:
        return (p.nan_to_num(-1.0).argmax(1) != labels).float()

    member = {s: torch.stack([errors(probs[(m, s)]) for m in models]).mean(0) for s in schemes}
    effects = []
    if len(schemes) > 1:
        first, last = schemes[0], schemes[-1]
        name = f"{last} vs {first} crops, mean single model"
        effects.append(_paired(name, member[first] - member[last], draws=draws, seed=seed))
    if len(models) > 1:
        for s in schemes:
            ensemble = errors(ensemble_probabilities(probs, s, models))
            name = f"{len(models)}-model ensemble vs mean member, {s} crops"
            effects.append(_paired(name, member[s] - ensemble, draws=draws, seed=seed))
    return effects


def _top_k(probs: Mapping[tuple[int, str], torch.Tensor]) -> int:
    return topk_for(next(iter(probs.values())).shape[-1])


@dataclass(frozen=True)
class SpreadRow:
    """Errors over every ``models``-subset of the ensemble at one crop scheme: mean, sample standard
    deviation (0 for a single subset), min and max, as fractions; ``k`` is the top-k of ``topk_*``."""

    models: int
    crops: int
    subsets: int
    topk_mean: float
    topk_std: float
    top1_mean: float
    top1_std: float
    top1_min: float
    top1_max: float
    k: int = 5

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the k is the file's ``top_k``."""
        d = asdict(self)
        del d["k"]
        return d


def table3_spread(
    probs: Mapping[tuple[int, str], torch.Tensor] | CropProbabilities,
    labels: torch.Tensor | Sequence[int],
    max_subsets: int = 256,
) -> list[SpreadRow]:
    """Table 3 without choosing on the test set: for ``k`` models, the mean and spread of the errors
    of *every* ``k``-subset of the members (``C(n, k)`` ensembles; the first ``max_subsets`` in
    lexicographic order when there are more), at every scheme.

    Table 3's own 1-model rows use the best member, picked on the very images being scored, which
    flatters single models; with members that differ only in their seed, these rows are the mean and
    spread over seeds that the paper's single numbers hide.
    """
    probs, labels, schemes, models = _tabulation_inputs(probs, labels)
    k = _top_k(probs)
    rows: list[SpreadRow] = []
    for count in range(1, len(models) + 1):
        subsets = list(itertools.islice(itertools.combinations(models, count), max_subsets))
        for scheme in schemes:
            errors = [
                topk_errors(ensemble_probabilities(probs, scheme, subset), labels, (1, k))
                for subset in subsets
            ]
            top1 = [e[0] for e in errors]
            topk = [e[1] for e in errors]
            n = len(errors)
            rows.append(
                SpreadRow(
                    models=count,
                    crops=num_crops(scheme),
                    subsets=n,
                    topk_mean=statistics.fmean(topk),
                    topk_std=statistics.stdev(topk) if n > 1 else 0.0,
                    top1_mean=statistics.fmean(top1),
                    top1_std=statistics.stdev(top1) if n > 1 else 0.0,
                    top1_min=min(top1),
                    top1_max=max(top1),
                    k=k,
                )
            )
    return rows


def check_class_names(
    model_names: Sequence[str] | None,
    data_names: Sequence[str],
    *,
    model: str,
    data: str,
    allow_mismatch: bool = False,
) -> None:
    """Refuse to score a model on a data set whose classes differ.

    Class ``i`` of the model is scored against class ``i`` of the data, so when the model records
    its class names they must equal the data's, in order and case; ``allow_mismatch`` maps
    differing names by position (the counts must still agree). A model without names is checked
    on the count alone. Errors show both lists.
    """
    data_names = list(data_names)
    if model_names is None or list(model_names) == data_names:
        return
    model_names = list(model_names)
    same_count = len(model_names) == len(data_names)
    if same_count and allow_mismatch:
        return
    hint = "; pass --allow-class-mismatch to map the classes by position" if same_count else ""
    raise GoogLeNetError(
        f"{model} was trained on the classes [{_shown(model_names)}] but {data} has [{_shown(data_names)}]"
        + hint
    )


def check_models_fit_data(
    loaded: Any, classes: Sequence[str], *, model: str, data: str, allow_mismatch: bool = False
) -> None:
    """The models predict as many classes as ``data`` has, with the same names (:func:`check_class_names`)."""
    if loaded.num_classes != len(classes):
        raise GoogLeNetError(f"{model} predicts {loaded.num_classes} classes but {data} has {len(classes)}")
    check_class_names(loaded.class_names, classes, model=model, data=data, allow_mismatch=allow_mismatch)


def _shown(names: Sequence[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
