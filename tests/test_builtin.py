"""The built-in dataset: layout, real JPEGs, determinism, the cache, crash safety and the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from googlenet.cache import cache_dir
from googlenet.data import builtin
from googlenet.data.builtin import (
    BUILTIN_CLASSES,
    ensure_builtin,
    is_complete,
    make_builtin,
    resolve_data,
)
from googlenet.data.scenes import MAX_ASPECT
from googlenet.errors import GoogLeNetError

from .helpers import REPO, cli_in_process, tree_bytes

TINY = dict(classes=3, train_per_class=4, val_per_class=2, image_size=48)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_builtin(tmp_path_factory.mktemp("tiny") / "set", workers=1, **TINY)


def test_layout_counts_and_marker(tiny: Path) -> None:
    names = (tiny / "classes.txt").read_text().splitlines()
    assert names == list(BUILTIN_CLASSES[:3])
    for split, per_class in (("train", 4), ("val", 2)):
        assert sorted(p.name for p in (tiny / split).iterdir()) == sorted(names)
        for name in names:
            files = sorted((tiny / split / name).glob("*.jpg"))
            assert [f.name for f in files] == [f"{name}_{i:04d}.jpg" for i in range(per_class)]
    info = json.loads((tiny / "builtin.json").read_text())
    assert info["params"] == {**TINY, "seed": 0}
    assert info["counts"] == {"train": 12, "val": 6}
    assert is_complete(tiny, TINY) and not is_complete(tiny, {**TINY, "seed": 1})
    assert len(BUILTIN_CLASSES) >= 20 and len(set(BUILTIN_CLASSES)) == len(BUILTIN_CLASSES)
    # ImageFolder numbers class folders in sorted order: label order must be that order for every K.
    assert list(BUILTIN_CLASSES) == sorted(BUILTIN_CLASSES)


def test_imagefolder_reads_it_in_classes_txt_order(tiny: Path) -> None:
    from torchvision.datasets import ImageFolder

    names = (tiny / "classes.txt").read_text().splitlines()
    for split, n in (("train", 12), ("val", 6)):
        ds = ImageFolder(str(tiny / split))
        assert ds.classes == names
        assert len(ds) == n
        image, label = ds[n - 1]
        assert label == len(names) - 1 and image.mode == "RGB"


def test_real_jpegs_non_square_with_varied_aspect(tiny: Path) -> None:
    sizes = []
    for path in tiny.rglob("*.jpg"):
        with Image.open(path) as im:
            assert im.format == "JPEG"
            im.load()
            sizes.append(im.size)
    assert len(sizes) == 18
    assert all(min(w, h) == 48 for w, h in sizes)
    assert all(max(w, h) <= round(48 * MAX_ASPECT) for w, h in sizes)
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)  # both orientations
    assert len({max(w, h) / min(w, h) for w, h in sizes}) >= 5


def test_deterministic_whatever_the_workers(tiny: Path, tmp_path: Path) -> None:
    again = make_builtin(tmp_path / "two_workers", workers=2, **TINY)
    assert tree_bytes(again) == tree_bytes(tiny)
    other = make_builtin(tmp_path / "seed1", workers=1, seed=1, **TINY)
    a, b = tree_bytes(tiny), tree_bytes(other)
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert set(a) == set(b) and all(a[k] != b[k] for k in jpgs)


def test_an_image_does_not_depend_on_the_number_of_classes(tiny: Path, tmp_path: Path) -> None:
    two = make_builtin(
        tmp_path / "two", classes=2, train_per_class=1, val_per_class=1, image_size=48, workers=1
    )
    for name in BUILTIN_CLASSES[:2]:
        for split in ("train", "val"):
            rel = Path(split, name, f"{name}_0000.jpg")
            assert (two / rel).read_bytes() == (tiny / rel).read_bytes()


def test_existing_directory_is_reused_or_refused(tiny: Path, tmp_path: Path) -> None:
    before = (tiny / "builtin.json").stat().st_mtime_ns
    assert make_builtin(tiny, **TINY) == tiny  # same parameters: reused, not rewritten
    assert (tiny / "builtin.json").stat().st_mtime_ns == before
    with pytest.raises(GoogLeNetError, match="other parameters"):
        make_builtin(tiny, **{**TINY, "seed": 3})
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(GoogLeNetError, match="not empty"):
        make_builtin(user, **TINY)
    assert (user / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("key", "value"), [("classes", 1), ("classes", 99), ("image_size", 31), ("train_per_class", -1)]
)
def test_bad_parameters_name_the_value(tmp_path: Path, key: str, value: int) -> None:
    with pytest.raises(GoogLeNetError, match=rf"{key}={value}"):
        make_builtin(tmp_path / "x", **{**TINY, key: value})
    assert not (tmp_path / "x").exists()


def test_resolve_data_builtin_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    root = resolve_data("builtin", **TINY)
    assert root.parent == tmp_path / "cache" and root.name.startswith("builtin-")
    assert is_complete(root, TINY)
    stamp = (root / "builtin.json").stat().st_mtime_ns
    assert resolve_data("builtin", **TINY) == root
    assert (root / "builtin.json").stat().st_mtime_ns == stamp  # not regenerated
    other = ensure_builtin(cache_dir=tmp_path / "elsewhere", **TINY)
    assert other.parent == tmp_path / "elsewhere" and other.name == root.name
    assert tree_bytes(other) == tree_bytes(root)
    assert ensure_builtin(**{**TINY, "seed": 5}) != root  # parameters are part of the key


def test_resolve_data_directory_and_missing_path(tiny: Path, tmp_path: Path) -> None:
    assert resolve_data(str(tiny)) == tiny
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(GoogLeNetError, match="no_such_dataset"):
        resolve_data(missing)


def test_leftover_temporary_directory_is_not_a_set(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    key = builtin.builtin_key(**TINY)
    # What a generation killed half-way leaves behind: a temporary sibling with some images.
    leftover = cache / f".builtin-{key}.tmp-12345-dead"
    (leftover / "train" / BUILTIN_CLASSES[0]).mkdir(parents=True)
    (leftover / "classes.txt").write_text("\n".join(BUILTIN_CLASSES[:3]) + "\n")
    assert not is_complete(leftover) and not (cache / f"builtin-{key}").exists()
    root = ensure_builtin(cache_dir=cache, **TINY)
    assert root == cache / f"builtin-{key}" and is_complete(root, TINY)
    assert not leftover.exists()  # cleaned up by the next generation
    # A directory with the images but no marker is not complete either.
    (root / "builtin.json").unlink()
    assert not is_complete(root)


def _ensure_in_child(cache: str) -> None:
    ensure_builtin(cache_dir=cache, workers=1, **TINY)


def test_concurrent_callers_share_one_set(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ensure_in_child, args=(str(tmp_path),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"builtin-{builtin.builtin_key(**TINY)}"]
    root = next(tmp_path.iterdir())
    assert is_complete(root, TINY) and len(list(root.rglob("*.jpg"))) == 18


def test_cli_make_builtin(tmp_path: Path) -> None:
    out = tmp_path / "data"
    flags = ["--classes", "3", "--train-per-class", "4", "--val-per-class", "2", "--image-size", "48"]
    first = cli_in_process("data", "make-builtin", str(out), *flags, "--workers", "2")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("\n") == 1 and str(out) in first.stdout and "12 train / 6 val" in first.stdout
    assert is_complete(out, TINY)
    again = cli_in_process("data", "make-builtin", str(out), *flags)
    assert again.returncode == 0 and "reused" in again.stdout


def test_check_params_names_the_cli_flag() -> None:
    from googlenet.cli.data_cmd import _FLAGS

    for key, value in (("val_per_class", -2), ("workers", 0), ("train_per_class", 0), ("seed", -1)):
        with pytest.raises(GoogLeNetError, match=f"^{_FLAGS[key]} {value}: "):
            builtin.check_params({key: value}, names=_FLAGS)


# Two values through the command's main; the library test above covers the other checks, and
# check_params that the other flags are named the same way.
@pytest.mark.parametrize(("flag", "value"), [("--classes", "1"), ("--image-size", "16")])
def test_cli_bad_value_one_line_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    res = cli_in_process("data", "make-builtin", str(tmp_path / "d"), flag, value)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("googlenet data: error:") and f"{flag} {value}" in lines[0]
    assert not (tmp_path / "d").exists()


def test_cli_killed_mid_generation_leaves_no_set(tmp_path: Path) -> None:
    out = tmp_path / "data"
    args = [sys.executable, "-m", "googlenet", "data", "make-builtin", str(out), "--classes", "3"]
    proc = subprocess.Popen(
        [*args, "--workers", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob(".data.tmp-*/train/*/*.jpg")):  # wait until images are being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not out.exists()  # the half set sits in a temporary sibling, never at DIR
    assert list(tmp_path.glob(".data.tmp-*"))
    done = cli_in_process(
        "data", "make-builtin", str(out), "--classes", "3", "--train-per-class", "4", "--val-per-class", "2"
    )
    assert done.returncode == 0, done.stderr
    assert is_complete(out) and not list(tmp_path.glob(".data.tmp-*"))
