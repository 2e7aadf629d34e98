"""CPU inference benchmark: googlenet.Predictor's backends and precisions against the usual peers.

The network is the inference net of Table 1 (section 5; no auxiliary heads). Every contender runs
the same weights (googlenet_tv with a torchvision GoogLeNet's tensors copied in; random init is as
good as trained weights for speed) on the same batches, interleaved in one process: each round
times every contender once (round-robin), and the table reports the median over rounds, so a
background load that comes and goes hits all contenders alike.

Peers: torchvision's GoogLeNet in eager fp32 (NCHW, and channels-last), onnxruntime on a plain
``torch.onnx.export`` of it (default session options), OpenVINO on ``convert_model`` of it at its
default settings (on AVX512-BF16 CPUs its default inference precision is bf16).

Int8 accuracy: top-1 on a validation split for fp32 and for each int8 path, calibrated on training
images. By default the built-in set and a googlenet_tv whose classifier is a ridge-regression probe
fitted on the built-in training split (the backbone is random: there is no trained checkpoint in the
default run); pass ``--checkpoint PATH.safetensors --data builtin`` to measure a trained model.

    python benchmarks/inference.py            # 8-12 minutes on 2 shared cores, rewrites docs/benchmarks.md
    python benchmarks/inference.py --quick    # fewer rounds, images and rows (minutes when shared)
    python benchmarks/inference.py --checkpoint runs/x/model.safetensors --data builtin
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from docs_section import DOCS, write_section

import googlenet
from googlenet.inference.predictor import Predictor, cpu_count, cpu_name, native_bf16, supported

PEERS = (
    "torchvision eager fp32",
    "torchvision channels_last fp32",
    "onnxruntime fp32 (plain export)",
    "openvino default",
)


@dataclass
class Contender:
    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    peer: bool = False
    note: str = ""
    throughput: list[float] = field(default_factory=list)  # images/s per round
    latency: list[float] = field(default_factory=list)  # ms per image at batch 1, per round


def quiet() -> contextlib.AbstractContextManager:
    """Exporters and converters print progress; the benchmark's own output is the table."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def peer_models() -> tuple[torch.nn.Module, googlenet.GoogLeNet]:
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=False)
    ours = googlenet.create_model("googlenet_tv", num_classes=1000, aux_logits=True)
    ours.load_state_dict(tv.state_dict(), strict=True)
    tv.aux_logits, tv.aux1, tv.aux2 = False, None, None  # inference net only, as ours exports
    return tv.eval(), ours.eval()


def torch_eager(model: torch.nn.Module, channels_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x.contiguous(memory_format=fmt))

    return run


def ort_plain(model: torch.nn.Module, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    with quiet():
        program = torch.onnx.export(
            model,
            (torch.randn(2, 3, size, size),),
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
        )
    session = ort.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def openvino_default(model: torch.nn.Module, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import openvino as ov

    with quiet():
        ov_model = ov.convert_model(model, example_input=torch.randn(2, 3, size, size))
    ov_model.reshape({0: ov.PartialShape([-1, 3, size, size])})
    compiled = ov.Core().compile_model(ov_model, "CPU")
    return lambda x: torch.from_numpy(np.asarray(compiled(x.numpy())[0]))


def calibration_batches(
    root: Path, meta: googlenet.ModelMeta, size: int, count: int, batch: int
) -> list[torch.Tensor]:
    from googlenet.data.datasets import build_dataset
    from googlenet.data.transforms import eval_transform

    data = build_dataset(root, "train", eval_transform(meta, size))
    step = max(1, len(data) // count)
    images = [data[i][0] for i in range(0, len(data), step)][:count]
    return [torch.stack(images[i : i + batch]) for i in range(0, len(images), batch)]


def labelled(
    root: Path, split: str, meta: googlenet.ModelMeta, size: int, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    from googlenet.data.datasets import build_dataset
    from googlenet.data.transforms import eval_transform

    data = build_dataset(root, split, eval_transform(meta, size))
    idx = (
        range(len(data))
        if limit is None
        else np.linspace(0, len(data) - 1, min(limit, len(data))).astype(int)
    )
    pairs = [data[int(i)] for i in idx]
    return torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


def fit_probe(model: googlenet.GoogLeNet, images: torch.Tensor, labels: torch.Tensor) -> None:
    """The stand-in for a trained model when no checkpoint is given: BatchNorm statistics recomputed
    on the training images (so features vary with the image rather than sharing one direction, as in
    a raw random network), then a closed-form ridge-regression classifier on the pooled features."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for b in images.split(64):
            model(b)
    model.eval()
    with torch.inference_mode():
        feats = torch.cat(
            [model.forward_head(model.forward_features(b), pre_logits=True) for b in images.split(32)]
        )
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mu) / sd
    targets = torch.nn.functional.one_hot(labels, model.num_classes).float() * 2 - 1
    ridge = 10.0 * torch.eye(z.shape[1])
    w = torch.linalg.solve(z.T @ z + ridge, z.T @ targets).T  # classes x features
    with torch.no_grad():
        model.fc.weight.copy_(w / sd)
        model.fc.bias.copy_(-(w / sd) @ mu)


def top1(
    run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor, batch: int = 32
) -> tuple[float, torch.Tensor]:
    pred = torch.cat([run(b).argmax(1) for b in images.split(batch)])
    return 100.0 * (pred == labels).float().mean().item(), pred


def measure(
    contenders: list[Contender], big: torch.Tensor, one: torch.Tensor, rounds: int, latency_calls: int
) -> None:
    for c in contenders:  # warm-up: first calls allocate and pick kernels
        c.run(big)
        c.run(one)
    for _ in range(rounds):
        for c in contenders:
            start = time.perf_counter()
            c.run(big)
            c.throughput.append(len(big) / (time.perf_counter() - start))
            times: list[float] = []
            # At least 3 calls, at most latency_calls, and no more once 2 s are spent (a slow
            # contender on a loaded machine would otherwise dominate the run time).
            while len(times) < latency_calls and (len(times) < 3 or sum(times) < 2.0):
                start = time.perf_counter()
                c.run(one)
                times.append(time.perf_counter() - start)
            c.latency.append(1000 * statistics.median(times))


def target_lines(contenders: list[Contender], acc_rows: list[tuple]) -> list[str]:
    """The project's targets, checked on this run's medians."""
    tp = {c.name: statistics.median(c.throughput) for c in contenders}
    lat = {c.name: statistics.median(c.latency) for c in contenders}
    peer_best = max((n for n in PEERS if n in tp), key=tp.__getitem__)
    lines = []

    def check(label: str, ours: str, ref: str, factor: float = 1.0) -> None:
        if ours not in tp or ref not in tp:
            return
        r_tp, r_lat = tp[ours] / tp[ref], lat[ref] / lat[ours]
        verdict = "met" if r_tp >= factor else f"missed by {100 * (1 - r_tp / factor):.0f}%"
        lines.append(
            f"- {label}: {ours} {tp[ours]:.1f} vs {ref} {tp[ref]:.1f} images/s = {r_tp:.2f}x "
            f"(target {factor:g}x: {verdict}); latency {lat[ours]:.1f} vs {lat[ref]:.1f} ms = {r_lat:.2f}x"
        )

    check("auto at least as fast as the fastest peer", "googlenet auto", peer_best)
    fp32 = [n for n in tp if n.startswith("googlenet ") and "fp32" in n]
    if fp32:
        check("our fastest fp32 at least onnxruntime fp32", max(fp32, key=tp.__getitem__), PEERS[2])
    int8 = [n for n in tp if n.startswith("googlenet ") and n.endswith("int8")]
    if int8:
        check("int8 at least 1.5x OpenVINO's default", max(int8, key=tp.__getitem__), PEERS[3], 1.5)
    fp32_acc = next((a for n, a, *_ in acc_rows if n == "torch fp32"), None)
    for name, acc, *_ in acc_rows:
        if name.endswith("int8") and fp32_acc is not None:
            lines.append(f"- {name} top-1 {acc - fp32_acc:+.1f} points vs fp32 (target: within 1 point)")
    return lines


def versions() -> str:
    import onnxruntime
    import openvino

    return (
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}"
    )


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return cpu_name()


def load_note(load: float) -> str:
    if load > cpu_count() + 0.5:
        return "the machine was shared with other jobs: absolute numbers are low and noisy; ratios are fairer"
    return "machine otherwise idle"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: 3 rounds, 64 calibration / 100 val images, no threads=1 or int8-auto rows",
    )
    p.add_argument("--rounds", type=int, default=None, help="round-robin rounds (default 5, --quick 3)")
    p.add_argument("--batch", type=int, default=32, help="throughput batch (default 32)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--checkpoint", help="a trained .safetensors for the int8 accuracy section")
    p.add_argument(
        "--data", default="builtin", help="'builtin' or a folder with train/ and val/ (default builtin)"
    )
    p.add_argument(
        "--calib-images", type=int, default=None, help="calibration images (default 320, --quick 64)"
    )
    p.add_argument(
        "--val-images", type=int, default=None, help="validation images (default 500, --quick 100)"
    )
    p.add_argument(
        "--accuracy-image-size",
        type=int,
        default=None,
        help="accuracy section's input size (default: the checkpoint's meta input size, else --image-size)",
    )
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    given = list(sys.argv[1:] if argv is None else argv)  # echoed in the docs' "Reproduce" line
    args = p.parse_args(given)
    rounds = args.rounds or (3 if args.quick else 5)
    n_calib = args.calib_images or (64 if args.quick else 320)
    n_val = args.val_images or (100 if args.quick else 500)
    size = args.image_size
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("googlenet").setLevel(logging.INFO)
    load_start = os.getloadavg()
    t0 = time.perf_counter()

    # Data: calibration images come from the training split, accuracy from the validation split.
    from googlenet.data.builtin import ensure_builtin, resolve_data

    if args.data == "builtin":
        classes = googlenet.load(args.checkpoint).num_classes if args.checkpoint else 10
        per_class_val = -(-n_val // classes)
        per_class_train = max(-(-n_calib // classes), 30)
        root = ensure_builtin(
            classes=classes,
            train_per_class=per_class_train,
            val_per_class=per_class_val,
            image_size=128,
            seed=0,
        )
    else:
        root = resolve_data(args.data)

    tv, ours = peer_models()
    calib = calibration_batches(root, ours.meta, size, n_calib, args.batch)
    print(f"calibration: {sum(len(b) for b in calib)} training images from {root}", file=sys.stderr)

    # --- speed -----------------------------------------------------------------------------------
    print("building contenders ...", file=sys.stderr)
    contenders = [
        Contender(PEERS[0], torch_eager(tv, channels_last=False), peer=True),
        Contender(PEERS[1], torch_eager(peer_models()[0], channels_last=True), peer=True),
        Contender(PEERS[2], ort_plain(tv, size), peer=True),
        Contender(PEERS[3], openvino_default(tv, size), peer=True),
    ]
    with quiet():
        for backend, precision in [
            ("torch", "fp32"),
            ("torch", "bf16"),
            ("onnxruntime", "fp32"),
            ("openvino", "fp32"),
            ("openvino", "bf16"),
            ("onnxruntime", "int8"),
            ("openvino", "int8"),
        ]:
            reason = supported(backend, precision)
            if reason:
                print(f"skip {backend}/{precision}: {reason}", file=sys.stderr)
                continue
            pred = Predictor(
                ours, backend, precision, image_size=size, calibration=calib if precision == "int8" else None
            )
            contenders.append(Contender(f"googlenet {backend} {precision}", pred))
        # torch's OpenMP pool vs a busy machine (docs/inference.md); --quick leaves these out.
        for precision in () if args.quick else ("fp32", "bf16"):
            if not supported("torch", precision):
                pred = Predictor(ours, "torch", precision, image_size=size, threads=1)
                contenders.append(Contender(f"googlenet torch {precision}, threads=1", pred))
        auto = Predictor(ours, "auto", "auto", image_size=size, auto_batch=args.batch, use_cache=False)
        contenders.append(Contender("googlenet auto", auto, note=f"chose {auto.backend} {auto.precision}"))
        if not args.quick:  # auto again, int8 allowed: measures every candidate a second time
            auto8 = Predictor(
                ours,
                "auto",
                "auto",
                image_size=size,
                auto_batch=args.batch,
                use_cache=False,
                calibration=calib,
            )
            note = f"chose {auto8.backend} {auto8.precision}"
            contenders.append(Contender("googlenet auto (with calibration)", auto8, note=note))
    big = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    one = big[:1].clone()
    print(f"timing {len(contenders)} contenders, {rounds} rounds ...", file=sys.stderr)
    measure(contenders, big, one, rounds, latency_calls=5 if args.quick else 10)

    # --- int8 accuracy ---------------------------------------------------------------------------
    print("int8 accuracy ...", file=sys.stderr)
    # Timing is done; one torch thread is several times faster than two on a busy machine and no
    # slower than ~2x on an idle one (docs/inference.md), and only the answers matter from here.
    torch.set_num_threads(1)
    fit_x = None
    if args.checkpoint:
        acc_model = googlenet.load(args.checkpoint)
        acc_size = args.accuracy_image_size or acc_model.meta.input_size[-1]
        model_desc = (
            f"checkpoint `{args.checkpoint}` ({acc_model.meta.variant}, {acc_model.num_classes} classes)"
        )
        acc_calib = calibration_batches(root, acc_model.meta, acc_size, n_calib, args.batch)
    else:
        acc_size = args.accuracy_image_size or size
        torch.manual_seed(0)
        acc_model = googlenet.create_model("googlenet_tv", num_classes=10, aux_logits=False).eval()
        train_x, train_y = labelled(root, "train", acc_model.meta, acc_size)
        # Even-indexed training images fit the stand-in, odd-indexed ones calibrate int8: the
        # agreement on the fit images (where the stand-in is confident) is not on calibration data.
        fit_x, fit_y = train_x[0::2], train_y[0::2]
        fit_probe(acc_model, fit_x, fit_y)
        acc_calib = list(train_x[1::2].split(args.batch))
        model_desc = (
            "googlenet_tv, random backbone with BatchNorm statistics recomputed on, and a ridge-regression "
            f"classifier fitted to, {len(fit_x)} built-in training images (no trained checkpoint in this "
            f"run; its val top-1 is near chance, so val agreement measures near-ties); int8 calibrated on "
            f"{len(train_x) - len(fit_x)} other training images"
        )
    val_x, val_y = labelled(root, "val", acc_model.meta, acc_size, limit=n_val)
    acc_rows = []
    with quiet():
        ref = Predictor(acc_model, "torch", "fp32", image_size=acc_size)
        acc_fp32, pred_fp32 = top1(ref, val_x, val_y)
        fit_fp32 = top1(ref, fit_x, fit_y)[1] if fit_x is not None else None
        acc_rows.append(("torch fp32", acc_fp32, 100.0, 100.0 if fit_x is not None else None))
        for backend, precision in [("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "int8")]:
            if supported(backend, precision):
                continue
            pr = Predictor(
                acc_model,
                backend,
                precision,
                image_size=acc_size,
                calibration=acc_calib if precision == "int8" else None,
            )
            acc, pred = top1(pr, val_x, val_y)
            fit_agree = None
            if fit_x is not None:
                fit_agree = 100.0 * (top1(pr, fit_x, fit_y)[1] == fit_fp32).float().mean().item()
            acc_rows.append(
                (f"{backend} {precision}", acc, 100.0 * (pred == pred_fp32).float().mean().item(), fit_agree)
            )

    # --- report ----------------------------------------------------------------------------------
    load_end = os.getloadavg()
    peers = [c for c in contenders if c.peer]
    best_tp = max(statistics.median(c.throughput) for c in peers)
    best_lat = min(statistics.median(c.latency) for c in peers)
    lines = [
        f"| contender | images/s (batch {args.batch}) | vs fastest peer | latency ms (batch 1) "
        "| vs fastest peer | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in contenders:
        tp, lat = statistics.median(c.throughput), statistics.median(c.latency)
        name = f"*{c.name}*" if c.peer else c.name
        lines.append(
            f"| {name} | {tp:.1f} | {tp / best_tp:.2f}x | {lat:.1f} | {best_lat / lat:.2f}x | {c.note} |"
        )
    if fit_x is not None:
        acc_lines = [
            f"| path | val top-1 % | val agreement with fp32 % | agreement on {len(fit_x)} fit images % |",
            "|---|---:|---:|---:|",
        ]
        acc_lines += [f"| {n} | {a:.1f} | {g:.1f} | {f:.1f} |" for n, a, g, f in acc_rows]
    else:
        acc_lines = ["| path | val top-1 % | val agreement with fp32 % |", "|---|---:|---:|"]
        acc_lines += [f"| {n} | {a:.1f} | {g:.1f} |" for n, a, g, _ in acc_rows]
    targets = target_lines(contenders, acc_rows)
    minutes = (time.perf_counter() - t0) / 60
    section = "\n".join(
        [
            "## CPU inference (benchmarks/inference.py)",
            "",
            f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC{' (--quick)' if args.quick else ''}: "
            f"{lscpu_model()}, {cpu_count()} cores, native bf16: {native_bf16()}; {versions()}. "
            f"Load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end "
            f"({load_note(max(load_start[0], load_end[0]))}). "
            f"{size}x{size} input, googlenet_tv weights = a torchvision GoogLeNet's, median of {rounds} "
            "interleaved rounds; ratios are to the fastest peer (*italic* rows); latency ratio > 1 is "
            f"faster. int8 calibrated on {sum(len(b) for b in calib)} training images. "
            f"Took {minutes:.1f} min.",
            "",
            *lines,
            "",
            f"Int8 accuracy ({acc_size}x{acc_size}) on {len(val_y)} validation images of `{args.data}`: "
            f"{model_desc}.",
            "",
            *acc_lines,
            "",
            "Targets (throughput at the batch above; latency at batch 1):",
            "",
            *targets,
            "",
            f"Reproduce: `{shlex.join(['python', 'benchmarks/inference.py', *given])}`",
        ]
    )
    print(section)
    if not args.no_docs:
        write_section("inference", section)
        print(f"\nwrote {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
