"""GoogLeNet's detector (paper section 8): proposals -> warped regions -> an ensemble of Inception
region classifiers -> per-class NMS.

A detector directory (``googlenet train-detector --out DIR``, layout in :mod:`googlenet.runs`) holds
``detector.json`` (the manifest: the members' run directories, the proposal method and its
settings, the object class names, the scoring settings, the input size) and one training run per
member. :class:`Detector` loads it and runs the whole pipeline on an image or a dataset; every
region of an image goes through :class:`googlenet.Predictor` in batches, so onnxruntime, OpenVINO
and int8 serve detection as they serve classification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ..errors import GoogLeNetError
from ..manifest import ManifestFormat
from ..runs import DetectorLayout, RunLayout, read_run_config
from .proposals import ProposalMethod, propose
from .regions import normalise, warp_regions
from .scoring import (
    ScoredBoxes,
    ScoringSettings,
    detections_from_scores,
    mean_probabilities,
    region_probabilities,
)

DETECTOR_MANIFEST = ManifestFormat(
    "googlenet-detector", 1, "googlenet detector manifest", "googlenet train-detector"
)
PAPER_DETECTOR_MEMBERS = 6  # section 8: "an ensemble of 6 ConvNets"
REGION_BATCH = 128  # regions per network call


@dataclass
class DetectorManifest:
    """What ``detector.json`` records: enough to rebuild the detector with nothing else."""

    class_names: list[str]
    members: list[str]  # run directories, relative to the detector directory
    proposals: dict[str, Any]  # ProposalMethod.settings()
    scoring: dict[str, Any] = field(default_factory=lambda: ScoringSettings().to_dict())
    image_size: int = 224
    variant: str = "googlenet"
    data: str | None = None  # absolute (train-detector resolves it), or "builtin"
    init_from: str | None = None
    class_source: str | None = None  # where class_names came from (a file, the splits' names, ...)
    unreadable_images: dict[str, list[str]] = field(default_factory=dict)  # split -> images left out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "detector.json") -> DetectorManifest:
        data = DETECTOR_MANIFEST.check(data, where)
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(n for n in ("class_names", "members", "proposals") if n not in data)
        if missing:
            raise GoogLeNetError(f"{where}: missing key(s) {', '.join(missing)}")
        manifest = cls(**{k: v for k, v in data.items() if k in names})
        if not manifest.members or not all(isinstance(m, str) for m in manifest.members):
            raise GoogLeNetError(f"{where}: members must be a non-empty list of run directories")
        return manifest

    def proposal_method(self) -> ProposalMethod:
        settings = dict(self.proposals)
        settings["ks"] = tuple(settings.get("ks", ()))
        return ProposalMethod(**settings)

    def scoring_settings(self) -> ScoringSettings:
        return ScoringSettings(**self.scoring)


def write_manifest(directory: str | Path, manifest: DetectorManifest) -> Path:
    """``DIR/detector.json``, atomically."""
    return DETECTOR_MANIFEST.write(DetectorLayout(directory).manifest, dict(manifest.__dict__))


def read_manifest(directory: str | Path) -> DetectorManifest:
    """The manifest of a detector directory; errors say what the folder is instead."""
    layout = DetectorLayout(directory)
    if not layout.root.is_dir():
        what = "a file" if layout.root.exists() else "missing"
        raise GoogLeNetError(
            f"detector {layout.root} is {what}: pass the folder given to train-detector --out"
        )
    if not layout.is_detector():
        why = (
            "train-detector has not finished there (run the same command again to continue it)"
            if layout.is_unfinished()
            else "it is not a detector (made by googlenet train-detector)"
        )
        raise GoogLeNetError(f"{layout.root} holds no {layout.manifest.name}: {why}")
    manifest = DetectorManifest.from_json(DETECTOR_MANIFEST.read(layout.manifest), str(layout.manifest))
    if manifest.data not in (None, "builtin") and not Path(manifest.data).is_absolute():
        # Written before the path was stored absolute: relative to where train-detector ran, which
        # the members' config.yaml recorded absolutely.
        saved = read_run_config(layout.root / manifest.members[0]).get("data")
        manifest.data = str(saved) if saved else manifest.data
    return manifest


STAGES = ("proposals", "warp", "network", "nms")  # a detector's stages, in order


@dataclass
class StageTimes:
    """Seconds spent per stage (summed over images), for the cost tables of docs/detection.md.

    ``scoring`` is the ensemble average and per-class NMS (reported as ``nms``); ``member_network``
    splits ``network`` by member, so that the cost of the first k members can be told apart.
    """

    proposals: float = 0.0
    warp: float = 0.0
    network: float = 0.0
    scoring: float = 0.0
    images: int = 0
    regions: int = 0
    member_network: list[float] = field(default_factory=list)

    def add_network(self, member: int, seconds: float) -> None:
        """Count ``seconds`` of member ``member``'s network."""
        self.network += seconds
        self.member_network.extend([0.0] * (member + 1 - len(self.member_network)))
        self.member_network[member] += seconds

    def seconds_per_image(self, stages: Sequence[str] = STAGES) -> dict[str, float]:
        """Seconds per image of each of ``stages`` (of :data:`STAGES`), over the images counted."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; the stages are {', '.join(STAGES)}")
        n = max(self.images, 1)
        totals = {"proposals": self.proposals, "warp": self.warp, "network": self.network}
        totals["nms"] = self.scoring
        return {stage: totals[stage] / n for stage in stages}

    def regions_per_image(self) -> float:
        return self.regions / max(self.images, 1)

    def overhead_ratio(self) -> float:
        """(warping + NMS and bookkeeping) / the network's own time."""
        return (self.warp + self.scoring) / self.network if self.network > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "member_network": list(self.member_network)}


@dataclass(frozen=True)
class FileDetections:
    """What :meth:`Detector.detect_files` gives for one file: the image and its detections, or why
    the file could not be read (``error``, one line naming it)."""

    path: str
    image: Any = None  # the decoded PIL image (None when unreadable)
    found: ScoredBoxes | None = None
    error: str | None = None

    @property
    def image_id(self) -> str:
        """The file's stem: the id of its annotation file in VOC, ILSVRC DET and COCO folders."""
        return Path(self.path).stem


class Detector:
    """Section 8's detector: ``detect(image)`` -> :class:`ScoredBoxes` (labels index ``class_names``).

    ``models`` are the member region classifiers (``N + 1`` outputs, output 0 = background), all of
    one variant and input size; ``predictor_options`` go to :class:`googlenet.Predictor` (backend,
    precision, threads, ...).
    """

    def __init__(
        self,
        models: Sequence[Any],
        class_names: Sequence[str],
        proposals: ProposalMethod,
        *,
        image_size: int,
        scoring: ScoringSettings | None = None,
        batch_size: int = REGION_BATCH,
        **predictor_options: Any,
    ) -> None:
        from ..inference.predictor import Predictor

        if not models:
            raise GoogLeNetError("a detector needs at least one member model")
        outputs = {int(m.meta.num_classes) for m in models}
        if outputs != {len(class_names) + 1}:
            raise GoogLeNetError(
                f"members have {sorted(outputs)} outputs; a detector of {len(class_names)} classes needs "
                f"{len(class_names) + 1} (the classes + background)"
            )
        norms = {(tuple(m.meta.mean), tuple(m.meta.std)) for m in models}
        if len(norms) != 1:
            raise GoogLeNetError("members disagree on their input normalisation (mean/std)")
        ((mean, std),) = norms
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.class_names = list(class_names)
        self.method = proposals
        self.image_size = image_size
        self.scoring = scoring or ScoringSettings()
        self.batch_size = batch_size
        self.predictors = [Predictor(m, image_size=image_size, **predictor_options) for m in models]
        self.times = StageTimes(member_network=[0.0] * len(self.predictors))
        # image path -> why it could not be decoded, for the images of dataset_probabilities (their
        # objects are missed: no regions, no detections)
        self.unreadable: dict[str, str] = {}

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        members: int | None = None,
        proposals: ProposalMethod | None = None,
        scoring: ScoringSettings | None = None,
        **predictor_options: Any,
    ) -> Detector:
        """The detector in ``directory`` with its first ``members`` members (default: all)."""
        from ..weights.store import load_weights

        manifest = read_manifest(directory)
        names = manifest.members
        if members is not None:
            if not 1 <= members <= len(names):
                raise GoogLeNetError(
                    f"--members {members}: the detector {directory} has {len(names)} member(s)"
                )
            names = names[:members]
        models = []
        for name in names:
            weights = RunLayout(Path(directory) / name).weights
            if not weights.is_file():
                raise GoogLeNetError(
                    f"detector {directory}: member {name} has no weights ({weights} is missing)"
                )
            models.append(load_weights(weights))
        return cls(
            models,
            manifest.class_names,
            proposals or manifest.proposal_method(),
            image_size=manifest.image_size,
            scoring=scoring or manifest.scoring_settings(),
            **predictor_options,
        )

    def __repr__(self) -> str:
        p = self.predictors[0]
        return (
            f"Detector({len(self.predictors)} member(s), {len(self.class_names)} classes, proposals "
            f"{self.method.name}, {self.image_size} px, backend {p.backend}/{p.precision})"
        )

    # -- the pipeline -------------------------------------------------------------------------

    def regions(self, image: Any, boxes: np.ndarray | None = None) -> tuple[np.ndarray, torch.Tensor]:
        """``(boxes, warped regions)`` of one RGB image (PIL or H x W x 3 uint8)."""
        array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
        if boxes is None:
            t0 = time.perf_counter()
            boxes = propose(array, self.method)
            self.times.proposals += time.perf_counter() - t0
        t0 = time.perf_counter()
        warped = warp_regions(normalise(array, self.mean, self.std), boxes, self.image_size)
        self.times.warp += time.perf_counter() - t0
        return boxes, warped

    def member_probabilities(self, warped: torch.Tensor) -> list[torch.Tensor]:
        """Each member's softmax over the warped regions (``R x (N + 1)``, float32), in member order.

        The one place the members' networks run; their seconds go to ``times.network`` (and
        ``times.member_network``). Any subset of these is scored by :meth:`combine`.
        """
        out = []
        for i, predictor in enumerate(self.predictors):
            t0 = time.perf_counter()
            if len(warped):
                logits = torch.cat([predictor(chunk) for chunk in warped.split(self.batch_size)])
            else:
                logits = torch.zeros(0, len(self.class_names) + 1)
            out.append(region_probabilities(logits))
            self.times.add_network(i, time.perf_counter() - t0)
        return out

    def combine(
        self, boxes: np.ndarray, probabilities: Sequence[torch.Tensor], *, times: StageTimes | None = None
    ) -> ScoredBoxes:
        """One image's detections from its members' ``probabilities`` (all of them, or a subset: the
        ensemble of those members): their mean, then per-class NMS. Counts the image, its regions
        and the seconds of this step in ``times`` (default ``self.times``)."""
        times = self.times if times is None else times
        t0 = time.perf_counter()
        result = detections_from_scores(mean_probabilities(probabilities), boxes, self.scoring)
        times.scoring += time.perf_counter() - t0
        times.images += 1
        times.regions += len(boxes)
        return result

    def score(self, boxes: np.ndarray, warped: torch.Tensor) -> ScoredBoxes:
        """Classify warped regions with every member, average the softmaxes, NMS."""
        return self.combine(boxes, self.member_probabilities(warped))

    def detect(self, image: Any, boxes: np.ndarray | None = None) -> ScoredBoxes:
        """The detections of one image (``boxes``: precomputed proposals, else the detector's method)."""
        return self.score(*self.regions(image, boxes))

    def detect_files(self, paths: Iterable[str | Path]) -> Iterator[FileDetections]:
        """Each image file's detections, one file after another; a file that cannot be decoded gives
        its one-line error and the others are still processed."""
        from ..data.datasets import UnreadableImageError, open_image

        for path in paths:
            try:
                image = open_image(path)
            except UnreadableImageError as exc:
                yield FileDetections(str(path), error=str(exc))
                continue
            yield FileDetections(str(path), image, self.detect(image))

    def dataset_probabilities(
        self,
        dataset: Any,
        proposals: Mapping[str, np.ndarray],
        *,
        workers: int = 0,
        progress: Callable[[int], object] | None = None,
    ) -> Iterator[tuple[str, np.ndarray, list[torch.Tensor]]]:
        """``(image_id, boxes, member probabilities)`` for every image of ``dataset`` (a
        DetectionDataset), in its order, from cached ``proposals`` (:meth:`member_probabilities`).
        An image that cannot be decoded has no regions (so no detections) and is added to
        ``unreadable``.

        Decoding and warping run in ``workers`` DataLoader processes while this one runs the network.
        """
        warper = _Warper(dataset, proposals, self.mean, self.std, self.image_size)
        loader = torch.utils.data.DataLoader(
            warper,
            batch_size=None,
            num_workers=workers,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )
        t_wait = time.perf_counter()
        for image_id, boxes, warped, seconds, unreadable in loader:
            if unreadable is not None:
                self.unreadable[str(unreadable[0])] = str(unreadable[1])
            # With workers the warp happens elsewhere: count what this process waited for it.
            self.times.warp += seconds if workers == 0 else time.perf_counter() - t_wait
            yield image_id, boxes, self.member_probabilities(warped)
            if progress is not None:
                progress(1)
            t_wait = time.perf_counter()

    def detect_dataset(
        self,
        dataset: Any,
        proposals: Mapping[str, np.ndarray],
        *,
        workers: int = 0,
        progress: Callable[[int], object] | None = None,
    ) -> dict[str, ScoredBoxes]:
        """Detections for every image of ``dataset`` (a DetectionDataset) from cached ``proposals``.

        Decoding and warping run in ``workers`` DataLoader processes while this one runs the network.
        """
        return {
            image_id: self.combine(boxes, probabilities)
            for image_id, boxes, probabilities in self.dataset_probabilities(
                dataset, proposals, workers=workers, progress=progress
            )
        }


class _Warper(torch.utils.data.Dataset):
    """Item ``i``: image ``i``'s id, proposals and warped regions (decoded and warped in a worker)."""

    def __init__(
        self,
        dataset: Any,
        proposals: Mapping[str, np.ndarray],
        mean: torch.Tensor,
        std: torch.Tensor,
        size: int,
    ) -> None:
        self.dataset, self.proposals, self.mean, self.std, self.size = dataset, proposals, mean, std, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, torch.Tensor, float, tuple[str, str] | None]:
        """Image ``i``'s id, boxes, warped regions, seconds, and ``(path, why)`` when it cannot be
        decoded (then no boxes and no regions)."""
        t0 = time.perf_counter()
        try:
            image, target = self.dataset[i]
        except GoogLeNetError as exc:  # DetectionDataset's one line naming the file
            image_id = self.dataset.target(i).image_id
            empty = torch.zeros((0, 3, self.size, self.size))
            return (
                image_id,
                np.zeros((0, 4)),
                empty,
                time.perf_counter() - t0,
                (str(self.dataset.image_path(i)), str(exc)),
            )
        boxes = np.asarray(self.proposals.get(target.image_id, np.zeros((0, 4))), dtype=np.float64).reshape(
            -1, 4
        )
        warped = warp_regions(normalise(image, self.mean, self.std), boxes, self.size)
        return target.image_id, boxes, warped, time.perf_counter() - t0, None
