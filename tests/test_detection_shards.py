"""Section 8's long jobs at scale: shards, chunks, merge, resume after a kill, and the cost said first.

``googlenet proposals --shard I/N`` fills its chunks of the proposals cache; the same command without
``--shard`` merges them into the file a one-process run writes, byte for byte. A run killed part-way
continues from the chunks it wrote. ``evaluate-detection --detector --shard I/N`` leaves each shard's
detections beside its JSON file and the merge gives the one-process result. ``--dry-run`` says the
work and its cost without doing it. Real processes on a tiny built-in detection set.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.proposal_job import propose_split
from googlenet.detection.proposals import (
    compute_proposals,
    fill_proposals,
    proposal_method,
    proposals_cache_path,
)
from googlenet.errors import GoogLeNetError
from googlenet.parts import (
    PartsFolder,
    Shard,
    chunk_images,
    image_chunks,
    parse_shard,
    read_arrays,
    write_arrays,
)
from googlenet.training.distributed import job_shard

from .helpers import REPO, cli_in_process, process_env

METHOD = "selective-search"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards") / "det"
    return make_builtin_detection(root, classes=3, train_images=2, val_images=7, image_size=64, workers=1)


# --------------------------------------------------------------------------- shards and chunks


def test_shards_cut_the_same_chunks_whatever_their_count() -> None:
    for n in (0, 1, 7, 63, 64, 130, 5000):
        chunks = image_chunks(n)
        assert [i for c in chunks for i in c] == list(range(n))  # consecutive, every image once
        assert all(len(c) == chunk_images(n) for c in chunks[:-1])
        for count in (1, 2, 3, 8):
            shards = [Shard(i, count).images(n) for i in range(count)]
            assert sorted(i for s in shards for i in s) == list(range(n))  # disjoint, complete
            # A shard's images are whole chunks: a part made under one count serves another.
            starts = {c.start for c in chunks}
            assert all(s[0] in starts for s in shards if s)
    assert chunk_images(7) == 1 and chunk_images(64 * 64 * 2) == 64


@pytest.mark.parametrize(("text", "expected"), [("0/2", Shard(0, 2)), (" 3 / 4 ", Shard(3, 4))])
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected and str(expected) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "0/0", "1/2/3"])
def test_bad_shards_are_one_line(text: str) -> None:
    with pytest.raises(GoogLeNetError, match="I/N") as info:
        parse_shard(text)
    assert "\n" not in str(info.value)


def test_torchrun_ranks_are_the_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert job_shard() is None and job_shard("1/3") == Shard(1, 3)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert job_shard() == Shard(1, 2) and job_shard(Shard(1, 2)) == Shard(1, 2)
    with pytest.raises(GoogLeNetError, match="torchrun's ranks are the shards"):
        job_shard("0/4")


def test_a_part_of_other_settings_is_refused(tmp_path: Path) -> None:
    folder = PartsFolder(tmp_path / "parts", key="a")
    folder.write("chunk-000000", {"x": np.arange(3)})
    assert np.array_equal(folder.read("chunk-000000")["x"], np.arange(3))
    assert folder.read("chunk-000001") is None
    (tmp_path / "parts" / "chunk-000002.npz").write_bytes(b"damaged")
    assert folder.read("chunk-000002") is None  # made again, not trusted
    with pytest.raises(GoogLeNetError, match="other data or settings") as info:
        PartsFolder(tmp_path / "parts", key="b").read("chunk-000000")
    assert "\n" not in str(info.value) and str(tmp_path / "parts") in str(info.value)
    write_arrays(tmp_path / "entry.npz", "k", {"y": np.ones(2)})
    assert read_arrays(tmp_path / "entry.npz", "k")["y"].tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------- the library


def test_shards_fill_the_cache_and_the_merge_is_the_one_process_result(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache"))
    dataset = open_detection_dataset(data, "val")
    method = proposal_method(METHOD)
    expected = compute_proposals(dataset, method)
    entry = proposals_cache_path(dataset, method)
    first = fill_proposals(dataset, method, shard=Shard(0, 3))
    assert not first.merged and not entry.exists()
    assert list(first.proposals) == [dataset.image_ids[i] for i in Shard(0, 3).images(len(dataset))]
    assert first.chunks == 7 and first.chunks_left == 7 - first.images
    # Shard 1/3 has not run, 2/3 has: the merge names the missing one, in one line, and computes nothing.
    fill_proposals(dataset, method, shard=Shard(2, 3))
    with pytest.raises(GoogLeNetError, match=r"unfinished shard\(s\): 1/3 ") as info:
        fill_proposals(dataset, method)
    assert "\n" not in str(info.value)
    again = fill_proposals(dataset, method, shard=Shard(0, 3))  # done already: nothing computed
    assert again.computed == 0 and again.done_before == first.images
    fill_proposals(dataset, method, shard=Shard(1, 3))
    merged = fill_proposals(dataset, method)
    assert merged.merged and merged.computed == 0 and entry.is_file() and not merged.parts.exists()
    assert list(merged.proposals) == list(expected)
    assert all(np.array_equal(merged.proposals[k], expected[k]) for k in expected)
    # Once merged, a shard reads its share from the entry.
    late = fill_proposals(dataset, method, shard=Shard(1, 3))
    assert late.merged and late.from_entry and late.computed == 0
    # The proposals job of such a shard then holds the whole split, as the merge does.
    job = propose_split(dataset, METHOD, shard=Shard(1, 3), workers=1).methods[0]
    assert not job.is_part and job.fill.from_entry and list(job.proposals or {}) == list(expected)


# --------------------------------------------------------------------------- real processes


def _env(cache: Path) -> dict[str, str]:
    return process_env(GOOGLENET_CACHE=str(cache), OMP_NUM_THREADS="1")


def _proposals(data: Path, out: Path, *extra: str) -> list[str]:
    args = ["proposals", "--data", str(data), "--method", METHOD, "--out", str(out), "--workers", "1"]
    return [sys.executable, "-m", "googlenet", *args, *extra]


def _one_process_file(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache-one"))
    one = tmp_path / "one.json"
    done = cli_in_process(*_proposals(data, one)[3:])
    assert done.returncode == 0, done.stderr
    return one.read_bytes()


def test_two_shards_on_two_processes_merge_into_the_one_process_file(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "sharded.json"
    # Two machines sharing the cache folder: both shards at once, in processes of their own.
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    shards = [
        subprocess.Popen(_proposals(data, out, "--shard", f"{i}/2"), env=_env(cache), cwd=REPO, **pipes)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in shards]
    assert [p.returncode for p in shards] == [0, 0], [o[1][-2000:] for o in outputs]
    assert "shard 0/2: 3 of 7 images" in outputs[0][0] and "shard 1/2: 4 of 7 images" in outputs[1][0]
    assert not out.exists()  # a shard writes its part only
    monkeypatch.setenv("GOOGLENET_CACHE", str(cache))
    merge = cli_in_process(*_proposals(data, out)[3:])
    assert merge.returncode == 0, merge.stderr
    assert "merged the 7 chunks" in merge.stdout
    assert out.read_bytes() == _one_process_file(data, tmp_path, monkeypatch)


def test_a_killed_run_continues_where_it_stopped(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "resumed.json"
    dataset = open_detection_dataset(data, "val")
    monkeypatch.setenv("GOOGLENET_CACHE", str(cache))
    parts = proposals_cache_path(dataset, proposal_method(METHOD)).with_suffix(".parts")
    run = subprocess.Popen(
        _proposals(data, out), env=_env(cache), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(list(parts.glob("chunk-*.npz"))) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    done = len(list(parts.glob("chunk-*.npz")))
    assert 2 <= done < 7 and not out.exists()
    resumed = cli_in_process(*_proposals(data, out)[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"({done} of 7 images were already done)" in resumed.stdout
    assert out.read_bytes() == _one_process_file(data, tmp_path, monkeypatch)


# --------------------------------------------------------------------------- detector evaluation


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A detector of one random member (64 px regions, selective-search-2x) for the built-in set."""
    import torch

    import googlenet
    from googlenet.detection.detector import DetectorManifest, write_manifest
    from googlenet.detection.training import member_dirs
    from googlenet.runs import RunLayout

    classes = open_detection_dataset(data, "val").class_names
    out = tmp_path_factory.mktemp("shards-detector") / "detector"
    names = member_dirs(out, 1)
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        model = googlenet.create_model("googlenet_bn", num_classes=len(classes) + 1, aux_logits=False)
        model.meta.input_size = (3, 64, 64)
        weights = RunLayout(out / name).weights
        weights.parent.mkdir(parents=True)
        googlenet.save(model.eval(), weights)
    settings = proposal_method("selective-search-2x").settings()
    write_manifest(out, DetectorManifest(classes, names, settings, image_size=64, variant="googlenet_bn"))
    return out


def _evaluate(data: Path, detector: Path, out: Path, *extra: str) -> list[str]:
    args = ["evaluate-detection", "--data", str(data), "--detector", str(detector)]
    args += ["--rule", "ilsvrc", "--workers", "1", "--json", str(out), *extra]
    return [sys.executable, "-m", "googlenet", *args]


def _without_times(record: dict) -> dict:
    runs = [
        {k: v for k, v in r.items() if k not in ("seconds_per_image", "overhead_ratio")}
        for r in record["runs"]
    ]
    return {**{k: v for k, v in record.items() if k != "date"}, "runs": runs}


def test_detector_shards_on_two_processes_merge_into_the_one_process_result(
    data: Path, detector: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "eval.json"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    env = _env(tmp_path / "cache")
    shards = [
        subprocess.Popen(_evaluate(data, detector, out, "--shard", f"{i}/2"), env=env, cwd=REPO, **pipes)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in shards]
    assert [p.returncode for p in shards] == [0, 0], [o[1][-2000:] for o in outputs]
    assert "shard 0/2: 3 of 7 images; part written" in outputs[0][0] and not out.exists()
    parts = Path(f"{out}.parts")
    assert sorted(p.name for p in parts.iterdir()) == ["shard-0-of-2.npz", "shard-1-of-2.npz"]

    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache"))
    # A shard missing: the merge names it in one line and writes nothing.
    (parts / "shard-1-of-2.npz").rename(tmp_path / "aside.npz")
    missing = cli_in_process(*_evaluate(data, detector, out)[3:])
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "1/2" in missing.stderr
    (tmp_path / "aside.npz").rename(parts / "shard-1-of-2.npz")
    # Other settings (R-CNN's proposals) are refused rather than mixed with these parts.
    other = cli_in_process(*_evaluate(data, detector, out, "--shard", "0/2", "--proposals", METHOD)[3:])
    assert (
        other.returncode == 2 and other.stderr.count("\n") == 1 and "other data or settings" in other.stderr
    )
    merged = cli_in_process(*_evaluate(data, detector, out)[3:])
    assert merged.returncode == 0, merged.stderr
    assert "7 images of" in merged.stdout

    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache-one"))
    one = cli_in_process(*_evaluate(data, detector, tmp_path / "one.json")[3:])
    assert one.returncode == 0, one.stderr
    sharded, single = json.loads(out.read_text()), json.loads((tmp_path / "one.json").read_text())
    assert [(r["members"], r["proposals"]) for r in single["runs"]] == [(1, "selective-search-2x")]
    assert _without_times(sharded) == _without_times(single)


# --------------------------------------------------------------------------- the cost said first


def test_the_estimates_count_only_the_work_left(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from googlenet.detection.estimates import estimate_proposals

    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache"))
    dataset = open_detection_dataset(data, "val")
    method = proposal_method(METHOD)
    whole = estimate_proposals(dataset, method, workers=1)
    ((part,),) = [whole.parts]
    assert (part.items, part.unit, whole.ranks, whole.done) == (7, "images", 1, None)
    assert whole.seconds == pytest.approx(7 * part.throughput.seconds_per_item)
    fill_proposals(dataset, method, shard=Shard(0, 2))  # 3 of the 7 images done
    shard = estimate_proposals(dataset, method, shard=Shard(1, 2), workers=1)
    assert shard.parts[0].items == 4 and shard.ranks == 2 and shard.done.startswith("3 of 7 images")
    assert "shard 1/2: 4 of them" in shard.work and "2 ranks" in shard.format()
    fill_proposals(dataset, method, shard=Shard(1, 2))
    assert estimate_proposals(dataset, method).parts == ()  # nothing left to compute


def test_dry_runs_say_the_cost_and_write_nothing(
    data: Path, detector: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GOOGLENET_CACHE", str(cache))
    proposals = cli_in_process(*_proposals(data, tmp_path / "p.json", "--dry-run")[3:])
    assert proposals.returncode == 0, proposals.stderr
    assert "7 images of" in proposals.stdout and "estimate: about" in proposals.stdout
    evaluation = cli_in_process(*_evaluate(data, detector, tmp_path / "e.json", "--dry-run")[3:])
    assert evaluation.returncode == 0, evaluation.stderr
    assert "7 images x" in evaluation.stdout and "x 1 member x 1 proposal method" in evaluation.stdout
    out = tmp_path / "detector"
    args = [
        "train-detector",
        "--data",
        data,
        "--out",
        out,
        "--members",
        "2",
        "--epochs",
        "1",
        "--image-size",
        "64",
    ]
    training = cli_in_process(*args, "--batch-size", "8", "--workers", "0", "--dry-run")
    assert training.returncode == 0, training.stderr
    assert "2 of 2 members x 1 epoch x" in training.stdout and "estimate: about" in training.stdout
    assert not any(p.exists() for p in (tmp_path / "p.json", tmp_path / "e.json", out, cache / "proposals"))
