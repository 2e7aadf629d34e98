"""What a run keeps and how it starts: the warmed-up Polyak average, the config hash of older runs,
--keep-checkpoints and `googlenet prune`, and Ctrl-C while the command line loads.

Real runs of the classifier on a tiny built-in set (3 classes x 8 images at 64 px, one epoch), the
commands through their real ``main``; the Ctrl-C case in a real interpreter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from googlenet.data.builtin import make_builtin
from googlenet.runs import RunLayout
from googlenet.training.config import TrainConfig, config_hash
from googlenet.training.optim import ema_decay_at, polyak_average
from googlenet.training.train import fit

from .helpers import REPO, cli_in_process


def test_warmed_up_average_follows_its_decays_and_resumes_them() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = polyak_average(model, 0.999, warmup=True)
    expected = None
    for t in range(4):
        with torch.no_grad():
            model[0].weight.add_(torch.randn_like(model[0].weight))
        model(torch.randn(4, 3))  # BatchNorm's running statistics (and its integer count) move too
        current = model[0].weight.detach().clone()
        decay = ema_decay_at(t, 0.999, True)
        expected = current if t == 0 else decay * expected + (1 - decay) * current
        average.update_parameters(model)
        torch.testing.assert_close(average.module[0].weight, expected)
    assert [round(ema_decay_at(t, 0.999, True), 4) for t in (1, 18, 8990, 10**5)] == [
        0.1818,
        0.6786,
        0.999,
        0.999,
    ]
    assert ema_decay_at(5, 0.9, False) == 0.9
    # The update count is part of the average's state: a resumed run continues the same decays.
    restored = polyak_average(model, 0.999, warmup=True)
    restored.load_state_dict(average.state_dict())
    assert int(restored.n_averaged) == 4


def test_new_options_keep_the_hash_of_older_runs() -> None:
    # Before ema_warmup and keep_checkpoints existed, the hash was of every other non-runtime key.
    older_runtime = {"out", "resume", "workers", "log_every", "checkpoint_every", "handle_signals"}
    config = TrainConfig()
    older = {
        k: v
        for k, v in config.to_dict().items()
        if k not in older_runtime | {"ema_warmup", "keep_checkpoints"}
    }
    digest = hashlib.sha256(json.dumps(older, sort_keys=True, default=str).encode()).hexdigest()
    assert config_hash(config) == digest  # so an older run's checkpoint and ensemble.json still match
    assert config_hash(dataclasses.replace(config, ema_warmup=True)) != digest
    assert config_hash(dataclasses.replace(config, keep_checkpoints="none")) == digest  # runtime only


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tiny"
    return make_builtin(root, classes=3, train_per_class=8, val_per_class=4, image_size=64, seed=0, workers=1)


def _fit(data: Path, out: Path, **fields: object) -> Path:
    config = TrainConfig(data=str(data), out=str(out), model="googlenet_bn", epochs=1, batch_size=8,
                         image_size=64, workers=0, num_threads=1, precision="fp32", **fields)  # fmt: skip
    return fit(config).run_dir


def test_keep_checkpoints_and_prune(data: Path, tmp_path: Path) -> None:
    bare = RunLayout(_fit(data, tmp_path / "bare", keep_checkpoints="none"))
    assert bare.weights.is_file() and bare.raw_weights.is_file() and not bare.checkpoints.exists()
    resumed = cli_in_process("train", "--resume", bare.root, "--epochs", "2")
    assert resumed.returncode == 2 and "kept only its weights" in resumed.stderr, resumed.stderr

    run = RunLayout(_fit(data, tmp_path / "all"))  # the classifier's default: all
    assert run.best_checkpoint.is_file() and run.best_weights.is_file() and run.last_checkpoint.is_file()
    dry = cli_in_process("prune", run.root, "--keep-checkpoints", "last", "--dry-run")
    assert dry.returncode == 0 and "would remove checkpoints/best.pt, model_best.safetensors" in dry.stdout
    assert run.best_checkpoint.is_file()
    last = cli_in_process("prune", run.root, "--keep-checkpoints", "last")
    assert last.returncode == 0, last.stderr
    assert (
        not run.best_checkpoint.exists() and not run.best_weights.exists() and run.last_checkpoint.is_file()
    )
    done = cli_in_process("prune", run.root)  # default: none
    assert done.returncode == 0 and not run.checkpoints.exists() and run.weights.is_file()
    # An ensemble's member that has not finished keeps what continues it.
    ensemble = tmp_path / "ens"
    (ensemble / "member_00" / "checkpoints").mkdir(parents=True)
    (ensemble / "member_00" / "checkpoints" / "last.pt").write_bytes(b"x")
    (ensemble / "ensemble.json").write_text(json.dumps({"members": ["member_00"]}))
    left = cli_in_process("prune", ensemble)
    assert left.returncode == 0 and "has not finished" in left.stdout
    assert (ensemble / "member_00" / "checkpoints" / "last.pt").is_file()


def test_ctrl_c_while_the_command_line_loads_is_one_line(tmp_path: Path) -> None:
    # A torch whose import is interrupted, as a Ctrl-C in the first seconds interrupts the real one.
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = {"PYTHONPATH": f"{fake.parent}:{REPO / 'src'}", "PATH": "/usr/bin:/bin"}
    entry = "import sys; from googlenet.cli import main; sys.exit(main())"  # the console script's
    for argv in (["-m", "googlenet", "summary"], ["-c", entry, "summary"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 130, done.stderr
        assert done.stderr.strip() == "googlenet: interrupted", done.stderr
