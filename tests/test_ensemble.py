"""training.ensemble and `googlenet train-ensemble` (section 7): real training of two tiny members through
the command's real ``main`` in this process, the index, resume and skip on re-run, same initial weights and
different data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from googlenet.data.builtin import make_builtin
from googlenet.runs import resolve_checkpoints
from googlenet.training.config import TrainConfig
from googlenet.training.ensemble import ensemble_hash, member_config, member_dir

from .helpers import cli_in_process

# A learning rate so small that no weight moves (|lr x grad| is far below float32's spacing at the
# weights' magnitude): the trained raw weights then show the initial weights, while BatchNorm's
# running statistics still record which images each member saw.
FROZEN_LR = "1e-30"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ensemble_data")
    return make_builtin(root / "set", classes=3, train_per_class=4, val_per_class=2, image_size=48, workers=1)


def _command(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train-ensemble",
        "--n",
        "2",
        "--out",
        str(out),
        "--data",
        str(data),
        "--model",
        "googlenet_bn",
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--lr",
        FROZEN_LR,
        "--weight-decay",
        "0",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--no-channels-last",
        "--num-threads",
        "1",
        "--seed",
        "5",
        *extra,
    ]


def test_member_configs_differ_only_in_seed_and_directory(tmp_path: Path) -> None:
    base = TrainConfig(data="somewhere", epochs=3, seed=10)
    configs = [member_config(base, i, tmp_path, same_init=False) for i in range(3)]
    assert [c.seed for c in configs] == [10, 11, 12]
    assert [Path(c.out) for c in configs] == [tmp_path / f"member_{i:02d}" for i in range(3)]
    for c in configs:
        changed = {k for k, v in c.to_dict().items() if v != base.to_dict()[k]}
        assert changed <= {"seed", "out", "init_seed"}
    # the ensemble hash follows the recipe and --same-init, not the member count or the directory
    assert ensemble_hash(base, True) != ensemble_hash(base, False)
    assert ensemble_hash(base, True) != ensemble_hash(
        TrainConfig(data="somewhere", epochs=3, seed=10, lr=0.1), True
    )
    assert ensemble_hash(base, True) == ensemble_hash(
        TrainConfig(data="somewhere", epochs=3, seed=10, out="x"), True
    )
    assert [member_config(base, i, tmp_path).init_seed for i in range(3)] == [10, 10, 10]
    assert [c.init_seed for c in configs] == [None, None, None]  # each member: its own seed


def test_train_ensemble_two_members_index_resume_and_skip(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ens"
    command = _command(data, out)
    first = cli_in_process(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    paths = [Path(line) for line in first.stdout.split()]
    assert paths == [member_dir(out, i) / "model.safetensors" for i in range(2)]

    index = json.loads((out / "ensemble.json").read_text())
    assert index["format"] == "googlenet-ensemble" and index["n"] == 2 and index["base_seed"] == 5
    assert [m["status"] for m in index["members"]] == ["complete", "complete"]
    assert [m["seed"] for m in index["members"]] == [5, 6]
    assert [m["init_seed"] for m in index["members"]] == [5, 5]  # the same initial weights
    for i in range(2):
        run = member_dir(out, i)
        assert (run / "metrics.jsonl").is_file() and (run / "checkpoints" / "last.pt").is_file()
        saved = (run / "config.yaml").read_text()
        assert f"seed: {5 + i}" in saved

    # `googlenet evaluate --checkpoint OUT` reads the index: the members' averaged weights, in order
    assert [c.weights for c in resolve_checkpoints([out])] == paths

    raw = [load_file(str(member_dir(out, i) / "model_raw.safetensors")) for i in range(2)]
    params = [k for k in raw[0] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    weights_equal = all(
        raw[0][k].shape == raw[1][k].shape and (raw[0][k] - raw[1][k]).abs().max() < 1e-20 for k in params
    )
    # The data differ: BatchNorm statistics gathered over each member's crops differ.
    assert any(not raw[0][k].equal(raw[1][k]) for k in raw[0] if k.endswith("running_mean"))
    # The initial weights are the same with --same-init (the default; FROZEN_LR keeps them visible).
    assert weights_equal

    # An interrupted second member (checkpoint, no final weights) is resumed by re-running; the
    # finished first member is skipped and left untouched.
    stamp = paths[0].stat().st_mtime_ns
    paths[1].unlink()
    index["members"][1]["status"] = "interrupted"
    (out / "ensemble.json").write_text(json.dumps(index))
    again = cli_in_process(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "member 1/2" in again.stderr and "complete, skipped" in again.stderr
    assert "member 2/2" in again.stderr and "resuming" in again.stderr
    assert paths[0].stat().st_mtime_ns == stamp
    assert paths[1].is_file()
    assert [m["status"] for m in json.loads((out / "ensemble.json").read_text())["members"]] == [
        "complete"
    ] * 2

    # Another recipe in the same directory is refused, naming the index.
    other = cli_in_process(*_command(data, out, "--epochs", "2"))
    assert other.returncode == 2
    assert "ensemble.json" in other.stderr and len(other.stderr.strip().splitlines()) == 1

    # Data the members cannot read stops a re-run before it writes: the index stays as it was.
    paths[1].unlink()  # a member left to train
    before = (out / "ensemble.json").read_bytes()
    (data / "val").rename(data / "val_moved")
    try:
        broken = cli_in_process(*command)
    finally:
        (data / "val_moved").rename(data / "val")
    assert broken.returncode == 2 and "error:" in broken.stderr, broken.stderr[-3000:]
    assert (out / "ensemble.json").read_bytes() == before
