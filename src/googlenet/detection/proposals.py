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
- ``paper``: ``selective-search-2x`` followed by the top 200 MultiBox boxes.

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

import ctypes
import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..cache import cache_dir
from ..errors import GoogLeNetError
from ..manifest import read_json
from ..runs import MULTIBOX_FILE
from .boxes import as_boxes, box_iou

__all__ = [
    "METHODS",
    "PROPOSALS_VERSION",
    "ProposalMethod",
    "Proposer",
    "cached_proposals",
    "check_method",
    "compute_proposals",
    "coverage",
    "covered_boxes",
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
# OpenCV ranks regions by rand() * level (its own C rand(), which Python cannot seed through
# cv2); reseeding libc before each image makes the order, not only the set, reproducible.
RAND_SEED = 1

_PRESETS: dict[str, dict[str, Any]] = {
    "selective-search": {"ks": (50, 100), "multibox_top": 0},  # R-CNN fast mode
    "selective-search-2x": {"ks": (100, 200), "multibox_top": 0},  # section 8: superpixel size x2
    "multibox": {"ks": (), "multibox_top": MULTIBOX_TOP},
    "paper": {"ks": (100, 200), "multibox_top": MULTIBOX_TOP},
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
    ``multibox_top`` best MultiBox boxes of the model in ``multibox_dir`` (none when 0)."""

    name: str
    ks: tuple[int, ...]
    sigma: float = SS_SIGMA
    min_box: int = SS_MIN_BOX
    im_width: int | None = None
    multibox_dir: str | None = None
    multibox_top: int = 0

    def settings(self) -> dict[str, Any]:
        """Every field as JSON-able values: what a cache entry is keyed by."""
        return {**dataclasses.asdict(self), "ks": list(self.ks)}


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
    # OpenCV's (x, y, w, h) comes from boundingRect, so w and h count pixels: inclusive 1-based
    # corners are (x + 1, y + 1, x + w, y + h).
    x, y, w, h = rects.T
    keep = (w >= min_box) & (h >= min_box)  # FilterBoxesWidth: both sides >= minBoxWidth
    boxes = np.stack([x + 1, y + 1, x + w, y + h], axis=1)[keep]
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

    ``paper``: the Selective Search boxes first, then the MultiBox ones not already among them.
    ``multibox`` gives the MultiBox boxes (default: the model in ``method.multibox_dir``).
    """
    parts = []
    if method.ks:
        parts.append(selective_search(image, method.ks, method.sigma, method.min_box, method.im_width))
    if method.multibox_top > 0:
        source = multibox if multibox is not None else method.multibox_dir
        parts.append(multibox_proposals(image, source, method.multibox_top))
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
    return propose(_read_rgb(path), method)


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

    ``dataset`` needs ``image_ids`` and ``image_path(i)`` (a :class:`.datasets.DetectionDataset`).
    ``workers <= 1`` works in this process; more start a pool of that many processes ("spawn":
    OpenCV and torch threads do not survive fork), each decoding its images itself. ``progress`` is
    called with the number of images just finished (``tqdm.update`` fits).
    """
    check_method(method)
    ids = [str(i) for i in dataset.image_ids]
    _check_unique_ids(ids)
    tasks = [(str(dataset.image_path(i)), method) for i in range(len(ids))]
    results: list[np.ndarray] = []
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            results.append(_propose_file(task))
            if progress is not None:
                progress(1)
    else:
        workers = min(workers, len(tasks))
        # Small chunks keep the bar moving and the load even (image times vary with content).
        chunk = max(1, min(8, len(tasks) // (workers * 4)))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for boxes in pool.imap(_propose_file, tasks, chunksize=chunk):
                results.append(boxes)
                if progress is not None:
                    progress(1)
    return dict(zip(ids, results, strict=True))


def _check_unique_ids(ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise GoogLeNetError(f"image id {dup!r} occurs twice in the dataset: proposals are keyed by image id")


def coverage(proposals: Mapping[str, np.ndarray], targets: Iterable[Any], iou: float = 0.5) -> float:
    """Share of ground-truth boxes that some proposal of their image overlaps with IoU >= ``iou``.

    ``targets``: objects with ``image_id`` and ``boxes`` (:class:`.datasets.DetectionTarget`). All
    boxes count, difficult ones included (the paper's coverage figures do not say otherwise). NaN
    when there are no ground-truth boxes.
    """
    covered = total = 0
    for target in targets:
        gt = as_boxes(target.boxes)
        if len(gt) == 0:
            continue
        if target.image_id not in proposals:
            raise GoogLeNetError(f"no proposals for image {target.image_id!r}")
        total += len(gt)
        covered += covered_boxes(gt, proposals[target.image_id], iou)
    return covered / total if total else math.nan


def covered_boxes(gt: object, proposals: object, iou: float = 0.5) -> int:
    """How many of one image's ground-truth boxes some proposal overlaps with IoU >= ``iou``."""
    gt, boxes = as_boxes(gt), as_boxes(proposals)
    if len(gt) == 0 or len(boxes) == 0:
        return 0
    return int((box_iou(gt, boxes).max(axis=1) >= iou).sum())


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

    ``refresh`` recomputes and rewrites the entry. A damaged entry is recomputed and replaced.
    """
    path, key = _cache_entry(dataset, method)
    ids = [str(i) for i in dataset.image_ids]
    if not refresh and path.is_file():
        cached = _read_cache(path, key, ids)
        if cached is not None:
            if progress is not None:
                progress(len(ids))
            return cached
    proposals = compute_proposals(dataset, method, workers=workers, progress=progress)
    counts = np.array([len(proposals[i]) for i in ids], dtype=np.int64)
    boxes = np.concatenate([proposals[i] for i in ids]) if ids else np.zeros((0, 4))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, key=np.array(key), image_ids=np.array(ids, dtype=str), counts=counts, boxes=boxes)

    atomic_write(path, write)
    return proposals


def _read_cache(path: Path, key: str, ids: list[str]) -> dict[str, np.ndarray] | None:
    """The entry's proposals, or None when it is damaged or holds something else."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key or [str(i) for i in z["image_ids"]] != ids:
                return None
            counts, boxes = z["counts"], z["boxes"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if len(counts) != len(ids) or int(counts.sum()) != len(boxes) or boxes.ndim != 2 or boxes.shape[1] != 4:
        return None
    splits = np.split(boxes.astype(np.float64, copy=False), np.cumsum(counts)[:-1]) if ids else []
    return dict(zip(ids, splits, strict=True))


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
