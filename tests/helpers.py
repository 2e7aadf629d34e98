"""What several test files share, defined once: the repository's root, the command line run as a
process, in this process or under ``torchrun``, its one-line error contract, a report page's checks,
thread counts put back, and small PASCAL VOC folders of drawn scenes.

Fixtures live in ``conftest.py``; the functions here are imported by name (``from .helpers import ...``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import torch

from googlenet.detection.detections import Detection

REPO = Path(__file__).resolve().parents[1]

# What torchrun sets in the processes it starts; a test's own processes start without them.
DISTRIBUTED_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# --------------------------------------------------------------------------- the command line


def process_env(**variables: str) -> dict[str, str]:
    """The environment of a test's subprocess: this process's, without torchrun's variables, plus
    ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_VARIABLES}
    return {**env, **variables}


def run_cli(
    *args: object, timeout: float = 300, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run ``python -m googlenet ARGS`` as a real subprocess and capture its output.

    ``env`` holds variables set on top of this process's environment (see :func:`process_env`).
    """
    return subprocess.run(
        [sys.executable, "-m", "googlenet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=process_env(**(env or {})),
        check=False,
    )


def torchrun(*args: object, cwd: Path, timeout: float = 300, **variables: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m googlenet ARGS``: two real processes (Gloo on the
    CPU), one OpenMP thread each, started from ``cwd`` with :func:`process_env` (plus ``variables``)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*command, "-m", "googlenet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=process_env(**{"OMP_NUM_THREADS": "1", **variables}),
        check=False,
    )


def cli_in_process(*args: object) -> subprocess.CompletedProcess:
    """``googlenet ARGS`` through the real ``googlenet.cli.main`` in this process, as ``run_cli`` reports
    it (exit status, stdout, stderr), without the seconds a new interpreter spends importing torch.

    For what does not need a process of its own; signals, threads and exit codes set by the
    interpreter keep ``run_cli``. An exception escaping ``main`` is printed as the interpreter would
    (a traceback, status 1).
    """
    import io
    import logging
    import traceback

    from googlenet.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    # What a command sets up for its run is put back: the training commands add a handler to the
    # ``googlenet`` logger and set its level; --deterministic sets an environment variable.
    logger = logging.getLogger("googlenet")
    handlers, level, environ = list(logger.handlers), logger.level, dict(os.environ)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            for handler in [h for h in logger.handlers if h not in handlers]:
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(level)
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            os.environ.update(environ)
    return subprocess.CompletedProcess(["googlenet", *argv], code, out.getvalue(), err.getvalue())


def one_error_line(proc: subprocess.CompletedProcess, command: str, *needles: str) -> str:
    """The CLI's contract for bad input: exit 2, one stderr line ``googlenet COMMAND: error: ...`` holding
    every needle, no traceback, nothing on stdout. Returns the message after that prefix."""
    prefix = f"googlenet {command}: error: "
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == "", (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0].removeprefix(prefix)


def check_report_page(folder: Path, title: str) -> None:
    """A report's ``index.html`` read with ``html.parser``: ``title`` in <title> and <h1>, one <table>
    per markdown table of ``index.md`` with as many rows, no <pre>, every <img src> a file there."""
    import re
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.images: list[str] = []
            self.text: dict[str, str] = {}
            self.inside: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            if tag == "img":
                self.images.append(str(dict(attrs)["src"]))
            if tag in ("title", "h1"):
                self.inside = tag
                self.text[tag] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == self.inside:
                self.inside = None

        def handle_data(self, data: str) -> None:
            if self.inside is not None:
                self.text[self.inside] += data

    page = Page()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    markdown = (folder / "index.md").read_text(encoding="utf-8")
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    separators = [line for line in table_lines if re.fullmatch(r"\|(?: *:?-+:? *\|)+", line)]
    assert page.text.get("title") == title and page.text.get("h1") == title, page.text
    assert separators and page.tags.count("table") == len(separators), (page.tags.count("table"), separators)
    assert page.tags.count("tr") == len(table_lines) - len(separators)  # header and body rows
    assert "pre" not in page.tags
    assert len(page.images) == len(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))
    assert page.images and all((folder / src).is_file() for src in page.images), page.images


# --------------------------------------------------------------------------- threads and files


@contextlib.contextmanager
def threads_kept() -> Iterator[None]:
    """Put back torch's and OpenCV's thread counts, which the code inside may set (``--threads``)."""
    import cv2

    threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        yield
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def suite_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache folder (``GOOGLENET_CACHE``) every test of this session runs with: what one test makes
    there (a built-in set, proposals) the next finds."""
    return tmp_path_factory.getbasetemp() / "googlenet-cache"


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by its relative path: two folders are equal byte for byte or not."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- classification


class ChannelMeans(torch.nn.Module):
    """Logits = per-channel means of the input times ``W``: computable by hand for any crop. Records
    the size of every batch it sees."""

    W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.5, -1.0], [-0.5, 0.5, 2.0]])

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return x.mean((2, 3)) @ self.W


def noise_images() -> list[PIL.Image.Image]:
    """Three RGB noise images of other shapes (50 x 40, 40 x 60, 45 x 45), the same every call."""
    rng = np.random.default_rng(0)
    return [
        PIL.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in [(50, 40), (40, 60), (45, 45)]
    ]


def write_jpeg(
    path: Path, seed: int = 0, size: tuple[int, int] = (56, 40), fmt: str = "JPEG", mode: str = "RGB"
) -> Path:
    """A noise image of ``size`` (width, height) in ``mode`` at ``path``, its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    array = rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    PIL.Image.fromarray(array).convert(mode).save(path, format=fmt)
    return path


def make_folder_split(root: Path, split: str, classes: dict[str, int]) -> None:
    """``root/split/<class>/<class>_<k>.jpg``: an ImageFolder split with ``classes[name]`` images a class."""
    for i, (name, count) in enumerate(classes.items()):
        for k in range(count):
            write_jpeg(root / split / name / f"{name}_{k}.jpg", seed=10 * i + k)


def write_evaluation_runs(root: Path) -> dict[str, Path]:
    """What an evaluation test reads: a built-in set of 3 classes (val: 6 images and an unreadable
    ``zz_broken.jpg``, image 2 of 7), two runs of random ``googlenet_bn`` weights (``run_a``,
    ``run_b``) and an ensemble of ``run_b`` (``ens``). Returns those paths and ``root``."""
    import googlenet
    from googlenet.data.builtin import make_builtin

    data = make_builtin(
        root / "data", classes=3, train_per_class=1, val_per_class=2, image_size=72, seed=0, workers=1
    )
    first_class = sorted(p for p in (data / "val").iterdir() if p.is_dir())[0]
    (first_class / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    torch.manual_seed(0)
    paths = {"root": root, "data": data}
    names = (data / "classes.txt").read_text().split()
    model = googlenet.create_model("googlenet_bn", num_classes=3, aux_logits=False, class_names=names)
    for name in ("run_a", "run_b"):
        model.reset_classifier(3)  # a second model more cheaply than building another network
        model.meta.class_names = names  # which reset_classifier forgets
        googlenet.save(model, root / name / "model.safetensors")
        (root / name / "config.yaml").write_text("image_size: 64\nepochs: 1\n")
        paths[name] = root / name
    (root / "ens").mkdir()
    (root / "ens" / "ensemble.json").write_text('{"members": ["../run_b"]}')
    paths["ens"] = root / "ens"
    return paths


# When, how fast and by how many processes: everything else an evaluation records is what it found.
RUN_KEYS = ("date", "wall_time_s", "images_per_s", "world_size", "ranks", "estimate")


def what_was_evaluated(record: dict) -> dict:
    """An evaluation's record without :data:`RUN_KEYS`: equal for two runs that found the same."""
    return {k: v for k, v in record.items() if k not in RUN_KEYS}


# --------------------------------------------------------------------------- detection


@dataclass
class Target:
    """What the detection code reads from a dataset's targets: the image id, its boxes (inclusive
    1-based), their labels (class 0 when not given) and difficult flags (none when not given)."""

    image_id: str
    boxes: np.ndarray
    labels: np.ndarray | None = None
    difficult: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.zeros(len(self.boxes)) if self.labels is None else self.labels
        self.labels = np.asarray(labels, dtype=np.int64)
        difficult = np.zeros(len(self.labels)) if self.difficult is None else self.difficult
        self.difficult = np.asarray(difficult, dtype=bool)


def det(image_id: str, label: int, score: float, bbox: Sequence[float]) -> Detection:
    """One detection, as the detections file holds it."""
    return Detection(image_id=image_id, label=label, score=score, bbox=np.asarray(bbox, dtype=float))


# --------------------------------------------------------------------------- VOC folders

# An object as a VOC annotation holds it: class name, box (inclusive 1-based xmin, ymin, xmax, ymax),
# difficult.
VocObject = tuple[str, Sequence[float], bool]


def write_voc(
    root: Path,
    images: Mapping[str, tuple[PIL.Image.Image | np.ndarray, Sequence[VocObject] | str]],
    splits: Mapping[str, Iterable[str]],
    *,
    classes: Sequence[str] | None = None,
    quality: int = 95,
) -> Path:
    """A PASCAL VOC folder at ``root``: ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``,
    ``ImageSets/Main/<split>.txt`` and, given ``classes``, ``classes.txt``; added to what is there.

    ``images`` maps an image id to its picture and its objects, which the built-in detection set's own
    writer (:func:`googlenet.detection.builtin.annotation_xml`) writes with the picture's size; or to
    the annotation's text as it is to be written, for files meant to be odd or broken.
    """
    from googlenet.detection.builtin import annotation_xml

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (picture, objects) in images.items():
        image = picture if isinstance(picture, PIL.Image.Image) else PIL.Image.fromarray(picture)
        image.save(root / "JPEGImages" / f"{image_id}.jpg", "JPEG", quality=quality)
        annotation = root / "Annotations" / f"{image_id}.xml"
        if isinstance(objects, str):
            annotation.write_text(objects, encoding="utf-8")
            continue
        records = [
            {"name": name, "box": box, "difficult": difficult, "truncated": False, "occluded": False}
            for name, box, difficult in objects
        ]
        annotation.write_bytes(annotation_xml(f"{image_id}.jpg", *image.size, records))
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    if classes is not None:
        (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return root


Scene = Callable[[int], tuple[np.ndarray, Sequence[Sequence[float]]]]


def write_scene_voc(
    root: Path, scene: Scene, indices: Iterable[int], split: str, classes: Sequence[str]
) -> Path:
    """One split of drawn scenes as a VOC folder: image ``f"{i:06d}"`` is ``scene(i)``, its j-th object
    of class ``classes[j % len(classes)]``; ``classes.txt`` lists ``classes``."""
    images = {}
    for i in indices:
        pixels, boxes = scene(i)
        objects = [(classes[j % len(classes)], [int(v) for v in box], False) for j, box in enumerate(boxes)]
        images[f"{i:06d}"] = (pixels, objects)
    return write_voc(root, images, {split: list(images)}, classes=classes)


def rectangles_scene(index: int, size: int = 80) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A flat grey ``size`` x ``size + 8`` image with one or two flat rectangles (red, then blue); their
    inclusive 1-based boxes. Few pixels and no texture: what MultiBox's tiny runs learn from."""
    rng = np.random.default_rng(index)
    pixels = np.full((size, size + 8, 3), 128, dtype=np.uint8)
    boxes = []
    for j in range(1 + index % 2):
        w, h = (int(v) for v in rng.integers(14, size // 2, 2))
        x0 = int(rng.integers(0, size + 8 - w))
        y0 = int(rng.integers(0, size - h))
        pixels[y0 : y0 + h, x0 : x0 + w] = (230, 40, 40) if j == 0 else (30, 30, 220)
        boxes.append((x0 + 1, y0 + 1, x0 + w, y0 + h))
    return pixels, boxes


QUADRANT_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30)]
QUADRANT_CLASSES = ("square", "disc")  # the j-th object: a rectangle when j is even, else an ellipse


def quadrants_scene(seed: int, size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of three flat objects (rectangles, an ellipse), one per quadrant, on a textured
    background, and their inclusive 1-based boxes: regions that Selective Search can find."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(70, 140, (size // 10 + 1, size // 10 + 1, 3)).astype(np.uint8)
    bg = np.asarray(PIL.Image.fromarray(coarse).resize((size, size), PIL.Image.BILINEAR)).astype(np.int16)
    bg = np.clip(bg + rng.integers(-12, 13, bg.shape), 0, 255).astype(np.uint8)
    image = PIL.Image.fromarray(bg)
    draw = PIL.ImageDraw.Draw(image)
    boxes = []
    half = size // 2
    for j, (qx, qy) in enumerate([(0, 0), (1, 0), (0, 1)]):
        w, h = (int(v) for v in rng.integers(half // 2, half - 10, 2))
        x0 = qx * half + int(rng.integers(4, half - w - 4))
        y0 = qy * half + int(rng.integers(4, half - h - 4))
        # PIL fills x0..x1 inclusive, 0-based; the annotation is 1-based.
        draw_shape = draw.rectangle if j % 2 == 0 else draw.ellipse
        draw_shape([x0, y0, x0 + w - 1, y0 + h - 1], fill=QUADRANT_COLOURS[j])
        boxes.append([x0 + 1, y0 + 1, x0 + w, y0 + h])
    return np.asarray(image), np.array(boxes, dtype=np.float64)


# --------------------------------------------------------------------------- detectors


def write_random_detector(
    out: Path, data: Path, members: int, *, size: int = 64, method: str = "selective-search-2x"
) -> Path:
    """A detector folder of ``members`` untrained ``googlenet_bn`` region classifiers (member i drawn
    with seed i) for the classes of ``data``'s val split, proposals ``method``, ``size`` px regions;
    its manifest names ``data``. Scoring it runs the real networks on the real proposals."""
    import googlenet
    from googlenet.detection.datasets import open_detection_dataset
    from googlenet.detection.detector import DetectorManifest, write_manifest
    from googlenet.detection.proposals import proposal_method
    from googlenet.detection.training import member_dirs
    from googlenet.runs import RunLayout

    classes = open_detection_dataset(data, "val").class_names
    names = member_dirs(out, members)
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        model = googlenet.create_model("googlenet_bn", num_classes=len(classes) + 1, aux_logits=False)
        model.meta.input_size = (3, size, size)
        weights = RunLayout(out / name).weights
        weights.parent.mkdir(parents=True)
        googlenet.save(model.eval(), weights)
    settings = proposal_method(method).settings()
    manifest = DetectorManifest(
        classes, names, settings, image_size=size, variant="googlenet_bn", data=str(data)
    )
    write_manifest(out, manifest)
    return out
