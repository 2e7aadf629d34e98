"""GPU readiness: training, DDP, inference and data-loading rates on one CUDA device.

One script of at most ~5 minutes on a lent GPU, four measurements:

1. Training throughput (images/s) of one full training step (section 5's forward with both
   auxiliary heads, loss main + 0.3 x aux, backward, SGD momentum 0.9 as in section 6) at 224 px,
   bf16 autocast, channels-last, batch 128 and 256, eager and under ``torch.compile``, for
   ``googlenet`` (the paper's, LRN), ``googlenet_bn`` and torchvision's GoogLeNet (wrapped as in
   ``benchmarks/train_throughput.py``), every contender stepped by
   :func:`googlenet.training.engine.train_step`, interleaved round-robin; ratios are to torchvision's
   model at the same batch and compile setting.
2. One DDP step: ``googlenet_bn`` wrapped in ``DistributedDataParallel`` in a single-rank process
   group (NCCL on CUDA, Gloo on the CPU), against the same model unwrapped. In-process, because
   ``torchrun --nproc-per-node 1`` gives ``googlenet train`` a world of one, which trains without
   DDP (``training.distributed.init_distributed``): a 1-GPU torchrun would not measure DDP at all.
3. ``Predictor(device=...)`` (torch backend; precision ``auto`` measures fp32 vs bf16) at batch 256.
4. The data-loading rate of the training pipeline: ``training.train.build_run``'s own train loader
   (JPEG decode + section 6's augmentation + normalisation, seeded sampler, the configured DataLoader
   workers) on a generated JPEG folder, in images/s; against the fastest training step it says
   whether data or compute bounds this machine.

    python benchmarks/gpu.py                              # CUDA: ~3-5 min, writes docs/benchmarks.md
    python benchmarks/gpu.py --no-compile --json gpu.json
    python benchmarks/gpu.py --device cpu --steps 2       # small sizes on the CPU: the code path (tests)
"""

from __future__ import annotations

import argparse
import copy
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common as C
import torch
import torch.distributed as dist
from torch import nn
from train_throughput import sgd, torchvision_googlenet

import googlenet
from googlenet.cpu import cpu_count
from googlenet.device import resolve_device
from googlenet.errors import GoogLeNetError
from googlenet.inference.predictor import Predictor
from googlenet.training.engine import TrainForward, prepare_model, resolve_precision, train_step

NAME, VERSION = "gpu", 1
MODELS = ("googlenet", "googlenet_bn", "torchvision")
PEER = "torchvision"
LOADER_BATCHES = 8  # timed batches per worker count (over as many epochs as that takes)
# Small sizes for --device cpu (the code path, in seconds); on a GPU, sizes that fill it (~5 minutes).
CPU_DEFAULTS = {
    "warmup": 1,
    "rounds": 1,
    "batch_sizes": [4],
    "image_size": 64,
    "predict_batch": 8,
    "data_images": 16,
    "data_size": 80,
}
GPU_DEFAULTS = {
    "warmup": 3,
    "rounds": 3,
    "batch_sizes": [128, 256],
    "image_size": 224,
    "predict_batch": 256,
    "data_images": 1024,
}
GPU_DEFAULTS["data_size"] = 320  # JPEGs a little larger than the crop, as ILSVRC's are (~400 x 350)

SCHEMA: dict[str, Any] = {
    "settings": {
        "device": str,
        "precision": str,
        "image_size": int,
        "batch_sizes": [int],
        "compile": bool,
        "warmup": int,
        "rounds": int,
        "steps": int,
        "predict_batch": int,
        "data_images": int,
        "data_size": int,
    },
    "training": [
        {
            "model": str,
            "batch_size": int,
            "compiled": bool,
            "images_per_s": float,  # median over rounds
            "ms_per_step": float,
            "ratio": float,  # vs torchvision at the same batch and compile setting, paired per round
            "warmup_s": float,  # first steps, compilation included
            "max_memory_gib?": float,
        }
    ],
    "ddp": {
        "backend": str,
        "model": str,
        "batch_size": int,
        "images_per_s": float,
        "plain_images_per_s": float,
        "ratio": float,  # DDP / plain, paired per round
    },
    "predictor": {
        "batch_size": int,
        "backend": str,
        "precision": str,
        "reason": str,
        "images_per_s": float,
    },
    "data_loading": [
        {
            "workers": int,
            "batch_size": int,
            "images_per_s": float,  # after the first batch (worker start-up)
            "first_batch_s": float,
            "batches": int,
        }
    ],
    "bound": {"fastest_step": str, "step_images_per_s": float, "loader_images_per_s": float, "by": str},
    "seconds": float,
}


@dataclass
class Contender:
    name: str
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    batch_size: int
    rates: list[float] = field(default_factory=list)
    warmup_s: float = 0.0
    max_memory_gib: float | None = None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_module(name: str, device: torch.device, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(the module train_step is given, its parameters' owner) on ``device``, channels-last."""
    if name == PEER:
        wrapped = torchvision_googlenet(seed)
        wrapped.to(device=device, memory_format=torch.channels_last)
        return wrapped, wrapped
    torch.manual_seed(seed)
    model = prepare_model(googlenet.create_model(name), device, channels_last=True).train()
    return TrainForward(model), model


def time_round(contenders: list[Contender], batches: dict[int, tuple], steps: int, args, device) -> None:
    for c in contenders:
        images, labels = batches[c.batch_size]
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(c.forward, c.optimizer, images, labels, precision=args.precision, channels_last=True)
        sync(device)
        c.rates.append(steps * c.batch_size / (time.perf_counter() - t0))


def warm(contenders: list[Contender], batches: dict[int, tuple], args, device, log) -> None:
    for c in contenders:
        images, labels = batches[c.batch_size]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            train_step(c.forward, c.optimizer, images, labels, precision=args.precision, channels_last=True)
        sync(device)
        c.warmup_s = time.perf_counter() - t0
        if device.type == "cuda":
            c.max_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
        log(f"warm-up {c.name}: {c.warmup_s:.1f} s")


def measure_training(args: argparse.Namespace, device: torch.device, log) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    size = args.image_size
    batches = {
        b: (torch.randn(b, 3, size, size, generator=g).to(device), torch.randint(0, 1000, (b,), generator=g))
        for b in args.batch_sizes
    }
    rows = []
    for compiled in (False, True) if args.compile else (False,):
        contenders = []
        for b in args.batch_sizes:
            for name in MODELS:
                forward, owner = train_module(name, device)
                if compiled:
                    forward = torch.compile(forward)
                contenders.append(
                    Contender(f"{name} b{b}{' compiled' if compiled else ''}", forward, sgd(owner), b)
                )
        warm(contenders, batches, args, device, log)
        for r in range(args.rounds):
            time_round(contenders if r % 2 == 0 else contenders[::-1], batches, args.steps, args, device)
        for c in contenders:
            model = c.name.split()[0]
            peer = next(p for p in contenders if p.batch_size == c.batch_size and p.name.startswith(PEER))
            row = {
                "model": model,
                "batch_size": c.batch_size,
                "compiled": compiled,
                "images_per_s": statistics.median(c.rates),
                "ms_per_step": 1000 * c.batch_size / statistics.median(c.rates),
                "ratio": statistics.median(a / b for a, b in zip(c.rates, peer.rates, strict=True)),
                "warmup_s": c.warmup_s,
            }
            if c.max_memory_gib is not None:
                row["max_memory_gib"] = c.max_memory_gib
            rows.append(row)
            log(f"{c.name}: {row['images_per_s']:.1f} images/s ({row['ratio']:.2f}x {PEER})")
        del contenders
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_ddp(args: argparse.Namespace, device: torch.device, log) -> dict[str, Any]:
    """googlenet_bn in a single-rank DDP process group against the same model unwrapped, interleaved."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
        device_id=device if device.type == "cuda" else None,
    )  # fmt: skip
    try:
        batch = args.batch_sizes[0]
        forward, model = train_module("googlenet_bn", device)
        plain_forward = TrainForward(copy.deepcopy(model))
        ddp = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )
        contenders = [
            Contender("ddp", ddp, sgd(model), batch),
            Contender("plain", plain_forward, sgd(plain_forward), batch),
        ]
        g = torch.Generator().manual_seed(1)
        size = args.image_size
        batches = {
            batch: (
                torch.randn(batch, 3, size, size, generator=g).to(device),
                torch.randint(0, 1000, (batch,)),
            )
        }
        warm(contenders, batches, args, device, log)
        for r in range(args.rounds):
            time_round(contenders if r % 2 == 0 else contenders[::-1], batches, args.steps, args, device)
        ddp_c, plain_c = contenders
        return {
            "backend": backend,
            "model": "googlenet_bn",
            "batch_size": batch,
            "images_per_s": statistics.median(ddp_c.rates),
            "plain_images_per_s": statistics.median(plain_c.rates),
            "ratio": statistics.median(a / b for a, b in zip(ddp_c.rates, plain_c.rates, strict=True)),
        }
    finally:
        dist.destroy_process_group()


def measure_predictor(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Predictor on the device: inputs already there, logits left there (output_device=None), so the
    rate is the network's, not the host copies'."""
    model = googlenet.create_model("googlenet_bn", aux_logits=False).eval()
    batch = args.predict_batch
    predictor = Predictor(
        model, "torch", "auto", image_size=args.image_size, device=str(device), output_device=None,
        auto_batch=batch, use_cache=False,
    )  # fmt: skip
    images = torch.randn(
        batch, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(2)
    )
    images = images.to(device)
    predictor(images)
    rates = []
    for _ in range(args.rounds):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            predictor(images)
        sync(device)
        rates.append(args.steps * batch / (time.perf_counter() - t0))
    return {
        "batch_size": batch,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "reason": predictor.reason,
        "images_per_s": statistics.median(rates),
    }


def measure_loading(args: argparse.Namespace, device: torch.device, root: Path, log) -> list[dict[str, Any]]:
    """build_run's train loader (the trainer's exact pipeline) for each worker count."""
    from googlenet.training.config import TrainConfig
    from googlenet.training.distributed import DistEnv
    from googlenet.training.task import CLASSIFICATION
    from googlenet.training.train import build_run

    batch = args.batch_sizes[-1]
    out = []
    for workers in args.workers:
        config = TrainConfig(
            data=str(root), model="googlenet_bn", image_size=args.image_size, batch_size=batch,
            workers=workers, device=str(device), handle_signals=False, out=str(root.parent / f"run{workers}"),
        )  # fmt: skip
        run = build_run(config, DistEnv(device=device), CLASSIFICATION)
        run.train_sampler.set_epoch(0)
        t0 = time.perf_counter()
        loader = iter(run.train_loader)
        next(loader)  # worker start-up, reported apart
        first = time.perf_counter() - t0
        t1, count, batches, epoch = time.perf_counter(), 0, 0, 0
        while batches < LOADER_BATCHES:
            for item in loader:
                count += len(item.labels)
                batches += 1
            epoch += 1
            run.train_sampler.set_epoch(epoch)
            loader = iter(run.train_loader)
        rate = count / (time.perf_counter() - t1)
        out.append(
            {
                "workers": workers,
                "batch_size": batch,
                "images_per_s": rate,
                "first_batch_s": first,
                "batches": batches,
            }
        )
        log(f"data loading, {workers} workers: {rate:.0f} images/s (first batch {first:.1f} s)")
        del loader, run
    return out


def bound(training: list[dict], loading: list[dict]) -> dict[str, Any]:
    """The fastest training step against the loader's rate with the most workers measured."""
    fastest = max(training, key=lambda r: r["images_per_s"])
    loader = max(loading, key=lambda r: r["workers"])
    label = f"{fastest['model']} b{fastest['batch_size']}{' compiled' if fastest['compiled'] else ''}"
    return {
        "fastest_step": label,
        "step_images_per_s": fastest["images_per_s"],
        "loader_images_per_s": loader["images_per_s"],
        "by": "data" if loader["images_per_s"] < fastest["images_per_s"] else "compute",
    }


def render(result: dict[str, Any]) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    s, d, p, b = result["settings"], result["ddp"], result["predictor"], result["bound"]
    return "\n".join(
        [
            C.machine_line(result),
            "",
            f"Device `{s['device']}`, {s['precision']} autocast, channels-last, {s['image_size']} px; "
            f"{s['warmup']} warm-up step(s), then {s['rounds']} round(s) of {s['steps']} step(s) per "
            f"contender; took {result['seconds']:.0f} s.",
            "",
            C.table(
                result["training"],
                [
                    C.text("model"),
                    C.Column("batch", C.field("batch_size", "{}")),
                    C.Column("torch.compile", lambda r: "yes" if r["compiled"] else "no", numeric=False),
                    C.Column("images/s", C.field("images_per_s", "{:.1f}")),
                    C.Column("ms/step", C.field("ms_per_step", "{:.1f}")),
                    C.Column(f"vs {PEER}", C.field("ratio", "{:.2f}x")),
                    C.Column("warm-up s", C.field("warmup_s", "{:.1f}")),
                    C.Column("peak GiB", C.field("max_memory_gib", "{:.1f}")),
                ],
            ),
            "",
            f"DDP ({d['backend']}, one rank, `{d['model']}`, batch {d['batch_size']}): "
            f"{d['images_per_s']:.1f} images/s against {d['plain_images_per_s']:.1f} unwrapped "
            f"({d['ratio']:.2f}x).",
            "",
            f'`Predictor(device="{s["device"]}")` at batch {p["batch_size"]}: '
            f"{p['images_per_s']:.1f} images/s "
            f"({p['backend']} {p['precision']}: {p['reason']}).",
            "",
            f"Data loading ({s['data_images']} generated {s['data_size']} px JPEGs, the trainer's loader):",
            "",
            C.table(
                result["data_loading"],
                [
                    C.Column("workers", C.field("workers", "{}")),
                    C.Column("batch", C.field("batch_size", "{}")),
                    C.Column("images/s", C.field("images_per_s", "{:.0f}")),
                    C.Column("first batch s", C.field("first_batch_s", "{:.1f}")),
                ],
            ),
            "",
            f"Bound by **{b['by']}**: the fastest step (`{b['fastest_step']}`) takes "
            f"{b['step_images_per_s']:.0f} images/s, the loader gives {b['loader_images_per_s']:.0f}.",
        ]
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    from googlenet.training.config import default_workers

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per contender per round")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per contender (default 3; CPU: 1)")
    p.add_argument("--rounds", type=int, default=None, help="round-robin rounds, median reported (3; CPU: 1)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 128 256 (CPU: 4)")
    p.add_argument("--image-size", type=int, default=None, help="default 224 (CPU: 64)")
    p.add_argument("--no-compile", dest="compile", action="store_false", default=None)
    p.add_argument("--compile", dest="compile", action="store_true", help="default on CUDA only")
    p.add_argument("--predict-batch", type=int, default=None, help="default 256 (CPU: 8)")
    p.add_argument("--data-images", type=int, default=None, help="generated JPEGs (default 1024; CPU: 16)")
    p.add_argument("--data-size", type=int, default=None, help="their side in px (default 320; CPU: 80)")
    p.add_argument(
        "--workers", type=int, nargs="+", default=None,
        help="DataLoader workers to measure (default: the trainer's default and this machine's cores)",
    )  # fmt: skip
    C.output_flags(p)
    args = p.parse_args(argv)
    try:
        device = torch.device(resolve_device(args.device))
    except (ValueError, GoogLeNetError) as exc:
        p.error(str(exc))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here; pass --device cpu for the code path")
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.compile is None:
        args.compile = device.type == "cuda"
    if args.workers is None:
        args.workers = sorted({default_workers(), cpu_count()})
    for key in ("steps", "warmup", "rounds", "predict_batch", "data_images"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if min(args.batch_sizes) < 1 or min(args.workers) < 0:
        p.error("--batch-sizes must be >= 1 and --workers >= 0")
    if args.image_size < 64 or args.data_size < args.image_size:
        p.error("--image-size must be >= 64 and --data-size at least --image-size")
    if device.type == "cuda" and device.index is None:  # DDP and NCCL want an index
        device = torch.device("cuda", torch.cuda.current_device())
    args.device = device
    args.precision = "bf16" if device.type == "cuda" else resolve_precision("auto", device)
    return args


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    device = args.device
    log = C.log
    env = C.environment(device)
    t0 = time.perf_counter()
    from googlenet.data.builtin import make_builtin

    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        classes = 4
        root = make_builtin(
            Path(tmp) / "data", classes=classes, train_per_class=-(-args.data_images // classes),
            val_per_class=1, image_size=args.data_size, seed=0, workers=min(8, cpu_count()),
        )  # fmt: skip
        log(f"generated {args.data_images} JPEGs in {time.perf_counter() - t0:.0f} s")
        loading = measure_loading(args, device, root, log)
    training = measure_training(args, device, log)
    ddp = measure_ddp(args, device, log)
    log(f"ddp: {ddp['images_per_s']:.1f} images/s ({ddp['ratio']:.2f}x plain)")
    predictor = measure_predictor(args, device)
    log(
        f"predictor: {predictor['images_per_s']:.1f} images/s "
        f"({predictor['backend']} {predictor['precision']})"
    )
    env["load_average_after"] = C.load_average()
    result = {
        **C.header(NAME, VERSION, C.shown_command("gpu.py", given), env),
        "settings": {
            "device": str(device),
            "precision": args.precision,
            "image_size": args.image_size,
            "batch_sizes": args.batch_sizes,
            "compile": args.compile,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "steps": args.steps,
            "predict_batch": args.predict_batch,
            "data_images": args.data_images,
            "data_size": args.data_size,
        },
        "training": training,
        "ddp": ddp,
        "predictor": predictor,
        "data_loading": loading,
        "bound": bound(training, loading),
        "seconds": time.perf_counter() - t0,
    }
    C.publish(result, render(result), args.json, None if args.no_docs else args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
