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
import io
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common as C
import numpy as np
import torch

import googlenet
from googlenet.inference.predictor import Predictor, supported

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


NAME, VERSION = "inference", 1
ROW_SCHEMA = {
    "name": str,
    "peer": bool,
    "images_per_s": float,  # median over rounds at settings.batch
    "vs_peer": float,  # images_per_s / the fastest peer's
    "latency_ms?": float,  # median ms per image at batch 1
    "latency_vs_peer?": float,  # the fastest peer's latency / this one's (> 1: faster)
    "backend?": str,  # ours: what the Predictor runs (auto: what it chose) ...
    "precision?": str,
    "reason?": str,  # ... and why (Predictor.reason)
    "int8_format?": str,
    "agreement?": float,  # int8 top-1 agreement with fp32 on the calibration images, 0-1
    "note?": str,
}
SCHEMA = {
    "settings": {
        "batch": int,
        "image_size": int,
        "rounds": int,
        "calib_images": int,
        "quick": bool,
    },
    "rows": [ROW_SCHEMA],  # peers first
    "accuracy?": {
        "image_size": int,
        "images": int,  # validation images
        "data": str,
        "model": str,
        "fit_images?": int,  # the stand-in's fit images, where no checkpoint was given
        "rows": [{"path": str, "top1?": float, "agreement": float, "fit_agreement?": float}],  # percent
    },
    "targets": [
        {
            "name": str,
            "ours": str,
            "reference": str,
            "value": float,
            "unit": str,  # "x" (throughput ratio) or "points" (top-1 difference)
            "required": float,
            "met": bool,
            "latency_ratio?": float,
        }
    ],
    "seconds?": float,
}


def result_rows(contenders: list[Contender]) -> list[dict]:
    peers = [c for c in contenders if c.peer]
    best_tp = max(statistics.median(c.throughput) for c in peers)
    best_lat = min(statistics.median(c.latency) for c in peers)
    rows = []
    for c in contenders:
        tp, lat = statistics.median(c.throughput), statistics.median(c.latency)
        row = {
            "name": c.name,
            "peer": c.peer,
            "images_per_s": tp,
            "vs_peer": tp / best_tp,
            "latency_ms": lat,
            "latency_vs_peer": best_lat / lat,
        }
        if isinstance(c.run, Predictor):
            row.update(backend=c.run.backend, precision=c.run.precision, reason=c.run.reason)
            if c.run.int8_format is not None:
                row["int8_format"] = c.run.int8_format
            if c.run.agreement is not None:
                row["agreement"] = c.run.agreement
        if c.note:
            row["note"] = c.note
        rows.append(row)
    return rows


def targets(rows: list[dict], accuracy: dict | None) -> list[dict]:
    """The project's targets, checked on this run's medians."""
    by_name = {r["name"]: r for r in rows}
    peers = [r for r in rows if r["peer"]]
    best_peer = max(peers, key=lambda r: r["images_per_s"])["name"]
    out = []

    def speed(name: str, ours: str, ref: str, required: float = 1.0) -> None:
        if ours not in by_name or ref not in by_name:
            return
        a, b = by_name[ours], by_name[ref]
        target = {
            "name": name,
            "ours": ours,
            "reference": ref,
            "value": a["images_per_s"] / b["images_per_s"],
            "unit": "x",
            "required": required,
        }
        target["met"] = target["value"] >= required
        if "latency_ms" in a and "latency_ms" in b:
            target["latency_ratio"] = b["latency_ms"] / a["latency_ms"]
        out.append(target)

    def fastest(names: list[str]) -> str | None:
        return max(names, key=lambda n: by_name[n]["images_per_s"]) if names else None

    speed("auto at least as fast as the fastest peer", "googlenet auto", best_peer)
    fp32 = fastest([n for n in by_name if n.startswith("googlenet ") and n.endswith("fp32")])
    if fp32:
        speed("our fastest fp32 at least onnxruntime fp32", fp32, PEERS[2])
    int8 = fastest([n for n in by_name if n.startswith("googlenet ") and n.endswith("int8")])
    if int8:
        speed("int8 at least 1.5x OpenVINO's default", int8, PEERS[3], 1.5)
    acc = {r["path"]: r for r in (accuracy or {}).get("rows", [])}
    if "torch fp32" in acc and "top1" in acc["torch fp32"]:
        for path, r in acc.items():
            if path.endswith("int8") and "top1" in r:
                delta = r["top1"] - acc["torch fp32"]["top1"]
                out.append(
                    {
                        "name": "int8 top-1 within 1 point of fp32",
                        "ours": path,
                        "reference": "torch fp32",
                        "value": delta,
                        "unit": "points",
                        "required": 1.0,
                        "met": abs(delta) <= 1.0,
                    }
                )
    return out


def render(result: dict) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    s = result["settings"]

    def chose(r: dict) -> str:
        parts = [r.get("note", "")]
        if r["name"].startswith("googlenet auto") and "backend" in r:
            parts = [
                f"chose {r['backend']} {r['precision']}" + (f": {r['reason']}" if r.get("reason") else "")
            ]
        if "int8_format" in r:
            parts.append(f"int8 format {r['int8_format']}")
        if "agreement" in r:
            parts.append(f"agreement {100 * r['agreement']:.1f}%")
        return "; ".join(p for p in parts if p)

    parts = [
        C.machine_line(result),
        "",
        f"{s['image_size']} x {s['image_size']} input, median of {s['rounds']} interleaved rounds"
        + (" (`--quick`)" if s["quick"] else "")
        + f"; int8 calibrated on {s['calib_images']} training images"
        + (f"; took {result['seconds'] / 60:.1f} min." if "seconds" in result else "."),
        "",
        C.table(
            [
                {**r, "name": f"*{r['name']}*" if r["peer"] else r["name"], "detail": chose(r)}
                for r in result["rows"]
            ],
            [
                C.Column("contender", lambda r: r["name"], numeric=False),
                C.Column(f"images/s (batch {s['batch']})", C.field("images_per_s", "{:.1f}")),
                C.Column("vs fastest peer", C.field("vs_peer", "{:.2f}x")),
                C.Column("latency ms (batch 1)", C.field("latency_ms", "{:.1f}")),
                C.Column("vs fastest peer", C.field("latency_vs_peer", "{:.2f}x")),
                C.Column("note", lambda r: r["detail"], numeric=False),
            ],
        ),
    ]
    acc = result.get("accuracy")
    if acc:
        columns = [
            C.text("path"),
            C.Column("val top-1 %", C.field("top1", "{:.1f}")),
            C.Column("val agreement with fp32 %", C.field("agreement", "{:.1f}")),
        ]
        if "fit_images" in acc:
            columns.append(
                C.Column(f"agreement on {acc['fit_images']} fit images %", C.field("fit_agreement", "{:.1f}"))
            )
        parts += [
            "",
            f"Int8 accuracy ({acc['image_size']} x {acc['image_size']}) on {acc['images']} validation images "
            f"of `{acc['data']}`: {acc['model']}.",
            "",
            C.table(acc["rows"], columns),
        ]
    if result["targets"]:
        parts += ["", "Targets (throughput at the batch above; latency at batch 1):", ""]
        for t in result["targets"]:
            if t["unit"] == "x":
                value = f"{t['value']:.2f}x (target {t['required']:g}x)"
                if "latency_ratio" in t:
                    value += f", latency {t['latency_ratio']:.2f}x"
            else:
                value = f"{t['value']:+.1f} points (target within {t['required']:g})"
            verdict = "met" if t["met"] else "**not met**"
            parts.append(f"- {t['name']}: {t['ours']} vs {t['reference']} {value}: {verdict}")
    return "\n".join(parts)


def versions() -> dict[str, str]:
    import onnxruntime
    import openvino

    return {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__.split("-")[0]}


def parse_args(argv: list[str]) -> argparse.Namespace:
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
    C.output_flags(p)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.calib_images = args.calib_images or (64 if args.quick else 320)
    args.val_images = args.val_images or (100 if args.quick else 500)
    return args


def dataset_root(args: argparse.Namespace) -> Path:
    """Calibration images come from the training split, accuracy from the validation split."""
    from googlenet.data.builtin import ensure_builtin, resolve_data

    if args.data != "builtin":
        return resolve_data(args.data)
    classes = googlenet.load(args.checkpoint).num_classes if args.checkpoint else 10
    return ensure_builtin(
        classes=classes,
        train_per_class=max(-(-args.calib_images // classes), 30),
        val_per_class=-(-args.val_images // classes),
        image_size=128,
        seed=0,
    )


def build_contenders(args: argparse.Namespace, calib: list[torch.Tensor]) -> list[Contender]:
    """The peers (torchvision's model and its plain exports), then every Predictor path of ours."""
    size = args.image_size
    tv, ours = peer_models()
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
                C.log(f"skip {backend}/{precision}: {reason}")
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
        contenders.append(Contender("googlenet auto", auto))
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
            contenders.append(Contender("googlenet auto (with calibration)", auto8))
    return contenders


def accuracy(args: argparse.Namespace, root: Path) -> dict:
    """Top-1 of fp32 and of each bf16 / int8 path on the validation split, and their agreement with fp32."""
    fit_x = fit_y = None
    if args.checkpoint:
        model = googlenet.load(args.checkpoint)
        size = args.accuracy_image_size or model.meta.input_size[-1]
        desc = f"checkpoint `{args.checkpoint}` ({model.meta.variant}, {model.num_classes} classes)"
        calib = calibration_batches(root, model.meta, size, args.calib_images, args.batch)
    else:
        size = args.accuracy_image_size or args.image_size
        torch.manual_seed(0)
        model = googlenet.create_model("googlenet_tv", num_classes=10, aux_logits=False).eval()
        train_x, train_y = labelled(root, "train", model.meta, size)
        # Even-indexed training images fit the stand-in, odd-indexed ones calibrate int8: the
        # agreement on the fit images (where the stand-in is confident) is not on calibration data.
        fit_x, fit_y = train_x[0::2], train_y[0::2]
        fit_probe(model, fit_x, fit_y)
        calib = list(train_x[1::2].split(args.batch))
        desc = (
            "googlenet_tv, random backbone with BatchNorm statistics recomputed on, and a ridge-regression "
            f"classifier fitted to, {len(fit_x)} built-in training images (no trained checkpoint in this "
            f"run; its val top-1 is near chance, so val agreement measures near-ties); int8 calibrated on "
            f"{len(train_x) - len(fit_x)} other training images"
        )
    val_x, val_y = labelled(root, "val", model.meta, size, limit=args.val_images)
    out = {"image_size": size, "images": len(val_y), "data": args.data, "model": desc, "rows": []}
    if fit_x is not None:
        out["fit_images"] = len(fit_x)
    with quiet():
        ref = Predictor(model, "torch", "fp32", image_size=size)
        acc_fp32, pred_fp32 = top1(ref, val_x, val_y)
        fit_fp32 = top1(ref, fit_x, fit_y)[1] if fit_x is not None else None
        out["rows"].append({"path": "torch fp32", "top1": acc_fp32, "agreement": 100.0})
        if fit_x is not None:
            out["rows"][0]["fit_agreement"] = 100.0
        for backend, precision in [("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "int8")]:
            if supported(backend, precision):
                continue
            pr = Predictor(
                model, backend, precision, image_size=size, calibration=calib if precision == "int8" else None
            )
            acc, pred = top1(pr, val_x, val_y)
            row = {
                "path": f"{backend} {precision}",
                "top1": acc,
                "agreement": 100.0 * (pred == pred_fp32).float().mean().item(),
            }
            if fit_x is not None:
                row["fit_agreement"] = 100.0 * (top1(pr, fit_x, fit_y)[1] == fit_fp32).float().mean().item()
            out["rows"].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("googlenet").setLevel(logging.INFO)
    env = C.environment(**versions())
    t0 = time.perf_counter()
    root = dataset_root(args)
    calib = calibration_batches(root, peer_models()[1].meta, args.image_size, args.calib_images, args.batch)
    C.log(f"calibration: {sum(len(b) for b in calib)} training images from {root}")
    C.log("building contenders ...")
    contenders = build_contenders(args, calib)
    gen = torch.Generator().manual_seed(1)
    big = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=gen)
    C.log(f"timing {len(contenders)} contenders, {args.rounds} rounds ...")
    measure(contenders, big, big[:1].clone(), args.rounds, latency_calls=5 if args.quick else 10)
    C.log("int8 accuracy ...")
    # Timing is done; one torch thread is several times faster than two on a busy machine and no
    # slower than ~2x on an idle one (docs/inference.md), and only the answers matter from here.
    torch.set_num_threads(1)
    acc = accuracy(args, root)
    env["load_average_after"] = C.load_average()
    rows = result_rows(contenders)
    result = {
        **C.header(NAME, VERSION, C.shown_command("inference.py", given), env),
        "settings": {
            "batch": args.batch,
            "image_size": args.image_size,
            "rounds": args.rounds,
            "calib_images": sum(len(b) for b in calib),
            "quick": args.quick,
        },
        "rows": rows,
        "accuracy": acc,
        "targets": targets(rows, acc),
        "seconds": time.perf_counter() - t0,
    }
    C.publish(result, render(result), args.json, None if args.no_docs else args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
