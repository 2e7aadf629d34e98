"""Region proposals for the R-CNN-style detector (paper section 8): Selective Search and MultiBox.

GoogLeNet's detector classifies the regions of "the selective search approach ... combined with
multi-box predictions": Selective Search in R-CNN's "fast mode" with the superpixel size doubled
("this halves the proposals"), plus 200 MultiBox boxes (Erhan et al. 2014). Methods by name:

- ``selective-search``: R-CNN's fast mode (rbgirshick/rcnn ``selective_search_boxes.m``): HSV and
  Lab images, Felzenszwalb-Huttenlocher segmentations with k in {50, 100}, ``min_size = k``,
  sigma 0.8, strategies colour+texture+size+fill and texture+size+fill, boxes narrower or shorter
  than 20 px dropped, duplicates removed.
- ``selective-search-2x``: the same with k in {100, 200} (the paper's superpixel size x2).
- ``multibox``: the top 200 boxes of a trained MultiBox network (:mod:`.multibox`).
- ``paper``: ``selective-search-2x`` followed by the best MultiBox boxes, in the paper's
  proportion: its 200 MultiBox boxes came on top of about 1,000 x2 boxes (R-CNN's ~2,000 halved,
  "about 60%" of R-CNN's in total), so ``paper`` adds 0.2 MultiBox boxes per x2 box of the image
  (at most 200), and drops those that duplicate an x2 box (IoU > 0.7).

Every piece of Selective Search is OpenCV contrib's (``cv2.ximgproc.segmentation``, the
``googlenet[detection]`` extra); it is assembled here by hand because ``switchToSelectiveSearchFast``
uses other k values (150, 300, 450) and no ``min_size``. Boxes are inclusive 1-based
``[xmin, ymin, xmax, ymax]`` (:mod:`.boxes`).

MultiBox boxes come from a loaded proposer, a callable ``(image_rgb, top) -> boxes`` such as
:meth:`.multibox.MultiBox.propose`. A method names its model by folder (that is what a cache entry
and ``detector.json`` record); :func:`multibox_model` loads the folder once per process.

Proposals files (``googlenet proposals --out``) are JSON objects ``{"<image_id>": [[xmin, ymin,
xmax, ymax], ...], ...}``, boxes in proposal order.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..cache import cache_dir
from ..errors import GoogLeNetError
from ..manifest import read_json
from ..parts import (
    PartsFolder,
    Shard,
    image_chunks,
    missing_shards,
    parse_shard,
    read_arrays,
    write_arrays,
)
from ..runs import MULTIBOX_FILE
from .boxes import as_boxes, box_iou, from_coco

__all__ = [
    "METHODS",
    "PROPOSALS_VERSION",
    "ProposalMethod",
    "ProposalsFill",
    "Proposer",
    "cached_counts",
    "cached_proposals",
    "check_method",
    "compute_proposals",
    "fill_proposals",
    "iter_proposals",
    "multibox_model",
    "multibox_proposals",
    "proposal_method",
    "proposals_cache_path",
    "propose",
    "read_proposals",
    "selective_search",
    "write_proposals",
]

# Bumped whenever the boxes computed for the same settings change; part of the cache key.
PROPOSALS_VERSION = 1
# R-CNN fast mode (selective_search_boxes.m): sigma 0.8, boxes of at least 20 px.
SS_SIGMA = 0.8
SS_MIN_BOX = 20
# Paper section 8: "200 proposals" from MultiBox.
MULTIBOX_TOP = 200
# Section 8: x2 halves R-CNN's ~2,000 Selective Search boxes and 200 MultiBox boxes are added, "about
# 60%" of R-CNN's in total: 200 MultiBox boxes per ~1,000 x2 boxes. ``paper`` keeps the proportion,
# so images with fewer Selective Search boxes (the built-in set's 256 px ones: ~240) get fewer.
PAPER_MULTIBOX_SHARE = 0.2
# Combined with Selective Search, a MultiBox box overlapping a Selective Search box above this IoU is
# the same region to R-CNN's warp and is dropped (MultiBox's own NMS threshold, multibox.model).
DUPLICATE_IOU = 0.7
# OpenCV ranks regions by rand() * level (its own C rand(), which Python cannot seed through
# cv2); reseeding libc before each image makes the order, not only the set, reproducible.
RAND_SEED = 1

_PRESETS: dict[str, dict[str, Any]] = {
    "selective-search": {"ks": (50, 100), "multibox_top": 0},  # R-CNN fast mode
    "selective-search-2x": {"ks": (100, 200), "multibox_top": 0},  # section 8: superpixel size x2
    "multibox": {"ks": (), "multibox_top": MULTIBOX_TOP},
    "paper": {"ks": (100, 200), "multibox_top": MULTIBOX_TOP, "multibox_share": PAPER_MULTIBOX_SHARE},
}
METHODS = tuple(_PRESETS)
OPENCV_MISSING = (
    "{feature} needs OpenCV contrib (cv2.ximgproc), which is not installed: "
    "pip install 'googlenet[detection]'"
)

# (image_rgb, top) -> at most ``top`` boxes (N, 4), inclusive 1-based pixel corners, best first:
# what gives MultiBox boxes (a loaded model's ``MultiBox.propose``).
Proposer = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class ProposalMethod:
    """How one image's proposals are made: Selective Search over ``ks`` (none when empty), then the
    ``multibox_top`` best MultiBox boxes of the model in ``multibox_dir`` (none when 0); with
    ``multibox_share`` and Selective Search, at most that many MultiBox boxes per Selective Search
    box of the image. MultiBox boxes that duplicate a Selective Search box (IoU > 0.7) are dropped."""

    name: str
    ks: tuple[int, ...]
    sigma: float = SS_SIGMA
    min_box: int = SS_MIN_BOX
    im_width: int | None = None
    multibox_dir: str | None = None
    multibox_top: int = 0
    multibox_share: float | None = None

    def settings(self) -> dict[str, Any]:
        """Every field as JSON-able values: what a cache entry is keyed by (``multibox_share`` only
        when set, so the entries of the methods without it keep the keys they had before it)."""
        settings = {**dataclasses.asdict(self), "ks": list(self.ks)}
        if self.multibox_share is None:
            del settings["multibox_share"]
        return settings


def proposal_method(name: str, *, multibox: str | Path | None = None, **overrides: Any) -> ProposalMethod:
    """The named method (:data:`METHODS`), with fields of :class:`ProposalMethod` overridden.

    ``multibox`` is the trained MultiBox model's folder, needed by ``multibox`` and ``paper``.
    """
    if name not in _PRESETS:
        raise GoogLeNetError(f"unknown proposal method {name!r}; choose from {', '.join(METHODS)}")
    # The name picks the preset and the folder comes through ``multibox``: neither is an override.
    allowed = {f.name for f in dataclasses.fields(ProposalMethod)} - {"name", "multibox_dir"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise GoogLeNetError(f"proposal method {name!r}: unknown setting(s) {', '.join(unknown)}")
    fields = {**_PRESETS[name], **overrides}
    ks = tuple(int(k) for k in fields.pop("ks"))
    if any(k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise GoogLeNetError(f"proposal method {name!r}: ks must be distinct positive integers. Got {ks}")
    if not (float(fields.get("sigma", SS_SIGMA)) > 0):
        raise GoogLeNetError(f"proposal method {name!r}: sigma must be > 0. Got {fields['sigma']}")
    if int(fields.get("min_box", SS_MIN_BOX)) < 1:
        raise GoogLeNetError(f"proposal method {name!r}: min_box must be >= 1. Got {fields['min_box']}")
    im_width = fields.get("im_width")
    if im_width is not None and int(im_width) < 1:
        raise GoogLeNetError(f"proposal method {name!r}: im_width must be >= 1 or None. Got {im_width}")
    top = int(fields.get("multibox_top", 0))
    if top < 0 or (top == 0 and not ks):
        raise GoogLeNetError(f"proposal method {name!r}: multibox_top must be >= 1 without ks. Got {top}")
    share = fields.get("multibox_share")
    if share is not None and not (isinstance(share, int | float) and math.isfinite(share) and share > 0):
        raise GoogLeNetError(f"proposal method {name!r}: multibox_share must be > 0 or None. Got {share!r}")
    multibox_dir = None
    if top > 0:
        if multibox is None:
            raise GoogLeNetError(
                f"proposal method {name!r} needs a trained MultiBox model: give its folder "
                "(--multibox DIR, made by googlenet train-multibox ...)"
            )
        path = Path(multibox).expanduser()
        if not path.is_dir():
            raise GoogLeNetError(f"MultiBox model folder {str(multibox)!r} does not exist or is not a folder")
        multibox_dir = str(path.resolve())
    return ProposalMethod(
        name=name,
        ks=ks,
        sigma=float(fields.get("sigma", SS_SIGMA)),
        min_box=int(fields.get("min_box", SS_MIN_BOX)),
        im_width=None if im_width is None else int(im_width),
        multibox_dir=multibox_dir,
        multibox_top=top,
        multibox_share=None if share is None else float(share),
    )


# --------------------------------------------------------------------------- one image


@functools.lru_cache(maxsize=1)
def _c_srand() -> Callable[[int], object] | None:
    try:
        return ctypes.CDLL(None).srand
    except (OSError, AttributeError, TypeError):  # no process symbol table (Windows): order not fixed
        return None


def _seed_c_rand() -> None:
    srand = _c_srand()
    if srand is not None:
        srand(RAND_SEED)


def _opencv(feature: str = "Selective Search") -> Any:
    """The ``cv2`` module with its contrib ``ximgproc``, or a one-line error naming the extra."""
    try:
        import cv2
    except ImportError:
        raise GoogLeNetError(OPENCV_MISSING.format(feature=feature)) from None
    if not hasattr(cv2, "ximgproc"):  # the plain opencv-python wheel
        raise GoogLeNetError(OPENCV_MISSING.format(feature=feature))
    return cv2


def selective_search(
    image_rgb: np.ndarray,
    ks: Iterable[int] = (50, 100),
    sigma: float = SS_SIGMA,
    min_box: int = SS_MIN_BOX,
    im_width: int | None = None,
) -> np.ndarray:
    """Selective Search in R-CNN's fast mode on an (H, W, 3) uint8 RGB image.

    Returns (N, 4) float64 inclusive ``[xmin, ymin, xmax, ymax]`` in OpenCV's rank order, boxes with
    a side below ``min_box`` px dropped and duplicates removed. With ``im_width`` the image is first
    resized to that width (aspect kept) and the boxes scaled back as R-CNN does
    (``(boxes - 1) * scale + 1``); the size filter then applies at the resized scale, as there.
    """
    cv2 = _opencv()
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array. Got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    scale = 1.0
    if im_width is not None and im_width != width:
        import PIL.Image

        new_h = max(1, round(height * im_width / width))
        # PIL's antialiased bicubic is the closest to MATLAB's imresize, which R-CNN calls.
        image = np.asarray(PIL.Image.fromarray(image).resize((im_width, new_h), PIL.Image.BICUBIC))
        scale = width / im_width
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    seg = cv2.ximgproc.segmentation
    ss = seg.createSelectiveSearchSegmentation()
    ss.addImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))  # R-CNN fast mode: colorTypes(1:2) = Hsv, Lab
    ss.addImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab))
    for k in ks:
        ss.addGraphSegmentation(seg.createGraphSegmentation(sigma=float(sigma), k=float(k), min_size=int(k)))
    ss.addStrategy(
        seg.createSelectiveSearchSegmentationStrategyMultiple(
            seg.createSelectiveSearchSegmentationStrategyColor(),
            seg.createSelectiveSearchSegmentationStrategyTexture(),
            seg.createSelectiveSearchSegmentationStrategySize(),
            seg.createSelectiveSearchSegmentationStrategyFill(),
        )
    )
    ss.addStrategy(
        seg.createSelectiveSearchSegmentationStrategyMultiple(
            seg.createSelectiveSearchSegmentationStrategyTexture(),
            seg.createSelectiveSearchSegmentationStrategySize(),
            seg.createSelectiveSearchSegmentationStrategyFill(),
        )
    )
    _seed_c_rand()
    rects = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)
    # OpenCV's (x, y, w, h) comes from boundingRect, so w and h count pixels: COCO's convention,
    # whose inclusive 1-based corners are (x + 1, y + 1, x + w, y + h).
    keep = (rects[:, 2] >= min_box) & (rects[:, 3] >= min_box)  # FilterBoxesWidth: both sides >= minBoxWidth
    boxes = from_coco(rects[keep])
    boxes = _unique_rows(boxes)  # BoxRemoveDuplicates (OpenCV already drops exact repeats)
    if scale != 1.0:
        boxes = (boxes - 1.0) * scale + 1.0
        # Rounding the resized height can put a bottom edge a fraction past the image.
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(1, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(1, height)
    return np.ascontiguousarray(boxes)


def _unique_rows(boxes: np.ndarray) -> np.ndarray:
    """Rows of ``boxes`` without repeats, each kept at its first position (rank order)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    _, first = np.unique(boxes, axis=0, return_index=True)
    return boxes[np.sort(first)]


def multibox_model(multibox_dir: str | Path) -> Any:
    """The MultiBox model in ``multibox_dir`` (:func:`.multibox.store.load_multibox`), loaded once per
    process and again when its ``multibox.json`` changes (each pool worker loads its own copy)."""
    root = Path(multibox_dir).expanduser().resolve()
    try:
        mtime = (root / MULTIBOX_FILE).stat().st_mtime_ns
    except OSError:
        mtime = 0  # load_multibox says what is missing
    return _load_multibox(str(root), mtime)


@functools.lru_cache(maxsize=2)
def _load_multibox(directory: str, mtime_ns: int) -> Any:
    # The model's own module, not the package: the package's training task imports this module.
    from .multibox.store import load_multibox

    return load_multibox(directory)


def multibox_proposals(image_rgb: np.ndarray, multibox: str | Path | Proposer, top: int) -> np.ndarray:
    """The ``top`` best MultiBox boxes of one (H, W, 3) uint8 RGB image, (N, 4) float64 inclusive.

    ``multibox`` is a loaded :data:`Proposer` (``MultiBox.propose``) or a model folder
    (:func:`multibox_model`). Its boxes are best first, after its non-maximum suppression (Erhan et
    al. 2014).
    """
    proposer = multibox_model(multibox).propose if isinstance(multibox, str | Path) else multibox
    return as_boxes(proposer(image_rgb, int(top)))[: int(top)]


def propose(image: np.ndarray, method: ProposalMethod, *, multibox: Proposer | None = None) -> np.ndarray:
    """The proposals of ``method`` for one (H, W, 3) uint8 RGB image: (N, 4) float64, inclusive.

    ``paper``: the Selective Search boxes first, then the best MultiBox ones (``multibox_share``
    of the Selective Search count, at most ``multibox_top``) that duplicate none of them (IoU >
    :data:`DUPLICATE_IOU`). ``multibox`` gives the MultiBox boxes (default: the model in
    ``method.multibox_dir``).
    """
    parts = []
    if method.ks:
        parts.append(selective_search(image, method.ks, method.sigma, method.min_box, method.im_width))
    if method.multibox_top > 0:
        source = multibox if multibox is not None else method.multibox_dir
        top = method.multibox_top
        if parts and method.multibox_share is not None:
            top = min(top, round(method.multibox_share * len(parts[0])))
        boxes = multibox_proposals(image, source, top) if top > 0 else np.zeros((0, 4))
        if parts and len(parts[0]) and len(boxes):
            boxes = boxes[box_iou(boxes, parts[0]).max(axis=1) <= DUPLICATE_IOU]
        parts.append(boxes)
    return _unique_rows(np.concatenate(parts)) if len(parts) > 1 else parts[0]


def check_method(method: ProposalMethod) -> None:
    """Fail before any work when the method cannot run: OpenCV contrib missing for Selective
    Search, or a MultiBox folder that does not load (loaded here once; pool workers load their own
    copies)."""
    if method.ks:
        _opencv(f"proposal method {method.name!r}")
    if method.multibox_top > 0:
        multibox_model(method.multibox_dir)


# --------------------------------------------------------------------------- a dataset


def _read_rgb(path: str) -> np.ndarray:
    import PIL.Image

    try:
        with PIL.Image.open(path) as image:
            # No EXIF transpose: the annotations index the stored pixels (as in .datasets).
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL signals corrupt data with assorted exception types
        raise GoogLeNetError(f"cannot decode image {path}: {type(exc).__name__}: {exc}") from exc


def _propose_file(task: tuple[str, ProposalMethod]) -> np.ndarray:
    path, method = task
    try:
        image = _read_rgb(path)
    except GoogLeNetError:
        # An image that cannot be decoded has no proposals (its objects are then missed); the
        # commands name such files (datasets.drop_unreadable) or stop at them under --strict-data.
        return np.zeros((0, 4))
    return propose(image, method)


def _init_worker() -> None:
    try:
        import cv2
    except ImportError:  # a MultiBox-only method; Selective Search says what is missing
        return
    # One OpenCV thread per worker process, so that N workers keep N cores busy, not N x cores.
    cv2.setNumThreads(1)


def compute_proposals(
    dataset: Any,
    method: ProposalMethod,
    *,
    workers: int = 0,
    progress: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """``{image_id: (N, 4) boxes}`` for every image of ``dataset``, in its order.

    ``dataset`` needs ``image_ids`` and ``image_path(i)`` (a :class:`.datasets.DetectionDataset`);
    an image that cannot be decoded gets no boxes. ``workers <= 1`` works in this process; more
    start a pool of that many processes ("spawn": OpenCV and torch threads do not survive fork),
    each decoding its images itself. ``progress`` is called with the number of images just
    finished (``tqdm.update`` fits).
    """
    check_method(method)
    ids = [str(i) for i in dataset.image_ids]
    _check_unique_ids(ids)
    results: list[np.ndarray] = []
    with contextlib.closing(iter_proposals(dataset, method, range(len(ids)), workers=workers)) as boxes:
        for found in boxes:
            results.append(found)
            if progress is not None:
                progress(1)
    return dict(zip(ids, results, strict=True))


def iter_proposals(
    dataset: Any, method: ProposalMethod, indices: Sequence[int], *, workers: int = 0
) -> Iterator[np.ndarray]:
    """The proposals of the images at ``indices`` of ``dataset``, one (N, 4) array per image in that
    order, as each is done (what :func:`compute_proposals` and the cache's chunks are made of).

    ``workers <= 1`` works in this process; more start one pool of that many processes ("spawn":
    OpenCV and torch threads do not survive fork) for the whole iteration; close the iterator
    (``contextlib.closing``) to stop the pool early.
    """
    tasks = [(str(dataset.image_path(i)), method) for i in indices]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _propose_file(task)
        return
    workers = min(workers, len(tasks))
    # Small chunks keep the bar moving and the load even (image times vary with content).
    chunk = max(1, min(8, len(tasks) // (workers * 4)))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap(_propose_file, tasks, chunksize=chunk)


def _check_unique_ids(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise GoogLeNetError(f"image id {dup!r} occurs twice in the dataset: proposals are keyed by image id")


# --------------------------------------------------------------------------- the cache


def _fingerprint_files(paths: Iterable[Path]) -> list[list[Any]]:
    rows = []
    for path in paths:
        try:
            st = path.stat()
        except OSError as exc:
            raise GoogLeNetError(f"cannot read image {path}: {exc}") from exc
        rows.append([str(path), st.st_size, st.st_mtime_ns])
    return rows


def _cache_key(dataset: Any, method: ProposalMethod) -> dict[str, Any]:
    cv2 = _opencv("the proposals cache (keyed by the OpenCV version)")
    root = getattr(dataset, "root", None)
    paths = [Path(dataset.image_path(i)).resolve() for i in range(len(dataset.image_ids))]
    images = hashlib.sha256(
        json.dumps([[str(i) for i in dataset.image_ids], _fingerprint_files(paths)]).encode()
    ).hexdigest()
    model = None
    if method.multibox_dir is not None:
        # A model retrained into the same folder must not hit the old boxes.
        model = _fingerprint_files(sorted(p for p in Path(method.multibox_dir).rglob("*") if p.is_file()))
    return {
        "version": PROPOSALS_VERSION,
        "opencv": cv2.__version__,  # Selective Search is OpenCV's: another version, other boxes
        "root": str(Path(root).resolve()) if root is not None else None,
        "split": getattr(dataset, "split", None),
        "images": images,
        "method": method.settings(),
        "multibox_files": model,
    }


def _cache_entry(dataset: Any, method: ProposalMethod) -> tuple[Path, str]:
    key = json.dumps(_cache_key(dataset, method), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "proposals" / f"{method.name}-{digest}.npz", key


def proposals_cache_path(dataset: Any, method: ProposalMethod) -> Path:
    """Where :func:`cached_proposals` keeps ``method``'s proposals for ``dataset``."""
    return _cache_entry(dataset, method)[0]


def cached_proposals(
    dataset: Any,
    method: ProposalMethod,
    *,
    workers: int = 0,
    progress: Callable[[int], object] | None = None,
    refresh: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`compute_proposals`, read from the cache when it holds this dataset and method.

    ``refresh`` recomputes and rewrites the entry. A damaged entry is recomputed and replaced. The
    work is :func:`fill_proposals`'s: a killed call continues where it stopped, and parts that
    ``--shard`` runs left are used (or named, when some shard has not finished).
    """
    return fill_proposals(dataset, method, workers=workers, progress=progress, refresh=refresh).proposals


@dataclass
class ProposalsFill:
    """What :func:`fill_proposals` did in this process.

    ``shard``: the share of the split it worked on (None: the whole split); ``images``: how many
    images that share holds, ``done_before`` of them found done (in the cache entry, or in chunks
    of its parts folder ``parts``) when it started; ``proposals``: the share's proposals, in the
    split's order. ``merged``: the cache entry (``path``) holds the whole split, ``from_entry``:
    read from it as it was; ``chunks_left``: chunks of the split that no process has finished yet
    (``chunks`` in all).
    """

    path: Path
    parts: Path
    shard: Shard | None
    images: int
    done_before: int
    proposals: dict[str, np.ndarray]
    merged: bool
    chunks: int
    chunks_left: int
    from_entry: bool = False

    @property
    def computed(self) -> int:
        """Images whose proposals this call computed."""
        return self.images - self.done_before


def fill_proposals(
    dataset: Any,
    method: ProposalMethod,
    *,
    shard: Shard | str | None = None,
    workers: int = 0,
    progress: Callable[[int], object] | None = None,
    refresh: bool = False,
) -> ProposalsFill:
    """Fill the cache entry of ``method``'s proposals for ``dataset``, chunk by chunk.

    The split's images are cut into chunks (:func:`googlenet.parts.image_chunks`); each chunk's
    proposals are written atomically beside the entry (``<entry>.parts/chunk-NNNNNN.npz``, keyed
    like the entry) as soon as they are done, so a killed call continues where it stopped.

    ``shard`` (a :class:`googlenet.parts.Shard` or ``"I/N"``): compute only that shard's chunks
    (other processes or machines, sharing the cache folder, do the others) and leave them in the
    parts folder. Without a shard: the whole split; chunks found done are reused, and once every
    chunk is there they are merged into the entry (the file a one-process run writes) and the parts
    folder removed. When shards worked on the split and some have not finished, it raises a
    one-line error naming them instead of computing their share here (``shard=Shard(0, 1)``
    computes whatever is missing).

    ``refresh``: recompute (the whole split, or the shard's chunks) and rewrite. ``progress`` is
    called with the number of images done (those found done first, at once).
    """
    check_method(method)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    entry, key = _cache_entry(dataset, method)
    ids = [str(i) for i in dataset.image_ids]
    _check_unique_ids(ids)
    chunks = image_chunks(len(ids))
    mine = shard.chunks(len(chunks)) if shard is not None else range(len(chunks))
    share = [i for c in mine for i in chunks[c]]
    parts = PartsFolder(entry.with_suffix(".parts"), key)

    def result(
        found: dict[int, list[np.ndarray]], done_before: int, merged: bool, from_entry: bool = False
    ) -> ProposalsFill:
        boxes = {ids[i]: b for c in mine for i, b in zip(chunks[c], found[c], strict=True)}
        left = 0
        if not merged:
            left = sum(c not in found and not parts.path(_chunk(c)).is_file() for c in range(len(chunks)))
        return ProposalsFill(
            entry, parts.root, shard, len(share), done_before, boxes, merged, len(chunks), left, from_entry
        )

    if refresh:
        entry.unlink(missing_ok=True)
        if shard is None:
            parts.remove()
    else:
        whole = _read_boxes(entry, key, ids)
        if whole is not None:
            if progress is not None:
                progress(len(share))
            found = {c: [whole[i] for i in chunks[c]] for c in mine}
            return result(found, len(share), merged=True, from_entry=True)
    found: dict[int, list[np.ndarray]] = {}
    if not (refresh and shard is not None):
        for c in mine:
            boxes = _read_boxes(parts.path(_chunk(c)), key, [ids[i] for i in chunks[c]], parts.root)
            if boxes is not None:
                found[c] = boxes
    if shard is None and not refresh:
        _check_shards_finished(parts, found, len(chunks), len(ids))
    done_before = sum(len(chunks[c]) for c in found)
    if progress is not None and done_before:
        progress(done_before)
    pending = [c for c in mine if c not in found]
    if pending and shard is not None:
        parts.mark(shard)
    indices = [i for c in pending for i in chunks[c]]
    with contextlib.closing(iter_proposals(dataset, method, indices, workers=workers)) as computed:
        for c in pending:
            found[c] = []
            for _ in chunks[c]:
                found[c].append(next(computed))
                if progress is not None:
                    progress(1)
            chunk_ids = [ids[i] for i in chunks[c]]
            # Another process filling the same entry (torchrun ranks, each training on the whole
            # split) may have merged it and removed the folder meanwhile: its boxes are these.
            with contextlib.suppress(FileNotFoundError):
                write_arrays(parts.path(_chunk(c)), key, _boxes_arrays(chunk_ids, found[c]))
    if shard is not None:
        return result(found, done_before, merged=False)
    write_arrays(entry, key, _boxes_arrays(ids, [b for c in mine for b in found[c]]))
    parts.remove()
    return result(found, done_before, merged=True)


def cached_counts(dataset: Any, method: ProposalMethod) -> dict[int, int]:
    """``{image index: proposal count}`` of the images of ``dataset`` whose ``method`` proposals the
    cache holds already (its entry, or finished chunks of its parts): what a run would not compute.
    Reads the counts only."""
    entry, key = _cache_entry(dataset, method)
    chunks = image_chunks(len(dataset.image_ids))
    whole = _read_counts(entry, key, len(dataset.image_ids))
    if whole is not None:
        return dict(enumerate(whole))
    found: dict[int, int] = {}
    for c, images in enumerate(chunks):
        counts = _read_counts(entry.with_suffix(".parts") / f"{_chunk(c)}.npz", key, len(images))
        if counts is not None:
            found.update(zip(images, counts, strict=True))
    return found


def _read_counts(path: Path, key: str, images: int) -> list[int] | None:
    """The per-image counts of a cache entry or part of ``images`` images (None: missing or other)."""
    try:
        with np.load(path, allow_pickle=False) as z:  # lazy: reads these two arrays only
            if str(z["key"]) != key or len(z["counts"]) != images:
                return None
            return [int(n) for n in z["counts"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _chunk(c: int) -> str:
    return f"chunk-{c:06d}"


def _check_shards_finished(
    parts: PartsFolder, found: Mapping[int, object], num_chunks: int, images: int
) -> None:
    """Without a shard, when ``--shard`` runs left parts: every chunk must be there, else a
    one-line error naming the shards that have not finished."""
    marks = parts.marks()
    if not marks or len(found) == num_chunks:
        return
    everyone = [Shard(i, n) for n in sorted({s.count for s in marks}) for i in range(n)]
    late = missing_shards(everyone, found, num_chunks)
    names = ", ".join(f"{s} ({left} chunk{'s' * (left > 1)})" for s, left in late)
    flags = " ".join(f"--shard {s}" for s, _ in late)
    raise GoogLeNetError(
        f"{num_chunks - len(found)} of {num_chunks} chunks of these proposals ({images} images) are not "
        f"done; unfinished shard(s): {names}. Finish them ({flags}) and merge again, or give --shard 0/1 "
        f"to compute the rest in this process; parts in {parts.root}"
    )


def _boxes_arrays(ids: Sequence[str], boxes: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-image boxes as the cache's arrays: the ids, each image's count, every box in one array."""
    return {
        "image_ids": np.array(list(ids), dtype=str),
        "counts": np.array([len(b) for b in boxes], dtype=np.int64),
        "boxes": np.concatenate(list(boxes)) if len(boxes) else np.zeros((0, 4)),
    }


def _read_boxes(path: Path, key: str, ids: list[str], folder: Path | None = None) -> list[np.ndarray] | None:
    """The per-image boxes of a cache entry or part, in ``ids`` order; None when it is missing,
    damaged or holds other images (to be computed again)."""
    arrays = read_arrays(path, key, remove=folder)
    if arrays is None or not {"image_ids", "counts", "boxes"} <= arrays.keys():
        return None
    counts, boxes = arrays["counts"], arrays["boxes"]
    if [str(i) for i in arrays["image_ids"]] != ids or len(counts) != len(ids):
        return None
    if int(counts.sum()) != len(boxes) or boxes.ndim != 2 or boxes.shape[1] != 4:
        return None
    return np.split(boxes.astype(np.float64, copy=False), np.cumsum(counts)[:-1]) if ids else []


# --------------------------------------------------------------------------- proposals files


def write_proposals(path: str | Path, proposals: Mapping[str, np.ndarray]) -> Path:
    """Write ``{image_id: [[xmin, ymin, xmax, ymax], ...]}`` as JSON, atomically."""
    buf = io.StringIO()
    buf.write("{")
    for n, (image_id, boxes) in enumerate(proposals.items()):
        b = as_boxes(boxes)
        # Whole pixel indices (plain Selective Search) are written as integers: half the size.
        rows = b.astype(np.int64).tolist() if np.array_equal(b, np.round(b)) else b.tolist()
        buf.write(
            ("," if n else "") + f"\n{json.dumps(str(image_id))}: {json.dumps(rows, separators=(',', ':'))}"
        )
    buf.write("\n}\n")
    return atomic_write_text(path, buf.getvalue())


def read_proposals(path: str | Path) -> dict[str, np.ndarray]:
    """Read a proposals file; a bad one raises a one-line :class:`GoogLeNetError` naming the entry."""
    path = Path(path)
    if not path.is_file():
        reason = "it is a folder" if path.is_dir() else "no such file"
        raise GoogLeNetError(f"cannot read proposals file {path}: {reason}")
    data = read_json(path, what="proposals file")
    if not isinstance(data, dict):
        raise GoogLeNetError(
            f"proposals file {path}: expected an object {{image_id: boxes}}. Got {type(data).__name__}"
        )
    out = {}
    for image_id, rows in data.items():
        what = f"proposals file {path}: image {image_id!r}"
        if not isinstance(rows, list) or any(
            not isinstance(r, list) or len(r) != 4 or not all(_is_number(v) for v in r) for r in rows
        ):
            raise GoogLeNetError(f"{what}: expected a list of [xmin, ymin, xmax, ymax] number lists")
        boxes = np.array(rows, dtype=np.float64).reshape(-1, 4)
        bad = np.flatnonzero(
            ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        )
        if len(bad):
            raise GoogLeNetError(
                f"{what}: box {bad[0]} {rows[bad[0]]} is not finite or has xmax < xmin or ymax < ymin"
            )
        out[image_id] = boxes
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
