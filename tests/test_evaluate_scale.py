"""The section 7 protocol at scale: spread over torchrun's ranks, resumed after a kill, its cost said first.

Real processes throughout: the one-process reference and the torchrun runs are ``python -m googlenet
evaluate`` subprocesses (Gloo, CPU), the killed run dies by SIGKILL. Every process runs one torch
thread (torchrun's default per rank), so that the kernels, and so the bytes, are the same in all of
them. The data has an odd number of images (7) and an unreadable one, and the chunks (2 images) make
batches of several images, whose bytes the kernels may change with the batch: the results must
still be identical, not close.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from googlenet.errors import GoogLeNetError
from googlenet.evaluation.parts import EvaluationParts
from googlenet.evaluation.protocol import CropProbabilities, EvalModel, crop_probabilities
from googlenet.parts import changed_settings

from .helpers import (
    REPO,
    ChannelMeans,
    cli_in_process,
    noise_images,
    process_env,
    run_cli,
    torchrun,
    what_was_evaluated,
    write_evaluation_runs,
)

ONE_THREAD = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    paths = write_evaluation_runs(tmp_path_factory.mktemp("evaluate_scale"))  # image 2 of 7 unreadable
    root, data = paths["root"], paths["data"]
    runs = [str(paths["run_a"]), str(paths["run_b"])]
    args = ["evaluate", "--data", str(data), "--checkpoint", *runs, "--crops", "1", "10",
            "--chunk-images", "2", "--batch-size", "20", "--workers", "0", "--device", "cpu"]  # fmt: skip
    reference = root / "one.json"
    proc = run_cli(*args, "--json", reference, cwd=root, timeout=180, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "root": root,
        "data": data,
        "runs": runs,
        "args": args,
        "reference": json.loads(reference.read_text()),
    }


def test_two_torchrun_ranks_give_the_one_process_result(setup) -> None:
    out = setup["root"] / "two.json"
    proc = torchrun(*setup["args"], "--json", out, cwd=setup["root"], timeout=180, **ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two, one = json.loads(out.read_text()), setup["reference"]
    # Table 3, the spread, the effects, per-model errors, the unreadable image: the same bytes.
    assert what_was_evaluated(two) == what_was_evaluated(one)
    assert two["num_images"] == 7 and two["num_unreadable"] == 1  # counted once, by the rank that met it
    assert two["unreadable"][0]["index"] == 2 and two["spread"] and two["effects"]
    # Four chunks of 2 images: rank 0 took images 0-3, rank 1 images 4-6.
    assert (one["world_size"], two["world_size"]) == (1, 2)
    shares = [(r["rank"], r["first_image"], r["stop_image"], r["computed"]) for r in two["ranks"]]
    assert shares == [(0, 0, 4, 4), (1, 4, 7, 3)]
    # Rank 0 alone prints: one table; the estimate first, with each rank's share.
    assert proc.stdout.count("Table 3 (section 7)") == 1
    assert proc.stderr.count("evaluate: 7 images x 11 crops (1 + 10) x 2 models = 154 forward passes") == 1
    assert "(2 ranks: " in proc.stderr
    assert two["estimate"]["ranks"] == 2 and two["estimate"]["seconds"] > 0


KILLED_RUN = """
import os, signal, sys
import googlenet

seen = 0

def progress(n):
    global seen
    seen += n
    if seen == 5:  # images 0-4 queued: chunks 0 and 1 (images 0-3) written, chunk 2 not finished
        os.kill(os.getpid(), signal.SIGKILL)

googlenet.evaluate(sys.argv[1], sys.argv[3:], crops=[1, 10], chunk_images=2, batch_size=20, workers=0,
                   device="cpu", work_dir=sys.argv[2], progress=progress)
"""


def test_killed_evaluation_resumes_under_another_world_size(setup) -> None:
    root = setup["root"]
    out = root / "resumed.json"
    work = root / "resumed.json.parts"  # where the command keeps its parts by default
    script = root / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    killed = subprocess.run(
        [sys.executable, script, setup["data"], work, *setup["runs"]],
        capture_output=True, text=True, timeout=180, env=process_env(**ONE_THREAD), cwd=root,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(p.name for p in work.glob("chunk-*")) == [
        "chunk-000000.safetensors",
        "chunk-000001.safetensors",
    ]

    # Another setting is refused in one line naming it, and the parts are left as they were.
    changed = cli_in_process(*setup["args"], "--crops", "1", "10", "144", "--json", out)
    assert changed.returncode == 2 and len(changed.stderr.strip().splitlines()) == 1, changed.stderr
    assert "--crops 1 10 there, 1 10 144 now" in changed.stderr and str(work) in changed.stderr
    assert len(list(work.glob("chunk-*"))) == 2 and not out.exists()

    # --dry-run says what is left and how long it will take, and does nothing.
    dry = cli_in_process(*setup["args"], "--json", out, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "already done: 4 of 7 images (2 of 4 chunks of 2 images in" in dry.stdout
    assert "forward passes/s" in dry.stdout and "estimate: about" in dry.stdout
    assert not out.exists() and len(list(work.glob("chunk-*"))) == 2

    # The same command, now with two ranks: rank 0's share is all done, rank 1 computes its own.
    proc = torchrun(*setup["args"], "--json", out, cwd=root, timeout=180, **ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already done: 4 of 7 images" in proc.stderr
    resumed = json.loads(out.read_text())
    assert what_was_evaluated(resumed) == what_was_evaluated(setup["reference"])
    assert [(r["resumed"], r["computed"]) for r in resumed["ranks"]] == [(4, 0), (0, 3)]
    assert not work.exists()  # the result is written: the parts are gone


def test_dry_run_counts_the_work_and_writes_nothing(setup, tmp_path) -> None:
    from googlenet.evaluation.evaluate import estimate_evaluation

    estimate = estimate_evaluation(
        setup["data"], setup["runs"], crops=[10, 1], limit=3, batch_size=20, workers=0, device="cpu",
        work_dir=tmp_path / "w",
    )  # fmt: skip
    assert estimate.work == "3 images x 11 crops (1 + 10) x 2 models = 66 forward passes at 64 px"
    forward, reading = estimate.parts
    # Both models are the same network: timed once, on batches of two 10-crop images (--batch-size 20).
    assert (forward.items, forward.unit) == (66, "forward passes")
    assert "googlenet_bn torch fp32 x 2, batches of 20 crops" in forward.what
    assert reading.items == 3 and reading.unit == "images"
    assert estimate.seconds == pytest.approx(forward.seconds + reading.seconds) and estimate.done is None
    assert not (tmp_path / "w").exists()


def test_chunks_fix_the_batches(tmp_path) -> None:
    model = ChannelMeans()
    parts: list[tuple[int, CropProbabilities]] = []
    pictures = noise_images() * 2  # 6 images
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a jpeg")
    every = [*pictures[:3], bad, *pictures[3:]]  # 7 images, the 4th unreadable
    whole = crop_probabilities(
        every, [EvalModel("m", model, (0, 0, 0), (1, 1, 1))], ["1", "10"], 32,
        batch_size=40, chunk_size=3, on_chunk=lambda first, part: parts.append((first, part)),
    )  # fmt: skip
    # No batch crosses a chunk boundary (images 0-2, 3-5, 6): "1" and "10" batches per chunk.
    assert model.batches == [3, 30, 2, 20, 1, 10]
    assert [(first, p.num_images, p.unreadable) for first, p in parts] == [
        (0, 3, []),
        (3, 3, [(0, parts[1][1].unreadable[0][1])]),
        (6, 1, []),
    ]
    # The chunks put together are the whole; a run of the last two chunks alone gives their bytes.
    again = CropProbabilities({}, ["m"], ["1", "10"], 7)
    for first, part in parts:
        again.place(part, first)
    assert again.unreadable == whole.unreadable
    tail = crop_probabilities(
        every[3:], [EvalModel("m", ChannelMeans(), (0, 0, 0), (1, 1, 1))], ["1", "10"], 32,
        batch_size=40, chunk_size=3,
    )  # fmt: skip
    for key, probs in whole.probs.items():
        assert torch.equal(again.probs[key].nan_to_num(-1), probs.nan_to_num(-1))
        assert torch.equal(tail.probs[key].nan_to_num(-1), probs[3:].nan_to_num(-1))


def test_parts_refuse_other_settings_and_redo_damaged_chunks(tmp_path) -> None:
    settings = {"crops": [1, 10], "combine": "mean", "models": ["aa"], "limit": None, "chunk_images": 2}
    parts = EvaluationParts(tmp_path / "w", settings)
    parts.check()
    parts.start()
    part = CropProbabilities({(0, "1"): torch.rand(2, 3)}, ["m"], ["1"], 2, "mean", [(1, "unreadable x")])
    parts.write(0, 0, part)
    parts.write(1, 2, part)
    assert parts.done() == {0, 1}
    read = parts.read(1, 2, 2)
    assert read is not None and torch.equal(read.probs[(0, "1")], part.probs[(0, "1")])
    assert read.unreadable == [(1, "unreadable x")]
    parts.path(0).write_bytes(parts.path(0).read_bytes()[:40])  # cut short by a crash
    assert parts.read(0, 0, 2) is None  # computed again
    with pytest.raises(GoogLeNetError, match="is a part of another evaluation"):
        parts.read(1, 4, 2)  # not the images this chunk holds
    other = EvaluationParts(tmp_path / "w", {**settings, "crops": [144], "models": ["bb"], "limit": 10})
    with pytest.raises(GoogLeNetError) as info:
        other.check()
    message = str(info.value)
    assert (
        "--crops 1 10 there, 144 now; the models (tensor hashes) differ; --limit None there, 10 now"
        in message
    )
    assert "delete" in message and "\n" not in message
    assert changed_settings(settings, settings) == []
    parts.remove()
    assert not (tmp_path / "w").exists()
