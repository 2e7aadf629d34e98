"""Image datasets for training and evaluation (paper sections 6 and 7): ImageFolder and ILSVRC2012.

Only the list of ``(path, label)`` pairs is held in memory; images are decoded lazily in
``__getitem__``. A file that cannot be decoded (truncated, not an image, empty, a decompression
bomb) never stops an epoch: ``__getitem__`` logs it with its path on the ``googlenet.data`` logger,
counts it in :attr:`ImageDataset.num_skipped` and returns ``None``; :func:`collate_skip_bad`
drops the ``None`` entries and reports how many it dropped in each batch (the count on the dataset
object lives in whichever DataLoader worker process read the file, so the batch is how the count
reaches the training loop). :func:`scan_unreadable` decodes everything up front for ``--strict-data``.

Layouts (``docs/data.md`` has the full list of files looked for):

* ImageFolder: ``root/{train,val}/<class>/<image>``; class order from ``root/classes.txt`` when
  present, else sorted folder names (torchvision's ``find_classes``).
* ILSVRC2012: ``root/train/nXXXXXXXX/*.JPEG``; ``root/val`` either arranged in synset folders or
  flat with labels from one of the ground-truth forms (Kaggle ``LOC_val_solution.csv``, devkit
  ``ILSVRC2012_validation_ground_truth.txt``, Caffe ``val.txt``). Labels index the sorted synset
  list, the order used by torchvision's and Caffe's ImageNet models.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import PIL.Image
import torch
import torch.utils.data
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset

from ..errors import GoogLeNetError
from .transforms import to_rgb

__all__ = [
    "CLASSES_FILE",
    "DEVKIT_DATA_DIR",
    "GROUND_TRUTH_FILE",
    "KAGGLE_SOLUTION_FILE",
    "KAGGLE_SYNSET_FILE",
    "SIMPLE_LABEL_FILES",
    "SYNSET_LIST_FILES",
    "ImageDataset",
    "SkippableBatch",
    "UnreadableImageError",
    "build_dataset",
    "collate_skip_bad",
    "find_images",
    "open_image",
    "scan_unreadable",
    "unreadable_files",
]

logger = logging.getLogger("googlenet.data")

CLASSES_FILE = "classes.txt"
KAGGLE_SYNSET_FILE = "LOC_synset_mapping.txt"
KAGGLE_SOLUTION_FILE = "LOC_val_solution.csv"
GROUND_TRUTH_FILE = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_DATA_DIR = Path("ILSVRC2012_devkit_t12") / "data"
# "nXXXXXXXX words" per line. For the devkit ground truth their line order must be the
# ILSVRC2012_ID order (line 1 = ID 1); everywhere else the order does not matter (labels index
# the sorted synsets).
SYNSET_LIST_FILES = ("synsets.txt", "synset_words.txt")
SIMPLE_LABEL_FILES = ("val_labels.txt", "val.txt")  # Caffe: "ILSVRC2012_val_00000001.JPEG 65"

_WNID = re.compile(r"^n\d{8}$")
_VAL_ID = re.compile(r"ILSVRC2012_val_(\d{8})")
_IMG_EXTENSIONS: tuple[str, ...] = tuple(IMG_EXTENSIONS)


class UnreadableImageError(OSError):
    """A file PIL cannot fully decode; ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"unreadable image {path}: {reason}")
        self.path = path
        self.reason = reason


GLOB_CHARS = set("*?[")


def find_images(args: Sequence[str | os.PathLike[str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """``(image paths, [(argument, error)])`` of files, folders and globs as a user types them:
    folders searched recursively for image extensions (hidden files skipped), globs expanded
    (sorted), files kept as given whatever their extension (the decoder decides); an argument that
    names nothing gets one error naming it."""
    exts = tuple(IMG_EXTENSIONS)
    paths: list[str] = []
    errors: list[tuple[str, str]] = []
    for arg in map(str, args):
        if os.path.isdir(arg):
            found = sorted(
                os.path.join(d, f)
                for d, _, files in os.walk(arg, followlinks=False)
                for f in files
                if f.lower().endswith(exts) and not f.startswith(".")
            )
            if not found:
                errors.append((arg, f"{arg}: no images ({', '.join(exts)}) in this folder"))
            paths += found
        elif os.path.exists(arg):
            paths.append(arg)
        elif GLOB_CHARS & set(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not found:
                errors.append((arg, f"{arg}: no file matches this pattern"))
            paths += found
        else:
            errors.append((arg, f"{arg}: no such file or folder"))
    return paths, errors


def open_image(path: str | os.PathLike[str]) -> PIL.Image.Image:
    """Fully decode ``path`` into an upright RGB image, or raise :class:`UnreadableImageError`.

    Decompression bombs (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels) count as unreadable: the
    warning is turned into an error here only, the global setting is left alone.
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as image:
                image.load()
                return to_rgb(image)
    # Deliberately broad: PIL's format plugins signal corrupt data with OSError, SyntaxError,
    # ValueError, EOFError, struct.error, IndexError, ... and one bad file must not stop training.
    # Only decoding is inside this try; errors in the transforms still surface.
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        raise UnreadableImageError(path, reason) from exc


class ImageDataset(torch.utils.data.Dataset):
    """``(path, label)`` pairs decoded lazily; unreadable files give ``None`` (see module docstring).

    Attributes:
        samples: ``(path, label)`` for every image, in a fixed order.
        targets: the labels alone.
        classes: human-readable class names, index = label (ILSVRC: the synset words).
        class_to_idx: folder name or WordNet id -> label.
        num_skipped: unreadable files met by ``__getitem__`` in this process.
        layout: ``"imagefolder"`` or ``"ilsvrc"``.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        class_to_idx: dict[str, int],
        transform: Callable[[PIL.Image.Image], Any] | None = None,
        *,
        root: str | Path = "",
        layout: str = "imagefolder",
    ) -> None:
        self.samples = [(str(p), int(t)) for p, t in samples]
        self.targets = [t for _, t in self.samples]
        self.classes = list(classes)
        self.class_to_idx = dict(class_to_idx)
        self.transform = transform
        self.root = str(root)
        self.layout = layout
        self.num_skipped = 0
        bad = [t for t in self.targets if not 0 <= t < len(self.classes)]
        if bad:
            raise GoogLeNetError(
                f"label {bad[0]} out of range for {len(self.classes)} classes in dataset {self.root}"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        path, target = self.samples[index]
        try:
            image = open_image(path)
        except UnreadableImageError as exc:
            self.num_skipped += 1
            logger.warning("skipping unreadable image %s (%s)", path, exc.reason)
            return None
        return (self.transform(image) if self.transform is not None else image), target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self.layout!r}, root={self.root!r}, "
            f"samples={len(self.samples)}, classes={len(self.classes)}, transform={self.transform!r})"
        )


class SkippableBatch(NamedTuple):
    """What :func:`collate_skip_bad` returns: ``images, targets, skipped = batch``."""

    images: torch.Tensor
    targets: torch.Tensor
    skipped: int  # unreadable samples dropped from this batch


def collate_skip_bad(batch: Sequence[tuple[Any, int] | None]) -> SkippableBatch:
    """DataLoader ``collate_fn`` that drops unreadable samples (``None``) and counts them.

    A batch may come out smaller than ``batch_size``, or empty (``targets.numel() == 0``, when
    every sample in it was unreadable); the training loop skips empty batches and adds
    ``skipped`` to its running count.
    """
    good = [sample for sample in batch if sample is not None]
    skipped = len(batch) - len(good)
    if not good:
        return SkippableBatch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    images, targets = torch.utils.data.default_collate(good)
    return SkippableBatch(images, targets, skipped)


class _ScanDataset(torch.utils.data.Dataset):
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:
        try:
            open_image(self.paths[index])
        except UnreadableImageError as exc:
            return exc.reason
        return ""


def scan_unreadable(dataset: ImageDataset, workers: int = 0) -> list[tuple[str, str]]:
    """``(path, reason)`` for every file of ``dataset`` that PIL cannot fully decode, in sample order.

    Decodes every image (``--strict-data`` runs this before training). ``workers`` > 0 decodes in
    that many DataLoader worker processes.
    """
    return unreadable_files([path for path, _ in dataset.samples], workers)


def unreadable_files(paths: Sequence[str | os.PathLike[str]], workers: int = 0) -> list[tuple[str, str]]:
    """``(path, reason)`` for every file of ``paths`` that PIL cannot fully decode (:func:`open_image`),
    in their order; ``workers`` > 0 decodes in that many DataLoader worker processes."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative int. Got {workers!r}")
    paths = [os.fspath(p) for p in paths]
    loader = torch.utils.data.DataLoader(_ScanDataset(paths), batch_size=None, num_workers=workers)
    return [(path, reason) for path, reason in zip(paths, loader, strict=True) if reason]


# --------------------------------------------------------------------------------------------
# Layout detection and label files


def build_dataset(
    root: str | Path,
    split: Literal["train", "val"],
    transform: Callable[[PIL.Image.Image], Any] | None = None,
    *,
    layout: Literal["auto", "imagefolder", "ilsvrc"] = "auto",
) -> ImageDataset:
    """The ``split`` of the dataset under ``root`` in the ImageFolder or ILSVRC2012 layout.

    ``layout="auto"``: a split with class subfolders is ILSVRC when a synset list is found
    (``LOC_synset_mapping.txt``, ``synset_words.txt``, ``synsets.txt``, devkit ``meta.mat``) and no
    ``classes.txt``, else ImageFolder; a flat split (images directly in ``root/val``) is ILSVRC val
    with labels from a ground-truth file.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'. Got {split!r}")
    if layout not in ("auto", "imagefolder", "ilsvrc"):
        raise ValueError(f"layout must be 'auto', 'imagefolder' or 'ilsvrc'. Got {layout!r}")
    root = Path(root).expanduser()
    split_dir = root / split
    if not split_dir.is_dir():
        raise GoogLeNetError(f"dataset split folder {split_dir} does not exist")
    folders = _class_folders(split_dir)
    if not folders:
        if layout == "imagefolder" or split == "train":
            raise GoogLeNetError(
                f"{split_dir} has no class subfolders (needed for layout {layout!r}, {split})"
            )
        return _ilsvrc_flat_val(root, split_dir, transform)
    if layout == "auto":
        ilsvrc = not (root / CLASSES_FILE).is_file() and _find_synset_source(root) is not None
        layout = "ilsvrc" if ilsvrc else "imagefolder"
    if layout == "ilsvrc":
        wnids, words = _ilsvrc_classes(root)
        class_to_idx = {w: i for i, w in enumerate(wnids)}
        names = [words.get(w) or w for w in wnids]
    else:
        class_ids, names = _imagefolder_classes(root, split_dir)
        class_to_idx = {c: i for i, c in enumerate(class_ids)}
    unknown = sorted(set(folders) - set(class_to_idx))
    if unknown:
        raise GoogLeNetError(
            f"folder {split_dir / unknown[0]} is not a known class ({len(class_to_idx)} classes from "
            f"{_class_source(root, layout)})"
        )
    samples = make_dataset(str(split_dir), class_to_idx, extensions=_IMG_EXTENSIONS, allow_empty=True)
    if not samples:
        raise GoogLeNetError(f"no images ({', '.join(_IMG_EXTENSIONS)}) found under {split_dir}")
    present = {label for _, label in samples}
    empty = [c for c, i in class_to_idx.items() if i not in present]
    if empty:
        logger.warning("%d classes have no images in %s (first: %s)", len(empty), split_dir, empty[0])
    return ImageDataset(samples, names, class_to_idx, transform, root=root, layout=layout)


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _class_source(root: Path, layout: str) -> str:
    if layout == "ilsvrc":
        source = _find_synset_source(root)
        return str(source) if source is not None else str(root / "train")
    return str(root / CLASSES_FILE) if (root / CLASSES_FILE).is_file() else "the sorted train folders"


def _imagefolder_classes(root: Path, split_dir: Path) -> tuple[list[str], list[str]]:
    """Class folder names and display names, in label order.

    ``root/classes.txt``: one class per line, the folder name, optionally followed by a tab and a
    display name. Without it: sorted folders of ``root/train`` (so that val labels match train
    labels even when val lacks a class), else of the split itself.
    """
    classes_file = root / CLASSES_FILE
    if classes_file.is_file():
        ids, names = [], []
        for lineno, line in enumerate(_read_lines(classes_file), 1):
            folder, _, name = line.partition("\t")
            folder = folder.strip()
            if not folder:
                raise GoogLeNetError(f"{classes_file}:{lineno}: empty class name")
            ids.append(folder)
            names.append(name.strip() or folder)
        if len(set(ids)) != len(ids):
            raise GoogLeNetError(f"{classes_file} lists a class twice")
        if not ids:
            raise GoogLeNetError(f"{classes_file} lists no classes")
        return ids, names
    train_dir = root / "train"
    folders = _class_folders(train_dir if train_dir.is_dir() else split_dir)
    return folders, list(folders)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"cannot read {path}: {exc}") from exc
    return [line for line in text.splitlines() if line.strip()]


def _find_synset_source(root: Path) -> Path | None:
    for path in _synset_candidates(root):
        if path.is_file():
            return path
    return None


def _synset_candidates(root: Path) -> list[Path]:
    return [
        *(d / KAGGLE_SYNSET_FILE for d in _kaggle_dirs(root)),
        *(root / name for name in SYNSET_LIST_FILES),
        root / DEVKIT_DATA_DIR / "meta.mat",
    ]


def _kaggle_dirs(root: Path) -> list[Path]:
    # Kaggle's archive puts LOC_*.{txt,csv} three levels above ILSVRC/Data/CLS-LOC/{train,val}.
    return [root, *list(root.resolve().parents)[:3]]


def _parse_synset_list(path: Path) -> list[tuple[str, str]]:
    """``(wnid, words)`` per line of a "nXXXXXXXX words" file, in file order."""
    if path.suffix == ".mat":
        return _parse_meta_mat(path)
    entries = []
    for lineno, line in enumerate(_read_lines(path), 1):
        wnid, *rest = line.split(maxsplit=1)
        words = rest[0] if rest else ""
        if not _WNID.match(wnid):
            raise GoogLeNetError(f"{path}:{lineno}: expected 'nXXXXXXXX words'. Got {line.strip()!r}")
        entries.append((wnid, words.strip()))
    if len({w for w, _ in entries}) != len(entries):
        raise GoogLeNetError(f"{path} lists a synset twice")
    return entries


def _parse_meta_mat(path: Path) -> list[tuple[str, str]]:
    """``(wnid, words)`` of the devkit's leaf synsets in ILSVRC2012_ID order.

    Written out because torchvision's ``parse_meta_mat`` is nested inside ``parse_devkit_archive``
    (not importable); same reading: the ``synsets`` struct array, leaves have ``num_children == 0``.
    """
    try:
        import scipy.io
    except ImportError:
        raise GoogLeNetError(f"reading {path} needs scipy (pip install scipy)") from None
    try:
        synsets = scipy.io.loadmat(str(path), squeeze_me=True)["synsets"]
        leaves = [s for s in synsets if int(s["num_children"]) == 0]
        entries = sorted((int(s["ILSVRC2012_ID"]), str(s["WNID"]), str(s["words"])) for s in leaves)
    except Exception as exc:  # scipy raises assorted errors on a damaged .mat file
        raise GoogLeNetError(f"cannot read devkit {path}: {exc}") from exc
    if [i for i, _, _ in entries] != list(range(1, len(entries) + 1)):
        raise GoogLeNetError(f"{path}: leaf ILSVRC2012_IDs are not 1..{len(entries)}")
    return [(wnid, words) for _, wnid, words in entries]


def _ilsvrc_classes(root: Path) -> tuple[list[str], dict[str, str]]:
    """Sorted WordNet ids (label order) and their words, from a synset list or the train folders."""
    source = _find_synset_source(root)
    if source is not None:
        entries = _parse_synset_list(source)
        return sorted(w for w, _ in entries), dict(entries)
    train_dir = root / "train"
    folders = _class_folders(train_dir) if train_dir.is_dir() else []
    if not folders:
        looked = ", ".join(str(p) for p in _synset_candidates(root))
        raise GoogLeNetError(
            f"no synset list found (looked for {looked}) and no class folders in {train_dir}"
        )
    return folders, {}


def _list_images(split_dir: Path) -> list[str]:
    return sorted(
        str(split_dir / e.name)
        for e in os.scandir(split_dir)
        if e.is_file() and has_file_allowed_extension(e.name, _IMG_EXTENSIONS)
    )


def _ilsvrc_flat_val(root: Path, split_dir: Path, transform: Callable | None) -> ImageDataset:
    """ILSVRC2012 val with images directly in ``split_dir``; labels from the first label file found."""
    paths = _list_images(split_dir)
    if not paths:
        raise GoogLeNetError(f"no images ({', '.join(_IMG_EXTENSIONS)}) found in {split_dir}")
    kaggle = _first_file(d / KAGGLE_SOLUTION_FILE for d in _kaggle_dirs(root))
    ground_truth = _first_file([root / GROUND_TRUTH_FILE, root / DEVKIT_DATA_DIR / GROUND_TRUTH_FILE])
    simple = _first_file(root / name for name in SIMPLE_LABEL_FILES)
    if kaggle is not None:
        wnids, words = _ilsvrc_classes(root)
        label_of, label_file = _kaggle_labels(kaggle, wnids), kaggle
    elif ground_truth is not None:
        wnids, words, label_of = _devkit_labels(root, ground_truth)
        label_file = ground_truth
    elif simple is not None:
        wnids, words = _ilsvrc_classes(root)
        label_of, label_file = _simple_labels(simple, len(wnids)), simple
    else:
        looked = [
            *(d / KAGGLE_SOLUTION_FILE for d in _kaggle_dirs(root)),
            root / GROUND_TRUTH_FILE,
            root / DEVKIT_DATA_DIR / GROUND_TRUTH_FILE,
            *(root / name for name in SIMPLE_LABEL_FILES),
        ]
        raise GoogLeNetError(
            f"{split_dir} holds images but no class folders, and no validation label file was found "
            f"(looked for {', '.join(str(p) for p in looked)})"
        )
    samples = []
    for path in paths:
        label = label_of(Path(path).name)
        if label is None:
            raise GoogLeNetError(f"no label for {path} in {label_file}")
        samples.append((path, label))
    class_to_idx = {w: i for i, w in enumerate(wnids)}
    names = [words.get(w) or w for w in wnids]
    return ImageDataset(samples, names, class_to_idx, transform, root=root, layout="ilsvrc")


def _first_file(candidates: Any) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _kaggle_labels(path: Path, wnids: list[str]) -> Callable[[str], int | None]:
    """Kaggle ``LOC_val_solution.csv``: ``ImageId,PredictionString`` = ``"nXXXXXXXX x y x y ..."``."""
    index = {w: i for i, w in enumerate(wnids)}
    labels: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GoogLeNetError(f"cannot read {path}: {exc}") from exc
    for lineno, row in enumerate(rows, 1):
        if lineno == 1 and row and row[0] == "ImageId":
            continue
        if not row:
            continue
        wnid = row[1].split()[0] if len(row) >= 2 and row[1].split() else ""
        if wnid not in index:
            raise GoogLeNetError(f"{path}:{lineno}: unknown or missing synset {wnid!r}")
        labels[row[0].strip()] = index[wnid]
    return lambda name: labels.get(Path(name).stem)


def _devkit_labels(
    root: Path, ground_truth: Path
) -> tuple[list[str], dict[str, str], Callable[[str], int | None]]:
    """Devkit ground truth: line k = ILSVRC2012_ID (1-based) of ``ILSVRC2012_val_{k:08d}.JPEG``.

    The ID -> synset mapping comes from ``ILSVRC2012_devkit_t12/data/meta.mat`` when present, else
    from ``synsets.txt`` / ``synset_words.txt`` whose line i is ILSVRC2012_ID i.
    """
    sources = [root / DEVKIT_DATA_DIR / "meta.mat", *(root / name for name in SYNSET_LIST_FILES)]
    source = _first_file(sources)
    if source is None:
        raise GoogLeNetError(
            f"{ground_truth} gives ILSVRC2012_IDs; mapping them to synsets needs one of "
            f"{', '.join(str(p) for p in sources)} (synset lists in ILSVRC2012_ID order)"
        )
    by_id = _parse_synset_list(source)
    id_order = [w for w, _ in by_id]
    if len(id_order) == 1000 and id_order == sorted(id_order):
        # The ILSVRC2012_ID order is not sorted (ID 1 is n02119789); Caffe's synset_words.txt is.
        raise GoogLeNetError(
            f"{source} is in sorted synset order, not ILSVRC2012_ID order, so it cannot decode "
            f"{ground_truth}; "
            f"use the devkit's meta.mat or a {SIMPLE_LABEL_FILES[1]} with 0-based sorted indices"
        )
    wnids = sorted(id_order)
    index = {w: i for i, w in enumerate(wnids)}
    ids = []
    for lineno, line in enumerate(_read_lines(ground_truth), 1):
        try:
            ilsvrc_id = int(line)
        except ValueError:
            raise GoogLeNetError(
                f"{ground_truth}:{lineno}: expected an ILSVRC2012_ID. Got {line!r}"
            ) from None
        if not 1 <= ilsvrc_id <= len(id_order):
            raise GoogLeNetError(
                f"{ground_truth}:{lineno}: ILSVRC2012_ID {ilsvrc_id} outside 1..{len(id_order)} ({source})"
            )
        ids.append(ilsvrc_id)

    def label_of(name: str) -> int | None:
        match = _VAL_ID.search(name)
        if match is None or not 1 <= int(match.group(1)) <= len(ids):
            return None
        return index[id_order[ids[int(match.group(1)) - 1] - 1]]

    return wnids, dict(by_id), label_of


def _simple_labels(path: Path, num_classes: int) -> Callable[[str], int | None]:
    """Caffe ``val.txt``: ``"ILSVRC2012_val_00000001.JPEG 65"``, 0-based index into sorted synsets."""
    labels: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise GoogLeNetError(f"{path}:{lineno}: expected '<file name> <label>'. Got {line.strip()!r}")
        label = int(parts[1])
        if not 0 <= label < num_classes:
            raise GoogLeNetError(f"{path}:{lineno}: label {label} outside 0..{num_classes - 1}")
        labels[Path(parts[0]).name] = label
    return labels.get


def select_images(count: int, limit: int | None) -> list[int]:
    """The indices of the images a run capped at ``limit`` looks at: ``limit`` spread evenly over
    ``range(count)`` (every ``count / limit``-th; folder datasets are sorted by class, so every class
    is sampled), all of them without a cap. ``evaluate --limit`` and ``report --max-images`` both
    ask this function, so a report's confusion matrix and its Table 3 come from the same images."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1. Got {limit}")
    if limit is None or limit >= count:
        return list(range(count))
    return [i * count // limit for i in range(limit)]
