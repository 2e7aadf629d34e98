"""Training-throughput benchmark: our training step against torchvision's, on the same CPU.

One full training step of section 6's recipe: the forward with both auxiliary classifiers (section 5),
the loss ``main + 0.3 x (aux1 + aux2)`` (section 5), backward, and an SGD update with momentum 0.9
(section 6). The peer is what a torchvision user gets: ``torchvision.models.googlenet(weights=None,
aux_logits=True, init_weights=True)`` in train mode, eager, fp32, contiguous (NCHW) memory. Ours is
``googlenet.create_model("googlenet_tv")`` -- the same architecture, so the comparison is about the
engine -- stepped by :func:`googlenet.training.engine.train_step` with the trainer's defaults
(``precision=resolve_precision("auto")``: bf16 autocast where the CPU has native bf16, and
``channels_last=True``). The torchvision model goes through the same ``train_step`` in fp32 and NCHW
(wrapped by :class:`TorchvisionForward`, which reorders its outputs into ours), so both sides pay for
the same loss, the same finiteness check and the same optimizer.

Also measured: ours in fp32 NCHW and fp32 channels-last (what each switch is worth), the paper's
``googlenet`` (LRN) and ``googlenet_bn`` on the fast path, with ``--extra`` bf16 NCHW, the torchvision
model in channels-last fp32 and the trainer's full step with the Polyak average (EMA) update, and
with ``--compile`` the fast path under ``torch.compile`` (compiling on a CPU takes minutes).

Every contender steps on the same batch, interleaved in one process: after a warm-up, each round
runs every contender for ``--steps`` steps (round-robin) and the table reports the median images/s
over rounds, so a background load that comes and goes hits all contenders alike. Ratios are what
count on a shared machine, not absolute numbers.

"Accuracy unchanged": the benchmark also trains the same initial weights on one fixed batch in fp32
NCHW and on the fast path and reports the loss of each step (dropout off so the two runs see the
same network; tests/test_precision.py holds the tolerance tests). ``--fit`` adds a short run of
:func:`googlenet.fit` on a small built-in set in fp32 and on the fast path and reports both
validation errors.

    python benchmarks/train_throughput.py                 # batch 32 at 224 px; slow on 2 cores
    python benchmarks/train_throughput.py --write-docs --fit --json benchmarks/results/training-KIND.json
    python benchmarks/train_throughput.py --quick         # seconds: format check only (tests)
    python benchmarks/train_throughput.py --compile       # adds the torch.compile contender
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common as C
import torch
from torch import nn

import googlenet
from googlenet.cpu import describe
from googlenet.data.config import MIN_IMAGE_SIZE
from googlenet.models.model import GoogLeNetOutputs
from googlenet.training.config import TrainConfig
from googlenet.training.engine import TrainForward, prepare_model, resolve_precision, train_step

PEER = "torchvision eager fp32"
# The project's speed target: our default step at least 1.5x torchvision's eager fp32 step.
TARGET_RATIO = 1.5
CPU = torch.device("cpu")


@dataclass
class Contender:
    name: str
    module: nn.Module  # what train_step is given
    optimizer: torch.optim.Optimizer
    precision: str
    channels_last: bool
    ema: torch.optim.swa_utils.AveragedModel | None = None
    note: str = ""
    rates: list[float] = field(default_factory=list)  # images/s, one per round
    cpu_rates: list[float] = field(default_factory=list)  # images per CPU second (all threads), per round

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        result = train_step(
            self.module,
            self.optimizer,
            images,
            labels,
            precision=self.precision,
            channels_last=self.channels_last,
            ema=self.ema,
        )
        return float(result.loss)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    """Plain ``torch.optim.SGD`` (foreach on), the same for every contender, at the recipe's rate and
    momentum (:class:`TrainConfig`'s defaults: BVLC's base_lr, section 6's 0.9); the rate does not
    change a step's cost. The recipe's weight decay and bias multipliers (``training.optim``) are left
    out, so every model, torchvision's included, runs the same update."""
    recipe = TrainConfig()
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum)


class TorchvisionForward(nn.Module):
    """torchvision's train-mode outputs ``(logits, aux_logits2, aux_logits1)`` as our
    :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)``, the training step's contract."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> GoogLeNetOutputs:
        out = self.model(x)
        return GoogLeNetOutputs(out.logits, out.aux_logits1, out.aux_logits2)


def torchvision_googlenet(seed: int) -> nn.Module:
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).train()
    return TorchvisionForward(model)


def ours(name: str, seed: int, channels_last: bool) -> googlenet.GoogLeNet:
    torch.manual_seed(seed)
    model = googlenet.create_model(name)
    prepare_model(model, CPU, channels_last=channels_last)
    return model.train()


def build_contenders(args: argparse.Namespace, fast: str) -> list[Contender]:
    """The peer first; every model starts from seed ``args.seed``."""
    seed = args.seed
    tv = torchvision_googlenet(seed)
    out = [Contender(PEER, tv, sgd(tv), "fp32", False, note="the peer: what a torchvision user gets")]

    def add(name: str, variant: str, precision: str, channels_last: bool, note: str = "", **kw: Any) -> None:
        model = ours(variant, seed, channels_last)
        out.append(Contender(name, model, sgd(model), precision, channels_last, note=note, **kw))

    default = f"{fast} channels_last"
    add(f"googlenet_tv {default} (default)", "googlenet_tv", fast, True, "same architecture as the peer")
    add("googlenet_tv fp32 NCHW", "googlenet_tv", "fp32", False, "our model, torchvision's settings")
    add("googlenet_tv fp32 channels_last", "googlenet_tv", "fp32", True, "channels_last alone")
    if fast != "bf16":  # still show what bf16 does where it is emulated
        add("googlenet_tv bf16 channels_last", "googlenet_tv", "bf16", True, "bf16 is emulated on this CPU")
    add(f"googlenet {default} (default)", "googlenet", fast, True, "the paper's net (LRN)")
    add(f"googlenet_bn {default} (default)", "googlenet_bn", fast, True, "BatchNorm variant")
    if args.extra:
        add("googlenet_tv bf16 NCHW", "googlenet_tv", "bf16", False, "bf16 alone")
        tv_cl = torchvision_googlenet(seed).to(memory_format=torch.channels_last)
        out.append(Contender("torchvision channels_last fp32", tv_cl, sgd(tv_cl), "fp32", True))
        model = ours("googlenet_tv", seed, True)
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999), use_buffers=True
        )
        out.append(
            Contender(
                f"googlenet_tv {default} + EMA", model, sgd(model), fast, True, ema=ema,
                note="the trainer's full step (Polyak average, section 6)",
            )
        )  # fmt: skip
    if args.compile:
        model = ours("googlenet_tv", seed, True)
        compiled = torch.compile(TrainForward(model))
        out.append(
            Contender(
                f"googlenet_tv {default} compiled", compiled, sgd(model), fast, True, note="torch.compile"
            )
        )
    return out


def measure(
    contenders: list[Contender], args: argparse.Namespace, log: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=g)
    labels = torch.randint(0, 1000, (args.batch_size,), generator=g)
    for c in contenders:  # warm-up: allocator, oneDNN primitive caches, compilation
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            c.step(images, labels)
        log(f"warm-up {c.name}: {time.perf_counter() - t0:.1f} s")
    for r in range(args.rounds):
        # Reversed every other round, so no contender always runs right after the same neighbour.
        for c in contenders if r % 2 == 0 else contenders[::-1]:
            t0, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                c.step(images, labels)
            seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
            c.rates.append(args.steps * args.batch_size / seconds)
            c.cpu_rates.append(args.steps * args.batch_size / cpu_seconds)
            log(f"round {r + 1}/{args.rounds} {c.name}: {c.rates[-1]:.2f} images/s")
    return images, labels


def results_rows(contenders: list[Contender], batch_size: int) -> list[dict[str, Any]]:
    """Median images/s per contender; the ratio is the median over rounds of the ratio to the peer's
    rate in the same round (paired), which a load that changes from round to round disturbs least."""
    peer = contenders[0].rates
    rows = []
    for c in contenders:
        rate = statistics.median(c.rates)
        paired = [a / b for a, b in zip(c.rates, peer, strict=True)]
        rows.append(
            {
                "name": c.name,
                "precision": c.precision,
                "memory": "channels_last" if c.channels_last else "NCHW",
                "images_per_s": rate,
                "ms_per_step": 1000 * batch_size / rate,
                "ratio": statistics.median(paired),
                "round_ratios": paired,
                "rates": list(c.rates),
                # CPU time: what other jobs on a shared machine disturb least (they take wall time,
                # not this process's CPU time); with one thread it measures the same work as wall time.
                "cpu_ratio": statistics.median(
                    a / b for a, b in zip(c.cpu_rates, contenders[0].cpu_rates, strict=True)
                ),
                "spread": [min(c.rates), max(c.rates)],
                "note": c.note,
            }
        )
    return rows


# --------------------------------------------------------------------------- where the time goes


def profile_ops(contender: Contender, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Self CPU milliseconds per aten op over one training step (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    contender.step(images, labels)  # warm (the caches of this shape)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        contender.step(images, labels)
    return {e.key: e.self_cpu_time_total / 1000 for e in prof.key_averages()}


# --------------------------------------------------------------------------- accuracy


def no_dropout(model: nn.Module) -> nn.Module:
    """Train mode but dropout off: bf16 and fp32 runs would draw different dropout masks."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


def precision_check(
    variant: str, fast: str, *, batch_size: int, image_size: int, steps: int, seed: int
) -> dict[str, Any]:
    """The losses of ``steps`` SGD steps on one fixed batch from the same weights: fp32 NCHW vs the
    fast path. The first loss compares the forwards; the later ones include the drift of the updates."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=g)
    labels = torch.randint(0, 1000, (batch_size,), generator=g)
    torch.manual_seed(seed)
    base = googlenet.create_model(variant)
    losses: dict[str, list[float]] = {}
    for label, precision, channels_last in (("fp32", "fp32", False), ("fast", fast, True)):
        model = no_dropout(prepare_model(copy.deepcopy(base), CPU, channels_last=channels_last))
        opt = sgd(model)
        losses[label] = [
            float(
                train_step(model, opt, images, labels, precision=precision, channels_last=channels_last).loss
            )
            for _ in range(steps)
        ]
    diffs = [abs(a - b) for a, b in zip(losses["fp32"], losses["fast"], strict=True)]
    return {
        "variant": variant,
        "fast": f"{fast} channels_last",
        "fp32": losses["fp32"],
        "fast_losses": losses["fast"],
        "max_abs_diff": max(diffs),
        "max_rel_diff": max(d / abs(a) for d, a in zip(diffs, losses["fp32"], strict=True)),
        "batch_size": batch_size,
        "image_size": image_size,
    }


def short_fit(args: argparse.Namespace, fast: str, log: Any) -> dict[str, Any]:
    """:func:`googlenet.fit` on a small built-in set, fp32 NCHW vs the default fast path."""
    from googlenet.data.builtin import make_builtin

    out: dict[str, Any] = {
        "model": args.fit_model,
        "classes": args.fit_classes,
        "train_per_class": args.fit_train_per_class,
        "val_per_class": args.fit_val_per_class,
        "image_size": args.fit_image_size,
        "epochs": args.fit_epochs,
        "batch_size": args.fit_batch_size,
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        root = make_builtin(
            Path(tmp) / "data",
            classes=args.fit_classes,
            train_per_class=args.fit_train_per_class,
            val_per_class=args.fit_val_per_class,
            image_size=args.fit_image_size,
            seed=args.seed,
        )
        for label, precision, channels_last in (
            ("fp32 NCHW", "fp32", False),
            (f"{fast} channels_last", "auto", True),
        ):
            config = TrainConfig(
                data=str(root),
                model=args.fit_model,
                image_size=args.fit_image_size,
                epochs=args.fit_epochs,
                batch_size=args.fit_batch_size,
                lr=args.fit_lr,
                lr_scale_with_batch=False,
                precision=precision,
                channels_last=channels_last,
                seed=args.seed,
                workers=0,
                handle_signals=False,
                out=str(Path(tmp) / label.replace(" ", "_")),
            )
            t0 = time.perf_counter()
            result = googlenet.fit(config)
            last = result.metrics[-1]
            run = {
                "seconds": time.perf_counter() - t0,
                "metrics": {k: v for k, v in last.items() if isinstance(v, (int, float))},
            }
            out["runs"][label] = run
            log(f"fit {label}: {run['seconds']:.0f} s, last epoch {json.dumps(run['metrics'])}")
    return out


# --------------------------------------------------------------------------- result and docs

NAME, VERSION = "training", 1
ROW_SCHEMA: dict[str, Any] = {
    "name": str,
    "precision": str,  # fp32 | bf16
    "memory": str,  # NCHW | channels_last
    "images_per_s": float,  # median over rounds
    "ms_per_step": float,
    "ratio": float,  # median over rounds of (this / the peer) in the same round
    "cpu_ratio?": float,  # the same from process CPU time
    "rates?": [float],  # images/s per round
    "round_ratios?": [float],
    "spread?": [float],  # [min, max] images/s
    "note?": str,
}
SCHEMA: dict[str, Any] = {
    "settings": {
        "batch_size": int,
        "image_size": int,
        "warmup": int,
        "rounds": int,
        "steps": int,
        "seed": int,
        "fast": str,  # what precision="auto" resolved to here
        "fit_lr": float,
    },
    "rows": [ROW_SCHEMA],  # the peer first
    "target": {"contender": str, "ratio": float, "required": float, "met": bool},
    "precision_steps": int,
    "precision": [
        {
            "variant": str,
            "fast": str,
            "fp32": [float],  # loss per step, fp32 NCHW
            "fast_losses": [float],  # loss per step, the fast path
            "max_abs_diff": float,
            "max_rel_diff": float,
            "batch_size": int,
            "image_size": int,
        }
    ],
    "profile?": {"?": {"?": float}},  # contender -> aten op -> self CPU ms over one step
    "fit?": {
        "model": str,
        "classes": int,
        "train_per_class": int,
        "val_per_class": int,
        "image_size": int,
        "epochs": int,
        "batch_size": int,
        "runs": {"?": {"seconds": float, "metrics": {"?": float}}},
    },
}


def target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The speed target: our default step (same architecture as the peer) at least 1.5x the peer."""
    row = next(r for r in rows if r["name"].startswith("googlenet_tv") and r["name"].endswith("(default)"))
    return {
        "contender": row["name"],
        "ratio": row["ratio"],
        "required": TARGET_RATIO,
        "met": row["ratio"] >= TARGET_RATIO,
    }


def _profile_rows(profile: dict[str, dict[str, float]], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` ops of each profiled contender by self CPU time, as rows of ms per contender."""
    keys: list[str] = []
    for ops in profile.values():
        keys += [k for k in sorted(ops, key=ops.__getitem__, reverse=True)[:top] if k not in keys]
    keys.sort(key=lambda k: -max(ops.get(k, 0.0) for ops in profile.values()))
    rows = [{"op": f"`{k}`", **{n: ops.get(k, 0.0) for n, ops in profile.items()}} for k in keys]
    return [*rows, {"op": "total", **{n: sum(ops.values()) for n, ops in profile.items()}}]


def render(result: dict[str, Any]) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    s, t = result["settings"], result["target"]
    peer = result["rows"][0]["name"]
    rows = [
        {
            **r,
            "per_round": ", ".join(
                f"{x:.2f} ({q:.2f}x)" for x, q in zip(r["rates"], r["round_ratios"], strict=True)
            ),
        }
        if "rates" in r and "round_ratios" in r
        else r
        for r in result["rows"]
    ]
    parts = [
        C.machine_line(result),
        "",
        f"Batch {s['batch_size']} at {s['image_size']} px, {s['warmup']} warm-up step(s), {s['rounds']} "
        f"round(s) of {s['steps']} step(s); `precision=auto` resolved to `{s['fast']}`.",
        "",
        C.table(
            rows,
            [
                C.Column("contender", lambda r: r["name"], numeric=False),
                C.text("precision"),
                C.text("memory"),
                C.Column("images/s", C.field("images_per_s")),
                C.Column("ms/step", C.field("ms_per_step", "{:.0f}")),
                C.Column(f"vs {peer}", C.field("ratio", "{:.2f}x")),
                C.Column("same, by CPU time", C.field("cpu_ratio", "{:.2f}x")),
                C.Column("per round: images/s (vs peer)", C.field("per_round", "{}"), numeric=False),
            ],
        ),
        "",
        f"Target: `{t['contender']}` at least {t['required']:g}x `{peer}`: measured {t['ratio']:.2f}x, "
        + ("met." if t["met"] else "**not met**."),
        "",
        C.table(
            [
                {"variant": c["variant"], "path": label, "losses": losses, **diff}
                for c in result["precision"]
                for label, losses, diff in (
                    ("fp32 NCHW", c["fp32"], {}),
                    (c["fast"], c["fast_losses"], {"abs": c["max_abs_diff"], "rel": 100 * c["max_rel_diff"]}),
                )
            ],
            [
                C.text("variant"),
                C.text("path"),
                C.Column("loss at step 1", lambda r: f"{r['losses'][0]:.4f}"),
                C.Column(f"loss at step {result['precision_steps']}", lambda r: f"{r['losses'][-1]:.4f}"),
                C.Column("max abs diff", C.field("abs", "{:.4f}", "")),
                C.Column("max rel diff", C.field("rel", "{:.2f}%", "")),
            ],
        ),
    ]
    if result.get("profile"):
        names = list(result["profile"])
        parts += [
            "",
            C.table(
                _profile_rows(result["profile"]),
                [C.Column("op (self CPU)", lambda r: r["op"], numeric=False)]
                + [C.Column(n, C.field(n, "{:.0f} ms")) for n in names],
            ),
        ]
    if result.get("fit"):
        f = result["fit"]
        keys = sorted({k for run in f["runs"].values() for k in run["metrics"] if "err" in k or "loss" in k})
        parts += [
            "",
            f"Short fit: `{f['model']}`, built-in set of {f['classes']} classes "
            f"({f['train_per_class']} train / "
            f"{f['val_per_class']} val per class, {f['image_size']} px), {f['epochs']} epochs at batch "
            f"{f['batch_size']}, lr {s['fit_lr']}, seed {s['seed']}; metrics of the last epoch:",
            "",
            C.table(
                [
                    {"path": label, "seconds": run["seconds"], **run["metrics"]}
                    for label, run in f["runs"].items()
                ],
                [C.text("path"), C.Column("seconds", C.field("seconds", "{:.0f}"))]
                + [C.Column(k, C.field(k, "{:.4f}")) for k in keys],
            ),
        ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=32, help="BVLC batch 32 (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=224, help="Table 1 input (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps per contender")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds; the median is reported")
    p.add_argument("--steps", type=int, default=1, help="timed steps per contender per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--extra", action="store_true", help="also bf16 NCHW, torchvision channels_last, + EMA")
    p.add_argument("--compile", action="store_true", help="also the fast path under torch.compile (slow)")
    p.add_argument("--precision-steps", type=int, default=5, help="steps of the accuracy check")
    p.add_argument("--precision-batch", type=int, default=8)
    p.add_argument("--precision-image-size", type=int, default=128)
    p.add_argument("--profile", action="store_true", help="also torch.profiler's top ops, peer vs default")
    p.add_argument("--fit", action="store_true", help="also a short fit, fp32 vs the fast path")
    p.add_argument("--fit-model", default="googlenet_bn")
    p.add_argument("--fit-classes", type=int, default=4)
    p.add_argument("--fit-train-per-class", type=int, default=48)
    p.add_argument("--fit-val-per-class", type=int, default=16)
    p.add_argument("--fit-image-size", type=int, default=64)
    p.add_argument("--fit-epochs", type=int, default=6)
    p.add_argument("--fit-batch-size", type=int, default=16)
    p.add_argument("--fit-lr", type=float, default=0.01)
    p.add_argument("--quick", action="store_true", help="batch 4 at 64 px, 1 round: a format check")
    p.add_argument(
        "--write-docs", action="store_true", help=f"rewrite this CPU kind's section of {C.DOCS.name}"
    )
    p.add_argument("--docs", type=Path, default=C.DOCS, help="the file --write-docs writes")
    p.add_argument("--json", type=Path, default=None, help="write the result here (schema: SCHEMA)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.image_size, args.warmup, args.rounds, args.steps = 4, 64, 1, 1, 1
        args.precision_steps, args.precision_batch, args.precision_image_size = 2, 2, 64
        args.fit_classes, args.fit_train_per_class, args.fit_val_per_class = 2, 4, 2
        args.fit_epochs, args.fit_batch_size = 1, 4
    for key in ("batch_size", "image_size", "rounds", "steps", "precision_steps", "precision_batch"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.image_size < MIN_IMAGE_SIZE or args.precision_image_size < MIN_IMAGE_SIZE:
        p.error(f"image sizes must be >= {MIN_IMAGE_SIZE} (GoogLeNet's auxiliary heads need it)")
    return args


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = C.log
    env = C.environment()
    fast = resolve_precision("auto", CPU)
    log(f"{describe()}, torch {torch.__version__}, load {env['load_average']}, fast path {fast}")
    contenders = build_contenders(args, fast)
    images, labels = measure(contenders, args, log)
    rows = results_rows(contenders, args.batch_size)
    checks = [
        precision_check(
            variant, fast, batch_size=args.precision_batch, image_size=args.precision_image_size,
            steps=args.precision_steps, seed=args.seed,
        )
        for variant in (("googlenet_tv",) if args.quick else ("googlenet_tv", "googlenet"))
    ]  # fmt: skip
    result: dict[str, Any] = {
        **C.header(NAME, VERSION, C.shown_command("train_throughput.py", given), env),
        "settings": {
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "steps": args.steps,
            "seed": args.seed,
            "fast": fast,
            "fit_lr": args.fit_lr,
        },
        "rows": rows,
        "target": target(rows),
        "precision_steps": args.precision_steps,
        "precision": checks,
    }
    if args.profile:  # the peer and the first of ours (googlenet_tv on the default fast path)
        result["profile"] = {c.name: profile_ops(c, images, labels) for c in contenders[:2]}
        log("profiled " + ", ".join(result["profile"]))
    if args.fit:
        result["fit"] = short_fit(args, fast, log)
    env["load_average_after"] = C.load_average()
    C.publish(result, render(result), args.json, args.docs if args.write_docs else None)
    if args.write_docs:
        log(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
