"""Tests of training.train / training.engine: the section 6 recipe, the run directory, exact resume.

Real things throughout: JPEG files on disk (the built-in generator, tiny), the ``googlenet train``
command in subprocesses where the process matters (the reference run, real SIGKILL / SIGTERM) and
through its real ``main`` in this process for the resumes and the one-line refusals. Kept
small (3 classes x 8 images, 64 px, batch 5, one thread) so that the whole file runs in well under two
minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

import googlenet
from googlenet.data.builtin import make_builtin
from googlenet.errors import GoogLeNetError
from googlenet.evaluation.metrics import topk_correct
from googlenet.models.model import GoogLeNetOutputs
from googlenet.runs import resolve_checkpoint
from googlenet.training.checkpoint import load_checkpoint
from googlenet.training.config import TrainConfig, config_hash, resolve_config, resume_config
from googlenet.training.engine import googlenet_loss, train_step
from googlenet.training.loading import load_model, model_from_checkpoint
from googlenet.training.optim import build_scheduler, lr_factor
from googlenet.training.task import CLASSIFICATION, recipe_loss
from googlenet.training.train import fit

from .helpers import cli_in_process

REQUIRED_METRICS = {
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1_err",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "avg_val_top1_err",
    "avg_val_top5_err",
    "images_per_s",
    "epoch_time_s",
    "skipped_files",
}
BAD_NAME = "zz_broken.jpg"
# 24 readable images + 1 unreadable = 25 = 5 batches of 5: every file is used every epoch.
RUN_FLAGS = [
    "--image-size", "64", "--batch-size", "5", "--epochs", "2", "--num-threads", "1",
    "--deterministic", "--precision", "fp32", "--seed", "3",
]  # fmt: skip


# `googlenet train`'s wiring around the library's fit, in a script: it pauses the real process after
# step argv[1] until a signal arrives (the per-step callback of fit), so that a test can signal it
# mid-run at a known step. The pause waits for fit's own handler to have run (it chains it).
HOLD_SCRIPT = r"""
import argparse, signal, sys, time

import googlenet
from googlenet.cli.common import add_recipe_arguments, configure_logging, recipe_overrides, stopped_early
from googlenet.training.config import resolve_config

hold_at = int(sys.argv[1])
parser = argparse.ArgumentParser()
add_recipe_arguments(parser)
args = parser.parse_args(sys.argv[2:])
configure_logging()
config = resolve_config(args.config_file, recipe_overrides(args))


def hold(step):
    if step != hold_at:
        return
    received = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        def chained(number, frame, fits=signal.getsignal(signum)):
            received.append(number)
            fits(number, frame)
        signal.signal(signum, chained)
    print(f"holding after step {step}", flush=True)
    deadline = time.monotonic() + 120
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)


result = googlenet.fit(config, on_step=hold)
sys.exit(stopped_early(result, "train", f"googlenet train --resume {result.run_dir}") or 0)
"""


def _train_holding(hold_at: int, args: list[str], log, tmp_path: Path) -> subprocess.Popen:
    """A real process training as ``googlenet train ARGS`` does, through ``googlenet.fit(config,
    on_step=...)``, paused after step ``hold_at`` until it gets a signal; its output goes to ``log``."""
    script = tmp_path / "train_holding.py"
    script.write_text(HOLD_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(hold_at), *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "googlenet", "train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in set in miniature, plus one file in the train split that is not an image."""
    root = make_builtin(
        tmp_path_factory.mktemp("data") / "tiny",
        classes=3,
        train_per_class=8,
        val_per_class=4,
        image_size=64,
        seed=0,
        workers=1,
    )
    first_class = sorted(p for p in (root / "train").iterdir() if p.is_dir())[0]
    (first_class / BAD_NAME).write_bytes(b"this is not a JPEG")
    return root


@pytest.fixture(scope="module")
def baseline(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted CLI run; the reference for the run-dir contract and the resume tests."""
    out = tmp_path_factory.mktemp("runs") / "baseline"
    config = out.parent / "cfg.yaml"
    # YAML sets lr and epochs; the flag --epochs 2 must beat the YAML's 7; momentum stays default.
    # The rate halves after every epoch (5 steps), so an epoch's rate differs from the one after it.
    config.write_text(
        yaml.safe_dump({"lr": 0.02, "epochs": 7, "ema_decay": 0.9, "lr_step_epochs": 1, "lr_gamma": 0.5})
    )
    proc = _cli(
        "--data", str(data_dir), "--out", str(out), "--config", str(config), *RUN_FLAGS,
        "--checkpoint-every", "2", "--workers", "0", "--log-every", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def _weights(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {n: load_file(run / n) for n in ("model.safetensors", "model_raw.safetensors")}


def _assert_bit_equal(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    for name in wa:
        assert wa[name].keys() == wb[name].keys()
        diff = [k for k in wa[name] if not torch.equal(wa[name][k], wb[name][k])]
        assert not diff, f"{name}: {len(diff)} tensors differ, first {diff[0]}"


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{text!r} never appeared in {path}")


# --------------------------------------------------------------------------- the run directory


def test_cli_writes_the_whole_run_dir(baseline: Path, data_dir: Path) -> None:
    for name in ("config.yaml", "env.json", "metrics.jsonl", "train.log", "model.safetensors"):
        assert (baseline / name).is_file(), name
    assert (baseline / "checkpoints" / "last.pt").is_file()
    assert (baseline / "checkpoints" / "best.pt").is_file()
    assert list((baseline / "tensorboard").glob("events.out.tfevents.*"))

    # defaults < YAML < flags, and the resolved config is what was written
    saved = yaml.safe_load((baseline / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["lr"] == 0.02 and saved["momentum"] == 0.9
    assert saved["data"] == str(data_dir)

    env = json.loads((baseline / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["world_size"] == 1 and "cpu" in env

    records = [json.loads(line) for line in (baseline / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [5, 10]
    for r in records:
        assert r.keys() >= REQUIRED_METRICS
        assert r["top_k"] == 2  # 3 classes: top-5 becomes top-2 (top-3 would always be right)
        assert r["skipped_files"] == 1  # the broken file, once per epoch
        assert r["train_images"] == 24 and r["val_images"] == 12
        assert all(math.isfinite(r[k]) for k in REQUIRED_METRICS)
    # lr 0.02 at batch 32, scaled to batch 5: each record holds the rate its epoch trained with,
    # not the halved one the scheduler moved to after the epoch's last step
    assert records[0]["lr"] == pytest.approx(0.02 * 5 / 32)
    assert records[1]["lr"] == pytest.approx(0.02 * 5 / 32 * 0.5)
    assert BAD_NAME in (baseline / "train.log").read_text()

    # the exported model: averaged weights, class names, config hash; differs from the raw weights
    model = googlenet.load(baseline / "model.safetensors")
    classes = (data_dir / "classes.txt").read_text().split()
    assert model.meta.class_names == classes and model.num_classes == 3
    meta = googlenet.weights.store.read_metadata(baseline / "model.safetensors")
    assert meta["training_config_hash"] == config_hash(TrainConfig.from_dict(saved))
    w = _weights(baseline)
    differ = [
        k
        for k in w["model.safetensors"]
        if not torch.equal(w["model.safetensors"][k], w["model_raw.safetensors"][k])
    ]
    assert len(differ) > 100
    # ...and it is evaluated: its val loss is reported next to the raw one, and differs from it
    assert records[-1]["avg_val_loss"] != records[-1]["val_loss"]

    ckpt = load_checkpoint(baseline / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["batch"] == 0 and ckpt["step"] == 10


def test_yaml_precedence_and_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 1\nbatch_size: 16\nmodel_options: {dropout: 0.0}\n")
    c = resolve_config(cfg, {"batch_size": 8, "model_options": {"aux": {"dropout": 0.0}}})
    assert c.lr == 1.0 and isinstance(c.lr, float)  # YAML beats the default, int accepted as float
    assert c.batch_size == 8  # the flag beats YAML
    assert c.momentum == 0.9 and c.lr_gamma == 0.96 and c.aux_loss_weight == 0.3  # defaults: section 6
    assert c.model_options == {"dropout": 0.0, "aux": {"dropout": 0.0}}  # mappings merge key by key

    cfg.write_text("lr: 0.1\nlearning_rate: 3\n")
    with pytest.raises(GoogLeNetError, match=r"c\.yaml.*learning_rate"):
        resolve_config(cfg)
    cfg.write_text("epochs: ten\n")
    with pytest.raises(GoogLeNetError, match="epochs must be an integer"):
        resolve_config(cfg)
    with pytest.raises(GoogLeNetError, match=r"nope\.yaml"):
        resolve_config(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- the recipe


def test_lr_schedule_step_and_warmup() -> None:
    # section 6: x0.96 every 8 epochs, at the iteration where the epoch count crosses 8, 16, ...
    f = lambda it, **kw: lr_factor(it, iters_per_epoch=10, step_epochs=8, gamma=0.96, **kw)  # noqa: E731
    assert f(0) == 1.0 and f(79) == 1.0
    assert f(80) == pytest.approx(0.96) and f(159) == pytest.approx(0.96)
    assert f(160) == pytest.approx(0.96**2)
    # linear warm-up from 0.1 over 2 epochs, then the step schedule counted from iteration 0
    assert f(0, warmup_epochs=2, warmup_start_factor=0.1) == pytest.approx(0.1)
    assert f(10, warmup_epochs=2, warmup_start_factor=0.1) == pytest.approx(0.55)
    assert f(20, warmup_epochs=2, warmup_start_factor=0.1) == 1.0

    # the LambdaLR built from a config drives the optimizer's groups (bias group at lr x bias_lr_mult)
    config = TrainConfig(lr_step_epochs=0.5, lr_gamma=0.5, warmup_epochs=0.2, warmup_start_factor=0.5)
    w = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [w], "lr": 0.1}, {"params": [b], "lr": 0.2}], lr=0.1)
    sched = build_scheduler(opt, config, iters_per_epoch=10)
    seen = []
    for _ in range(12):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx([0.05, 0.1])  # warm-up start
    assert seen[1] == pytest.approx([0.075, 0.15])
    assert seen[2] == pytest.approx([0.1, 0.2])
    assert seen[5] == pytest.approx([0.05, 0.1])  # 0.5 epochs = 5 iterations -> x0.5
    assert seen[10] == pytest.approx([0.025, 0.05])


def test_loss_is_main_plus_0_3_aux(one_thread: None) -> None:
    torch.manual_seed(0)
    model = googlenet.create_model("googlenet", num_classes=4, dropout=0.0)
    model.eval()  # no dropout: the same outputs twice
    x = torch.randn(3, 3, 64, 64)
    y = torch.tensor([0, 3, 1])
    with torch.no_grad():
        out = model.forward_train(x)
    main, a1, a2 = (F.cross_entropy(t, y) for t in out)
    expected = main + 0.3 * (a1 + a2)
    assert googlenet_loss(out, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert googlenet_loss(out, y, aux_loss_weight=1.0).item() == pytest.approx(
        (main + a1 + a2).item(), rel=1e-6
    )
    assert googlenet_loss(out.logits, y).item() == pytest.approx(main.item(), rel=1e-6)
    # the training step optimises exactly that loss (computed before its update)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    result = train_step(model, opt, x, y, channels_last=False)
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert topk_correct(out.logits, y, [1, 4])[1] == 3


# --------------------------------------------------------------------------- resume and faults


def test_sigkill_mid_epoch_then_resume_is_bit_exact(baseline: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    with open(log, "w") as f:
        # Two DataLoader workers here, none on resume: augmentation must not depend on them.
        proc = _train_holding(
            7,
            ["--data", str(data_dir), "--out", str(out), "--config", str(baseline.parent / "cfg.yaml"),
             *RUN_FLAGS, "--checkpoint-every", "2", "--workers", "2"],
            f, tmp_path,
        )  # fmt: skip
        _wait_for(log, "holding after step 7", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 1, 6)  # mid-epoch 2, step 7 is lost
    assert not (out / "model.safetensors").exists()

    proc2 = cli_in_process("train", "--resume", out, "--workers", "0")  # in-process: the kill was the point
    assert proc2.returncode == 0, proc2.stderr
    _assert_bit_equal(baseline, out)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]


def test_sigterm_checkpoints_and_exits_143(baseline: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "term"
    log = tmp_path / "term.log"
    with open(log, "w") as f:
        proc = _train_holding(
            3,
            ["--data", str(data_dir), "--out", str(out), "--config", str(baseline.parent / "cfg.yaml"),
             *RUN_FLAGS, "--workers", "0"],
            f, tmp_path,
        )  # fmt: skip
        _wait_for(log, "holding after step 3", proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 143, text
    assert f"googlenet train --resume {out}" in text
    assert text.count("stopped by SIGTERM") == 1, text  # the CLI says it once; train.log keeps it too
    assert "stopped by SIGTERM after step 3" in (out / "train.log").read_text()
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 3, 3)  # no --checkpoint-every: the signal's

    proc2 = cli_in_process("train", "--resume", out)
    assert proc2.returncode == 0, proc2.stderr
    _assert_bit_equal(baseline, out)


def _nan_at_call(n: int):
    """A task whose loss turns NaN at its ``n``-th call (the loss is the task's to give)."""

    def build_loss(config: TrainConfig):
        loss, calls = recipe_loss(config), []

        def poisoned(outputs, labels):
            calls.append(1)
            value = loss(outputs, labels)
            return value * float("nan") if len(calls) == n else value

        return poisoned

    return dataclasses.replace(CLASSIFICATION, build_loss=build_loss)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    config = TrainConfig(
        data=str(data_dir), out=str(out), image_size=64, batch_size=5, epochs=1, workers=0,
        precision="fp32", checkpoint_every=2, handle_signals=False, num_threads=1,
    )  # fmt: skip
    with pytest.raises(GoogLeNetError, match=r"non-finite loss \(nan\) at step 3 \(epoch 1, batch 2\)"):
        fit(config, task=_nan_at_call(3))
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    assert not (out / "model.safetensors").exists()
    # a second fit into the same directory refuses to overwrite the run
    with pytest.raises(GoogLeNetError, match="already holds a training run"):
        fit(config)


def test_resume_errors_name_the_file(baseline: Path, tmp_path: Path) -> None:
    with pytest.raises(GoogLeNetError, match=r"config\.yaml not found"):
        resume_config(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    with pytest.raises(GoogLeNetError, match="cannot change 'lr'"):
        resume_config(run, {"lr": 0.5})
    # a finished run trains further when resumed with more epochs
    result = fit(resume_config(run, {"epochs": 3, "workers": 0, "handle_signals": False}))
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3] and result.step == 15
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 3
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    proc = cli_in_process("train", "--resume", run)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("googlenet train: error: cannot resume: checkpoint") and str(last) in lines[-1]
    )
    last.unlink()
    with pytest.raises(GoogLeNetError, match=re.escape(f"checkpoint {last} not found")):
        fit(resume_config(run))


def test_config_of_older_versions_resumes(baseline: Path, tmp_path: Path) -> None:
    # Older versions wrote their testing options (debug_hold_at_step, debug_nan_at_step) into
    # config.yaml; they are ignored, and the run is the same run.
    run = tmp_path / "old_config"
    run.mkdir()
    saved = yaml.safe_load((baseline / "config.yaml").read_text())
    (run / "config.yaml").write_text(
        yaml.safe_dump({**saved, "debug_hold_at_step": 7, "debug_nan_at_step": None}, sort_keys=False)
    )
    config = resume_config(run)
    assert config_hash(config) == config_hash(TrainConfig.from_dict(saved))
    assert not hasattr(config, "debug_hold_at_step")


def test_resume_reads_the_best_score_of_older_checkpoints(baseline: Path, tmp_path: Path) -> None:
    # Older versions kept the best averaged-weights score as best_avg_val_top1_err, whatever the
    # task's best metric; such a last.pt still resumes, its best score carried on.
    run = tmp_path / "old"
    shutil.copytree(baseline, run)
    last, best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    records = state["history"]
    assert state["best_score"] == min(r["avg_val_top1_err"] for r in records)
    del state["best_score"]
    state["best_avg_val_top1_err"] = -1.0  # below any error: kept only if it was read
    torch.save(state, last)
    best_before = best.read_bytes()
    result = fit(resume_config(run, {"epochs": 3, "workers": 0, "handle_signals": False}))
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3] and result.best_score == -1.0
    assert best.read_bytes() == best_before  # epoch 3 did not beat the old best
    resaved = load_checkpoint(last)
    assert resaved["best_score"] == -1.0 and "best_avg_val_top1_err" not in resaved


# --------------------------------------------------------------------------- data


def test_strict_data_names_the_bad_file(data_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=str(data_dir), out=str(tmp_path / "strict"), image_size=64, batch_size=5, epochs=1,
        workers=0, strict_data=True, handle_signals=False, num_threads=1,
    )  # fmt: skip
    with pytest.raises(GoogLeNetError, match=f"unreadable image .*{re.escape(BAD_NAME)}.*train split"):
        fit(config)


def _ilsvrc_tree(src: Path, root: Path) -> list[str]:
    """A fake ILSVRC2012 folder from the tiny built-in set: train/nXXXXXXXX/*.JPEG, flat val/ with
    Caffe's val.txt, synset_words.txt."""
    classes = [p.name for p in sorted((src / "train").iterdir()) if p.is_dir()]
    wnids = [f"n{1000 + i:08d}" for i in range(len(classes))]
    (root / "val").mkdir(parents=True)
    (root / "synset_words.txt").write_text(
        "".join(f"{w} {c} thing\n" for w, c in zip(wnids, classes, strict=True))
    )
    lines = []
    k = 0
    for label, (cls, wnid) in enumerate(zip(classes, wnids, strict=True)):
        (root / "train" / wnid).mkdir(parents=True)
        for i, img in enumerate(sorted((src / "train" / cls).glob("*.jpg"))):
            if img.name != BAD_NAME:
                shutil.copy(img, root / "train" / wnid / f"{wnid}_{i}.JPEG")
        for img in sorted((src / "val" / cls).glob("*.jpg")):
            k += 1
            name = f"ILSVRC2012_val_{k:08d}.JPEG"
            shutil.copy(img, root / "val" / name)
            lines.append(f"{name} {label}\n")
    (root / "val.txt").write_text("".join(lines))
    return [f"{c} thing" for c in classes]


def test_trains_on_ilsvrc_layout(data_dir: Path, tmp_path: Path) -> None:
    names = _ilsvrc_tree(data_dir, tmp_path / "ilsvrc")
    config = TrainConfig(
        data=str(tmp_path / "ilsvrc"), out=str(tmp_path / "run"), image_size=64, batch_size=6, epochs=1,
        workers=0, precision="fp32", handle_signals=False, num_threads=1,
    )  # fmt: skip
    result = fit(config)
    assert result.interrupted is None and result.step == 4
    (record,) = result.metrics
    assert record["val_images"] == 12 and record["skipped_files"] == 0
    model = googlenet.load(result.model_path)
    assert model.meta.class_names == names
    assert model.meta.input_size == (3, 64, 64)  # the trained size travels with the weights


def test_param_groups_follow_bvlc(one_thread: None) -> None:
    from googlenet.training.optim import param_groups

    model = googlenet.create_model("googlenet_bn", num_classes=3)
    groups = param_groups(model, lr=0.1, weight_decay=2e-4, bias_lr_mult=2.0)
    weights, biases, norms = groups
    assert weights["weight_decay"] == 2e-4 and weights["lr"] == 0.1
    # BVLC: biases lr_mult 2, decay_mult 0
    assert biases["weight_decay"] == 0.0 and biases["lr"] == pytest.approx(0.2)
    assert norms["weight_decay"] == 0.0 and norms["lr"] == 0.1  # BatchNorm scale/shift: no decay
    assert all(p.dim() > 1 for p in weights["params"]) and all(p.dim() == 1 for p in biases["params"])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once


def test_optimizer_choice(one_thread: None) -> None:
    from googlenet.training.optim import build_optimizer

    model = googlenet.create_model("googlenet_bn", num_classes=3)
    sgd = build_optimizer(model, TrainConfig(), 0.01)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9  # section 6
    adamw = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05), 1e-3)
    assert isinstance(adamw, torch.optim.AdamW)
    # The same BVLC groups: decay on weights only, biases at 2x lr.
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0, 0.0]
    assert adamw.param_groups[1]["lr"] == pytest.approx(2e-3)
    with pytest.raises(GoogLeNetError, match=r"optimizer='adam'.*sgd or adamw"):
        TrainConfig.from_dict({"optimizer": "adam"})


def test_polyak_average_is_an_ema_of_the_steps(one_thread: None) -> None:
    torch.manual_seed(0)
    model = googlenet.create_model("googlenet", num_classes=3, dropout=0.0)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9), use_buffers=True
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(2, 3, 64, 64) * 50, torch.tensor([0, 2])
    train_step(model, opt, x, y, ema=ema, channels_last=False)  # first update copies the weights
    after1 = model.fc.weight.detach().clone()
    assert torch.equal(ema.module.fc.weight, after1)
    train_step(model, opt, x, y, ema=ema, channels_last=False)
    expected = 0.9 * after1 + 0.1 * model.fc.weight.detach()
    torch.testing.assert_close(ema.module.fc.weight, expected)
    assert not torch.equal(ema.module.fc.weight, model.fc.weight)


class _TorchvisionForward(torch.nn.Module):
    """What benchmarks/train_throughput.py does: torchvision's train-mode outputs (logits, aux2, aux1)
    as GoogLeNetOutputs (logits, aux1, aux2)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> GoogLeNetOutputs:
        out = self.model(x)
        return GoogLeNetOutputs(out.logits, out.aux_logits1, out.aux_logits2)


def test_train_step_takes_torchvision_googlenet(one_thread: None) -> None:
    # The throughput benchmark times the same step on torchvision's model, wrapped; unwrapped, its
    # reordered tuple is refused rather than mixed up.
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, num_classes=3)
    tv.train()
    opt = torch.optim.SGD(tv.parameters(), lr=0.0)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with pytest.raises(TypeError, match="GoogLeNetOutputs"):
        train_step(tv, opt, x, y, channels_last=False)
    result = train_step(_TorchvisionForward(tv), opt, x, y, channels_last=False)
    assert result.logits.shape == (2, 3) and math.isfinite(result.loss.item())
    assert all(p.grad is not None for p in tv.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- the best epoch, finished runs


def test_best_checkpoint_is_evaluated_through_the_library(baseline: Path, data_dir: Path) -> None:
    from googlenet.data.config import resolve_data_config
    from googlenet.data.datasets import build_dataset
    from googlenet.data.transforms import eval_transform

    best_pt = baseline / "checkpoints" / "best.pt"
    ref = resolve_checkpoint(best_pt)
    assert ref.kind == "training-checkpoint" and ref.image_size == 64
    model = load_model(ref)  # the Polyak-averaged weights by default (section 6)
    assert not model.training and model.meta.input_size == (3, 64, 64)
    assert model.meta.class_names == (data_dir / "classes.txt").read_text().split()
    # the same weights as the model_best.safetensors written with best.pt
    saved = googlenet.load(baseline / "model_best.safetensors")
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.state_dict().items())
    raw = model_from_checkpoint(best_pt, averaged=False)
    ckpt = load_checkpoint(best_pt)
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in raw.state_dict().items())

    # evaluated on the validation split it scores what the trainer recorded for that epoch
    records = [json.loads(line) for line in (baseline / "metrics.jsonl").read_text().splitlines()]
    record = records[ckpt["epoch"] - 1]
    assert record["avg_val_top1_err"] == min(r["avg_val_top1_err"] for r in records)
    val = build_dataset(data_dir, "val", eval_transform(resolve_data_config(model.meta)))
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    with torch.no_grad():
        logits = model(images)
    assert (logits.argmax(1) != labels).float().mean().item() == pytest.approx(record["avg_val_top1_err"])
    assert F.cross_entropy(logits, labels).item() == pytest.approx(record["avg_val_loss"], rel=1e-4)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resume_of_a_finished_run_changes_nothing(baseline: Path, tmp_path: Path) -> None:
    run = tmp_path / "done"
    shutil.copytree(baseline, run)
    before = _snapshot(run)
    proc = cli_in_process("train", "--resume", run, "--epochs", "1")  # fewer than the 2 it trained
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("googlenet train: error:") and "--epochs 1" in line
    assert "already trained 2 epoch(s)" in line and "Traceback" not in proc.stderr
    with pytest.raises(GoogLeNetError, match=r"already trained 2 epoch\(s\), --epochs 2: nothing to do"):
        fit(resume_config(run, {"handle_signals": False}))  # as many as it trained
    assert _snapshot(run) == before


def test_resume_refuses_another_out(baseline: Path, tmp_path: Path) -> None:
    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(baseline, run)
    proc = cli_in_process("train", "--resume", run, "--out", other)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("googlenet train: error: --out") and str(other) in line
    assert not other.exists()
