"""A detector's evaluation in parts (paper section 8): what it found on some of a split's images.

Scoring a detector (the mAP of Tables 4 and 5) needs every image of the split at once, but running it
(every region of every image through every member) splits by image. :class:`DetectedImages` is
that running's output for some images: per (proposal method, ensemble) run, each image's
detections and the stage times, and per method each image's proposal count and the ground-truth
boxes its proposals cover. :func:`.evaluation.evaluate_detector` builds one for the whole split, or
one per shard (``--shard I/N``, torchrun's ranks), each written as a part
(``<json>.parts/shard-I-of-N.npz``, atomically, keyed by the detector, the data and the settings:
:class:`googlenet.parts.PartsFolder`). :func:`merge_parts` puts the parts back in the split's order, which
the same scoring turns into the result a one-process run gives (apart from the times).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GoogLeNetError
from ..parts import PartsFolder, Shard
from .detector import StageTimes
from .scoring import ScoredBoxes

__all__ = ["DetectedImages", "DetectorShardPart", "evaluation_key", "merge_parts", "write_part"]

PARTS_VERSION = 1  # bumped whenever a part's arrays change meaning


@dataclass
class DetectedImages:
    """What a detector found on ``image_ids`` (some or all of a split's images, in its order).

    ``runs``: ``(proposal method, member indices)`` per run, in the order they are scored;
    ``found[k]``: run ``k``'s ``{image_id: ScoredBoxes}`` and ``times[k]`` its seconds by stage.
    Per method name: ``proposal_counts`` (proposals of each image) and ``covered`` (how many of each
    image's ground-truth boxes a proposal overlaps with IoU >= 0.5), both aligned with
    ``image_ids``; ``backend`` is the members' backend/precision.
    """

    image_ids: list[str]
    backend: str
    runs: list[tuple[str, tuple[int, ...]]]
    found: list[dict[str, ScoredBoxes]]
    times: list[StageTimes]
    proposal_counts: dict[str, list[int]]
    covered: dict[str, list[int]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def proposals_per_image(self, method: str) -> float:
        counts = self.proposal_counts[method]
        return float(np.mean(counts)) if counts else 0.0

    def coverage(self, method: str, ground_truth: int) -> float:
        """Share of the split's ``ground_truth`` boxes some proposal of ``method`` covers (NaN: none),
        as :func:`.proposal_recall.coverage` counts them."""
        return sum(self.covered[method]) / ground_truth if ground_truth else float("nan")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The part's arrays: a JSON header, then per run each image's detections, concatenated."""
        header = {
            "image_ids": self.image_ids,
            "backend": self.backend,
            "runs": [[m, list(c)] for m, c in self.runs],
            "times": [t.to_dict() for t in self.times],
            "proposal_counts": self.proposal_counts,
            "covered": self.covered,
            "unreadable": [list(u) for u in self.unreadable],
        }
        arrays = {"header": np.array(json.dumps(header))}
        for k, found in enumerate(self.found):
            ids = [i for i in self.image_ids if i in found]
            arrays[f"run{k}_ids"] = np.array(ids, dtype=str)
            arrays[f"run{k}_counts"] = np.array([len(found[i]) for i in ids], dtype=np.int64)
            for name in ("boxes", "labels", "scores"):
                pieces = [getattr(found[i], name) for i in ids]
                arrays[f"run{k}_{name}"] = (
                    np.concatenate(pieces) if pieces else np.zeros((0, 4) if name == "boxes" else 0)
                )
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> DetectedImages:
        header = json.loads(str(arrays["header"]))
        found = []
        for k in range(len(header["runs"])):
            ids = [str(i) for i in arrays[f"run{k}_ids"]]
            cuts = np.cumsum(arrays[f"run{k}_counts"])[:-1]
            split = {
                name: np.split(arrays[f"run{k}_{name}"], cuts) if ids else []
                for name in ("boxes", "labels", "scores")
            }
            found.append(
                {
                    i: ScoredBoxes(split["boxes"][n], split["labels"][n], split["scores"][n])
                    for n, i in enumerate(ids)
                }
            )
        return cls(
            image_ids=list(header["image_ids"]),
            backend=header["backend"],
            runs=[(m, tuple(c)) for m, c in header["runs"]],
            found=found,
            times=[StageTimes(**t) for t in header["times"]],
            proposal_counts={m: list(v) for m, v in header["proposal_counts"].items()},
            covered={m: list(v) for m, v in header["covered"].items()},
            unreadable=[(str(i), str(why)) for i, why in header.get("unreadable", [])],
        )


@dataclass(frozen=True)
class DetectorShardPart:
    """What a shard of :func:`.evaluation.evaluate_detector` did: ``images`` of the split's ``total``
    run through the detector (none when its part was there already: ``done_before``), written to
    ``path``; ``shards_left``: the shards of the same count whose parts are not there yet."""

    shard: Shard
    path: Path
    images: int
    total: int
    done_before: bool
    shards_left: list[Shard]


def evaluation_key(**settings: Any) -> str:
    """The parts' key: a JSON string of what decides the detections (the detector and its members'
    weights, the data, the images, the proposal methods, the ensembles, the backend)."""
    return json.dumps({"version": PARTS_VERSION, **settings}, sort_keys=True, default=str)


def images_digest(image_ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(image_ids)).encode()).hexdigest()


def write_part(folder: PartsFolder, shard: Shard, detected: DetectedImages) -> Path:
    """Shard ``shard``'s part, atomically."""
    return folder.write(shard.name, detected.to_arrays())


def read_part(folder: PartsFolder, shard: Shard) -> DetectedImages | None:
    """Shard ``shard``'s part, or None when it is missing or damaged."""
    arrays = folder.read(shard.name)
    return None if arrays is None else DetectedImages.from_arrays(arrays)


def merge_parts(folder: PartsFolder, image_ids: Sequence[str]) -> DetectedImages:
    """Every shard's part in ``folder`` as one :class:`DetectedImages` of ``image_ids`` (the split's,
    in its order): the images of the runs in that order, the stage times summed. A one-line error
    names the shards whose parts are missing, or parts of different shard counts."""
    shards = folder.shards()
    counts = sorted({s.count for s in shards})
    if len(counts) > 1:
        raise GoogLeNetError(
            f"{folder.root} holds parts of {' and '.join(map(str, counts))} shards: keep the parts of one "
            "--shard I/N count (remove the others)"
        )
    count = counts[0]
    parts = {s.index: read_part(folder, s) for s in shards}
    missing = [Shard(i, count) for i in range(count) if parts.get(i) is None]
    if missing:
        raise GoogLeNetError(
            f"{len(missing)} of {count} shards have no part in {folder.root} yet: "
            f"{', '.join(str(s) for s in missing)} (run them with --shard I/N, then merge again)"
        )
    ordered = [parts[i] for i in range(count)]
    first = ordered[0]
    if any(p.runs != first.runs or p.backend != first.backend for p in ordered):
        raise GoogLeNetError(f"the parts in {folder.root} disagree on their runs or backend: make them again")
    have = [i for p in ordered for i in p.image_ids]
    if sorted(have) != sorted(image_ids) or len(set(have)) != len(have):
        raise GoogLeNetError(
            f"the parts in {folder.root} do not hold this split's images once each: make them again"
        )
    position = {image_id: n for n, image_id in enumerate(image_ids)}

    def aligned(attribute: str) -> dict[str, list[int]]:
        """A per-image list of every method, in the split's order."""
        out = {}
        for method, _ in getattr(first, attribute).items():
            by_id = {}
            for part in ordered:
                by_id.update(zip(part.image_ids, getattr(part, attribute)[method], strict=True))
            out[method] = [by_id[i] for i in image_ids]
        return out

    found = []
    for k in range(len(first.runs)):
        merged = {i: b for p in ordered for i, b in p.found[k].items()}
        found.append(dict(sorted(merged.items(), key=lambda item: position[item[0]])))
    return DetectedImages(
        image_ids=list(image_ids),
        backend=first.backend,
        runs=list(first.runs),
        found=found,
        times=[_sum_times([p.times[k] for p in ordered]) for k in range(len(first.runs))],
        proposal_counts=aligned("proposal_counts"),
        covered=aligned("covered"),
        unreadable=sorted((u for p in ordered for u in p.unreadable), key=lambda u: position[u[0]]),
    )


def _sum_times(times: Sequence[StageTimes]) -> StageTimes:
    """The parts' seconds and counts added up, stage by stage and member by member."""
    total = StageTimes()
    for t in times:
        for f in dataclasses.fields(StageTimes):
            if f.name != "member_network":
                setattr(total, f.name, getattr(total, f.name) + getattr(t, f.name))
        pairs = itertools.zip_longest(total.member_network, t.member_network, fillvalue=0.0)
        total.member_network = [a + b for a, b in pairs]
    return total
