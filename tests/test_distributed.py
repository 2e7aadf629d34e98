"""torchrun + DistributedDataParallel (training.distributed, training.train) against one process.

A real ``torchrun --standalone --nproc-per-node 2`` (Gloo, CPU) trains with a per-rank batch of 2; one
process trains with batch 4. With the same seed both see the same global batches (the seeded sampler
hands rank r the r-th slice of each global batch) and the same augmentations (seeded by position), and
DDP's gradient average equals the single process's batch mean, so the two runs differ only by the
order of fp32 sums (the tolerances below say how much that may show). The paper variant has no
BatchNorm (no per-rank statistics); dropout is set to 0 because masks are drawn per rank.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import googlenet
from googlenet.data.builtin import make_builtin
from googlenet.training.config import TrainConfig
from googlenet.training.distributed import DistEnv, all_reduce_sum, any_rank, init_distributed
from googlenet.training.engine import EpochBatchSampler
from googlenet.training.task import registered_model

from .helpers import run_cli, torchrun

ONE_THREAD = {"OMP_NUM_THREADS": "1"}

CONFIG = {
    "model": "googlenet",
    "model_options": {"dropout": 0.0, "aux": {"dropout": 0.0}},
    "image_size": 64,
    "epochs": 1,
    "precision": "fp32",
    "num_threads": 1,
    "workers": 0,
    "seed": 5,
    "lr": 0.05,
    "log_every": 1,
}


FP32_UNIT_ROUNDOFF = 2.0**-24
PAPER_DEPTH = 22  # section 5: "22 layers deep when counting only layers with parameters"


def reorder_tolerance(steps: int) -> float:
    """Relative difference two fp32 runs of the same arithmetic in another order may show in the loss.

    Splitting each global batch over two ranks changes how the convolutions' dot products are
    blocked (the kernels are chosen by shape, and differ between CPUs: AVX2 vs AVX-512) and DDP
    averages two partial gradients: every sum is rounded differently. The rounding error of a sum of
    K fp32 terms grows like sqrt(K) * u (the random-walk model of rounding errors; Higham, Accuracy
    and Stability of Numerical Algorithms, section 2.8); it adds up over the 22 layers of the
    forward and again in the backward (x2), and each step's update carries the earlier steps' (x
    steps). K is the largest fan-in of a layer of the trained model.
    """
    model = googlenet.create_model(CONFIG["model"], num_classes=3)
    fan_in = max(p[0].numel() for p in model.parameters() if p.dim() > 1)
    return 2 * steps * PAPER_DEPTH * math.sqrt(fan_in) * FP32_UNIT_ROUNDOFF


def test_torchrun_two_processes_match_one_process(tmp_path: Path) -> None:
    data = make_builtin(
        tmp_path / "data", classes=3, train_per_class=8, val_per_class=4, image_size=64, seed=1, workers=1
    )
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    common = ["train", "--data", str(data), "--config", str(cfg)]
    ddp = torchrun(*common, "--batch-size", "2", "--out", tmp_path / "ddp", cwd=tmp_path, timeout=120)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_cli(
        *common, "--batch-size", "4", "--out", tmp_path / "one", cwd=tmp_path, timeout=120, env=ONE_THREAD
    )
    assert single.returncode == 0, single.stderr[-3000:]

    # rank 0 alone wrote the run dir; the world size is recorded
    assert json.loads((tmp_path / "ddp" / "env.json").read_text())["world_size"] == 2
    m_ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    m_one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert len(m_ddp) == 1 and m_ddp[0]["step"] == m_one[0]["step"] == 6  # 24 images / global batch 4
    # metrics are all-reduced over the ranks: both runs count every image
    assert m_ddp[0]["train_images"] == m_one[0]["train_images"] == 24
    assert m_ddp[0]["val_images"] == m_one[0]["val_images"] == 12
    assert m_ddp[0]["lr"] == pytest.approx(m_one[0]["lr"])  # lr scaled by the global batch in both
    # about 7e-4 here; an AVX2-only CPU measured 2e-4, an AVX-512 one less
    rel = reorder_tolerance(steps=6)
    assert m_ddp[0]["train_loss"] == pytest.approx(m_one[0]["train_loss"], rel=rel)
    assert m_ddp[0]["avg_val_loss"] == pytest.approx(m_one[0]["avg_val_loss"], rel=rel)

    # The weights: a bug in the sharding or the gradient average would move them by a different
    # fraction of the way they moved, O(1). Rounding alone cannot be bounded at the end of the run:
    # six steps at this learning rate amplify it (a ReLU whose input sits within rounding of 0 can
    # switch on in one run and not the other, and both continue correctly from there); on the
    # AVX2-only path the raw weights differed by 1.5% of their movement, on AVX-512 by 1e-5.
    torch.manual_seed(CONFIG["seed"])  # the trainer's initial weights (init_seed = seed)
    init = registered_model(TrainConfig.from_dict(CONFIG), ["a", "b", "c"]).state_dict()
    weights = {}
    for name in ("model_raw.safetensors", "model.safetensors"):
        a = weights[name] = load_file(tmp_path / "ddp" / name)
        b = load_file(tmp_path / "one" / name)
        assert a.keys() == b.keys()
        differ = math.sqrt(sum(((a[k] - b[k]).double() ** 2).sum().item() for k in a))
        moved = math.sqrt(sum(((b[k] - init[k]).double() ** 2).sum().item() for k in a))
        assert differ < 0.1 * moved, f"{name}: |ddp - one| = {differ:.3g}, {differ / moved:.1%} of |moved|"
    # the six steps moved the raw weights far beyond the Polyak average (which lags behind)
    raw, avg = weights["model_raw.safetensors"], weights["model.safetensors"]
    assert max((raw[k] - avg[k]).abs().max().item() for k in raw) > 1e-3


def test_sampler_shards_the_single_process_batches() -> None:
    one = EpochBatchSampler(22, 4, seed=9)
    ranks = [EpochBatchSampler(22, 2, seed=9, rank=r, world_size=2) for r in range(2)]
    for s in (one, *ranks):
        s.set_epoch(3)
    assert len(one) == len(ranks[0]) == 5  # 22 // 4, the incomplete global batch dropped
    for whole, r0, r1 in zip(one, *ranks, strict=True):
        assert whole == r0 + r1  # same indices, same augmentation seeds
    # another epoch, another order; resuming at batch 2 yields the tail without the head
    one.set_epoch(4)
    epoch4 = list(one)
    one.set_epoch(3)
    assert epoch4 != list(one)
    one.set_epoch(4, start_batch=2)
    assert list(one) == epoch4[2:]
    # evaluation: every index exactly once across the ranks
    ev = [EpochBatchSampler(11, 3, rank=r, world_size=2, shuffle=False) for r in range(2)]
    seen = sorted(i for s in ev for batch in s for i, _ in batch)
    assert seen == list(range(11))


def test_single_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    env = init_distributed("cpu")
    assert env == DistEnv(device=torch.device("cpu")) and env.is_main and not env.is_distributed
    assert all_reduce_sum(env, {"a": 2.0}) == {"a": 2.0}
    assert any_rank(env, True) and not any_rank(env, False)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        init_distributed("cpu")
