"""The paper's detection Tables 4 and 5 in the built-in detection set's terms (section 8).

One run measures, on one built-in detection set (:func:`googlenet.detection.builtin.make_builtin_detection`):

- a classification model pre-trained on the built-in classification set whose classes the
  detection set draws (:func:`googlenet.fit`), unless ``--init-from`` names one;
- two detectors of ``--members`` region classifiers each (:func:`googlenet.detection.train_detector`,
  the members differ in seed): one fine-tuned from that model (R-CNN's recipe), one from scratch,
  same recipe and budget;
- every member alone (mean and sample sd over the members, i.e. over seeds) and the ensembles of
  the first 2..N members, with R-CNN's proposals (``selective-search``) and the paper's
  (``selective-search-2x``; ``paper`` = x2 + 200 MultiBox with ``--multibox``) at test time, scored
  with the ILSVRC rule by :func:`googlenet.detection.evaluate_detector` (each member's network runs
  once per image and proposal method; its summary rows and paired differences are the result's);
- the cost per image on a few val images: proposals (one process), warping, the network and NMS for
  one member and for the ensemble, per inference backend (``Detector`` with ``backend=``).

The result is JSON with a versioned schema (``SCHEMA``, checked by :func:`render`) and a
markdown rendering (printed; ``--docs FILE`` also writes it as this benchmark's section of FILE).
Re-running with the same ``--out`` reuses what is done (data, pre-training, finished members).

    python benchmarks/detection_tables.py --out /work/runs-det --train-images 150 --val-images 60 \
        --members 3 --epochs 1 --threads 1 --json docs/results/detection_tables.json \
        --docs docs/detection.md
    python benchmarks/detection_tables.py --tiny --out /tmp/det --json /tmp/det/result.json
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import common as C
import cv2
import numpy as np
import torch

import googlenet
from googlenet.data.builtin import make_builtin
from googlenet.detection import Detector, StageTimes, evaluate_detector, train_detector
from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detector import read_manifest
from googlenet.detection.evaluation import DetectionResult, paired_difference
from googlenet.detection.proposals import cached_proposals, proposal_method, propose
from googlenet.errors import GoogLeNetError
from googlenet.runs import RunLayout, read_metrics
from googlenet.training.config import resolve_config
from googlenet.training.ensemble import EnsembleInterrupted

NAME, VERSION = "detection_tables", 1
INITS = ("fine-tuned", "scratch")

STAGES = {"warp": float, "network": float, "nms": float, "total": float}
SCHEMA: dict[str, Any] = {
    "settings": {
        "train_images": int,
        "val_images": int,
        "data_image_size": int,
        "region_size": int,
        "members": int,
        "epochs": int,
        "config": str,
        "pretrain_config": str,
        "pretrain_epochs": int,
        "pretrain_train_per_class": int,
        "init_from?": str,  # a given classification model (then nothing is pre-trained here)
        "train_proposals": str,
        "proposals": [str],
        "rule": str,
        "backends": [str],
        "cost_images": int,
        "threads": int,
        "tiny": bool,
    },
    "data": {"classes": [str], "val_objects": int, "train_objects": int},
    "pretrain?": {"val_top1_err": float, "avg_val_top1_err": float, "epochs": int},
    "wall_seconds": {"?": float},  # data, pretrain, train fine-tuned, train scratch, evaluation, cost, total
    "load_average_during": {"min": float, "mean": float, "max": float, "samples": int},
    "proposals": [{"method": str, "per_image": float, "coverage": float}],
    # One row per (init, proposals, members): members are 0-based indices; a single member or the first k.
    "runs": [
        {
            "init": str,
            "proposals": str,
            "members": [int],
            "mAP": float,
            "AP": {"?": float},
            "num_detections": int,
        }
    ],
    # Per (init, proposals): the single members' mAPs, their mean and sample sd, the ensembles' mAPs.
    "summary": [
        {
            "init": str,
            "proposals": str,
            "single": [float],
            "single_mean": float,
            "single_sd?": float,  # with 2 members or more
            "ensembles": {"?": float},  # "k" -> mAP of the first k members, k = 2..N
        }
    ],
    # Paired differences over the members (same seed on both sides): mean and sample sd.
    "paired": [{"what": str, "diffs": [float], "mean": float, "sd?": float}],
    "proposal_cost": [{"method": str, "seconds_per_image": float, "images": int}],
    "cost": [
        {
            "backend": str,  # as asked
            "resolved": str,  # the Predictor's backend/precision
            "members": int,
            "proposals": str,
            "images": int,
            "regions_per_image": float,
            "seconds_per_image": STAGES,
        }
    ],
}


# --------------------------------------------------------------------------- the steps


def say(message: str) -> None:
    C.log(f"detection_tables: {message}")


@contextlib.contextmanager
def training_log() -> Iterator[None]:
    """The library's training lines on stderr while the run lasts (the library itself never prints)."""
    log = logging.getLogger("googlenet")
    handler, level = logging.StreamHandler(sys.stderr), log.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while the run lasts."""

    def __init__(self, every: float) -> None:
        self.every, self.samples, self._stop = every, [os.getloadavg()[0]], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {"min": min(s), "mean": round(statistics.fmean(s), 2), "max": max(s), "samples": len(s)}


def result_rows(
    init: str, result: DetectionResult
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A detector's runs, summary and paired differences (over its members) as this schema's rows."""
    runs = [
        {
            "init": init,
            "proposals": r.proposals,
            "members": list(r.members),
            "mAP": r.mAP,
            "AP": dict(r.evaluation.ap),
            "num_detections": r.evaluation.num_detections,
        }
        for r in result.runs
    ]
    summary = [{"init": init, **row.to_dict()} for row in result.member_summary()]
    paired = [{**d.to_dict(), "what": f"{init}: {d.what}"} for d in result.paired_differences()]
    return runs, summary, paired


def measure_cost(
    det_dir: Path,
    dataset: Any,
    method: Any,
    proposals: dict[str, np.ndarray],
    backends: Sequence[str],
    members: int,
    images: int,
    threads: int,
) -> list[dict[str, Any]]:
    """Seconds per image of warping, network and NMS, for 1 member and for all, per backend: one warm-up
    image (export, compilation, first allocations), then ``images`` val images, one row after another."""
    rows = []
    picked = [dataset[i] for i in range(min(images, len(dataset)))]
    for backend in backends:
        for k in sorted({1, members}):
            detector = Detector.load(
                det_dir, members=k, proposals=method, backend=backend, precision="fp32", threads=threads
            )
            image, target = picked[0]
            detector.detect(image, proposals[target.image_id])  # warm-up: export, compile, first allocations
            detector.times = StageTimes()
            for image, target in picked:
                detector.detect(image, proposals[target.image_id])
            p = detector.predictors[0]
            seconds = detector.times.seconds_per_image(("warp", "network", "nms"))
            rows.append(
                {
                    "backend": backend,
                    "resolved": f"{p.backend}/{p.precision}",
                    "members": k,
                    "proposals": method.name,
                    "images": detector.times.images,
                    "regions_per_image": detector.times.regions_per_image(),
                    "seconds_per_image": {**seconds, "total": sum(seconds.values())},
                }
            )
    return rows


def proposal_cost(dataset: Any, methods: Sequence[Any], images: int) -> list[dict[str, Any]]:
    """Seconds per image of each proposal method in this process (one OpenCV thread set by the caller)."""
    rows = []
    arrays = [np.asarray(dataset[i][0]) for i in range(min(images, len(dataset)))]
    for method in methods:
        t0 = time.perf_counter()
        for a in arrays:
            propose(a, method)
        rows.append(
            {
                "method": method.name,
                "seconds_per_image": (time.perf_counter() - t0) / len(arrays),
                "images": len(arrays),
            }
        )
    return rows


# --------------------------------------------------------------------------- markdown


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def render(result: dict[str, Any]) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    s = result["settings"]
    props = {p["method"]: p for p in result["proposals"]}
    ks = [str(k) for k in range(2, s["members"] + 1)]
    rows = []
    for row in result["summary"]:
        p = props[row["proposals"]]
        singles = ", ".join(pct(v) for v in row["single"])
        spread = f" +- {pct(row['single_sd'])}" if "single_sd" in row else ""
        rows.append(
            {
                "init": row["init"],
                "proposals": f"`{row['proposals']}`",
                "per_image": p["per_image"],
                "coverage": 100 * p["coverage"],
                "single": f"{pct(row['single_mean'])}{spread} ({singles})",
                **{f"k{k}": pct(row["ensembles"].get(k)) for k in ks},
            }
        )
    accuracy = C.table(
        rows,
        [
            C.text("init"),
            cell("proposals", "proposals"),
            C.Column("proposals / image", C.field("per_image", "{:.0f}")),
            C.Column("coverage %", C.field("coverage", "{:.1f}")),
            cell("1 model: mean +- sd (each member)", "single", numeric=True),
            *[cell(f"ensemble of {k}", f"k{k}", numeric=True) for k in ks],
        ],
    )
    paired = C.table(
        [
            {
                "what": p["what"],
                "mean": pct(p["mean"]),
                "sd": pct(p.get("sd")),
                "diffs": ", ".join(f"{100 * d:+.1f}" for d in p["diffs"]),
            }
            for p in result["paired"]
        ],
        [C.text("what"), cell("mean", "mean", True), cell("sd", "sd", True), C.text("diffs")],
    )
    pcost = {p["method"]: p["seconds_per_image"] for p in result["proposal_cost"]}
    cost = C.table(
        [
            {
                "backend": f"{c['backend']} ({c['resolved']})",
                "members": c["members"],
                "proposals": pcost.get(c["proposals"]),
                "regions": c["regions_per_image"],
                **c["seconds_per_image"],
            }
            for c in result["cost"]
        ],
        [
            C.text("backend"),
            C.Column("members", C.field("members", "{}")),
            C.Column("regions / image", C.field("regions", "{:.0f}")),
            C.Column(f"proposals s (`{s['train_proposals']}`)", C.field("proposals", "{:.3f}")),
            C.Column("warp s", C.field("warp", "{:.3f}")),
            C.Column("network s", C.field("network", "{:.3f}")),
            C.Column("NMS s", C.field("nms", "{:.4f}")),
            C.Column("warp + network + NMS s", C.field("total", "{:.3f}")),
        ],
    )
    load = result["load_average_during"]
    wall = ", ".join(f"{k} {v:.0f} s" for k, v in result["wall_seconds"].items())
    pre = result.get("pretrain")
    origin = (
        f"`{s['init_from']}`"
        if s.get("init_from")
        else f"a classifier trained here ({s['pretrain_epochs']} epochs of `{s['pretrain_config']}`, "
        f"{s['pretrain_train_per_class']} images per class of the {len(result['data']['classes'])} "
        f"classes; val top-1 error {pct(pre['avg_val_top1_err'])}% averaged weights)"
    )
    return "\n".join(
        [
            C.machine_line(result),
            "",
            f"Built-in detection set: {s['train_images']} train / {s['val_images']} val images at "
            f"{s['data_image_size']} px ({result['data']['train_objects']} / {result['data']['val_objects']} "
            f"objects), {len(result['data']['classes'])} classes. Detectors: {s['members']} members each, "
            f"`{s['config']}`, {s['epochs']:g} epoch(s), {s['region_size']} px regions, trained on "
            f"`{s['train_proposals']}` proposals; fine-tuned from {origin}, or from scratch (same recipe). "
            f"ILSVRC-rule mAP (%) on the val split; proposals switched at test time only. Load average "
            f"during the run {load['min']:.1f}-{load['max']:.1f} (mean {load['mean']:.1f}, {load['samples']} "
            f"samples). Wall: {wall}.",
            "",
            accuracy,
            "",
            "Paired differences over the members (same seeds), mAP points:",
            "",
            paired,
            "",
            f"Cost per image on {result['cost'][0]['images'] if result['cost'] else 0} val images "
            f"({s['threads']} thread(s), fp32; proposals in one process):",
            "",
            cost,
        ]
    )


def cell(header: str, key: str, numeric: bool = False) -> C.Column:
    """A column showing ``row[key]`` as already formatted."""
    return C.Column(header, lambda row: str(row.get(key, "-")), numeric=numeric)


# --------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/detection_tables"), help="work folder (reused)")
    p.add_argument("--train-images", type=int, default=150)
    p.add_argument("--val-images", type=int, default=60)
    p.add_argument("--data-image-size", type=int, default=256, help="the detection images' shorter side")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1, help="detector epochs (passes over the positives)")
    p.add_argument("--config", default=str(C.ROOT / "configs" / "detector_demo.yaml"))
    p.add_argument("--init-from", default=None, help="a classification model; else one is pre-trained here")
    p.add_argument("--pretrain-config", default=str(C.ROOT / "configs" / "demo.yaml"))
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--pretrain-train-per-class", type=int, default=500)
    p.add_argument("--train-proposals", default="selective-search-2x")
    p.add_argument("--proposals", nargs="+", default=["selective-search", "selective-search-2x"])
    p.add_argument("--multibox", default=None, help="a MultiBox folder (adds the `paper` proposals)")
    p.add_argument("--rule", default="ilsvrc", choices=("ilsvrc", "voc07", "voc12"))
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime", "openvino"])
    p.add_argument("--cost-images", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch (and runtime) threads; workers stay at 1")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers of training")
    p.add_argument(
        "--tiny", action="store_true", help="4 train / 2 val images at 64 px, 2 members: the test mode"
    )
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--docs", type=Path, default=None, help="also write the rendering as a section of this file"
    )
    args = p.parse_args(argv)
    if args.tiny:
        args.train_images, args.val_images, args.data_image_size = 4, 2, 64
        args.members, args.epochs, args.pretrain_epochs, args.pretrain_train_per_class = 2, 1, 1, 6
        args.cost_images, args.workers = 1, 0
    if args.multibox and "paper" not in args.proposals:
        args.proposals.append("paper")
    if args.members < 1 or args.cost_images < 1 or args.threads < 1:
        p.error("--members, --cost-images and --threads must be at least 1")
    return args


def pretrain(args: argparse.Namespace, out: Path, classes: int) -> tuple[str, dict[str, Any]]:
    """A classifier of the built-in set's ``classes`` first classes (reused when trained): its run
    directory and its last epoch's errors."""
    cls_data = make_builtin(
        out / "cls_data",
        classes=classes,
        train_per_class=args.pretrain_train_per_class,
        val_per_class=max(2, args.pretrain_train_per_class // 10),
        workers=1,
    )
    cls_run = out / "cls"
    if not RunLayout(cls_run).weights.is_file():
        say(f"pre-training {cls_run} ({args.pretrain_epochs} epochs of {rel(args.pretrain_config)})")
        overrides = {"data": str(cls_data), "out": str(cls_run), "epochs": args.pretrain_epochs}
        config = resolve_config(args.pretrain_config, {**overrides, **runtime(args)})
        trained = googlenet.fit(config)
        if trained.interrupted:
            raise SystemExit(f"detection_tables: pre-training stopped by {trained.interrupted}")
    rec = read_metrics(cls_run)[-1]
    return str(cls_run), {
        "val_top1_err": rec["val_top1_err"],
        "avg_val_top1_err": rec["avg_val_top1_err"],
        "epochs": int(rec["epoch"]),
    }


def runtime(args: argparse.Namespace) -> dict[str, Any]:
    """The execution settings every training of the run shares."""
    return {"num_threads": args.threads, "workers": args.workers}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        with training_log():
            result = measure(args, given)
    except GoogLeNetError as exc:
        C.log(f"detection_tables: error: {exc}")
        return 2
    except EnsembleInterrupted as stop:
        C.log(f"detection_tables: {stop}; re-run the same command to continue")
        return stop.exit_code
    C.publish(result, render(result), args.json, args.docs)
    return 0


def measure(args: argparse.Namespace, given: list[str]) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)  # Selective Search in this process (the cost rows, cache misses)
    out = args.out.resolve()
    os.environ.setdefault("GOOGLENET_CACHE", str(out / "cache"))  # the proposals' cache
    wall: dict[str, float] = {}
    t_all = time.perf_counter()
    with LoadSampler(every=5.0 if args.tiny else 30.0) as load:
        env = C.environment()
        t0 = time.perf_counter()
        say(f"built-in detection set in {out / 'data'}")
        data = make_builtin_detection(
            out / "data",
            train_images=args.train_images,
            val_images=args.val_images,
            image_size=args.data_image_size,
            workers=1,
        )
        train = open_detection_dataset(data, "train")
        val = open_detection_dataset(data, "val")
        classes = list(train.class_names)
        wall["data"] = time.perf_counter() - t0
        pretrained = None
        init_from = args.init_from
        if init_from is None:
            t0 = time.perf_counter()
            init_from, pretrained = pretrain(args, out, len(classes))
            wall["pretrain"] = time.perf_counter() - t0
        detectors = {"fine-tuned": out / "det_finetuned", "scratch": out / "det_scratch"}
        for init, det in detectors.items():
            t0 = time.perf_counter()
            say(f"detector {det} ({init})")
            overrides = {"data": str(data), "out": str(det), "epochs": args.epochs, **runtime(args)}
            if init == "fine-tuned":
                overrides["init_from"] = init_from
            train_detector(
                resolve_config(args.config, overrides),
                members=args.members,
                proposals=args.train_proposals,
                multibox=args.multibox,
                proposal_workers=1,
                messages=say,
            )
            wall[f"train {init}"] = time.perf_counter() - t0
        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        methods = [proposal_method(m, multibox=args.multibox) for m in args.proposals]
        runs, summary, paired, proposals = [], [], [], {}
        singles: dict[tuple[str, str], list[float]] = {}
        for init, det in detectors.items():
            say(f"evaluating {det} ({init})")
            result = evaluate_detector(
                det,
                val,
                rule=args.rule,
                members=list(range(2, args.members + 1)) or None,
                each_member=True,
                proposals=methods,
                workers=0,
                threads=args.threads,
            )
            rows = result_rows(init, result)
            runs, summary, paired = runs + rows[0], summary + rows[1], paired + rows[2]
            singles.update({(init, row.proposals): row.single for row in result.member_summary()})
            for r in result.runs:
                proposals.setdefault(
                    r.proposals,
                    {"method": r.proposals, "per_image": r.proposals_per_image, "coverage": r.coverage},
                )
        inits = list(detectors)
        for m in methods:  # the same seeds fine-tuned and from scratch
            a, b = singles[(inits[0], m.name)], singles[(inits[1], m.name)]
            paired.append(paired_difference(f"{m.name}: {inits[0]} - {inits[1]}", a, b).to_dict())
        wall["evaluation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_method = read_manifest(detectors["fine-tuned"]).proposal_method()
        cost = measure_cost(
            detectors["fine-tuned"],
            val,
            train_method,
            cached_proposals(val, train_method, workers=1),
            args.backends,
            args.members,
            args.cost_images,
            args.threads,
        )
        pcost = proposal_cost(val, methods, args.cost_images)
        wall["cost"] = time.perf_counter() - t0
        wall["total"] = time.perf_counter() - t_all
    env["load_average_after"] = C.load_average()
    settings = {
        "train_images": args.train_images,
        "val_images": args.val_images,
        "data_image_size": args.data_image_size,
        "region_size": read_manifest(detectors["scratch"]).image_size,
        "members": args.members,
        "epochs": args.epochs,
        "config": rel(args.config),
        "pretrain_config": rel(args.pretrain_config),
        "pretrain_epochs": args.pretrain_epochs,
        "pretrain_train_per_class": args.pretrain_train_per_class,
        "train_proposals": train_method.name,
        "proposals": [m.name for m in methods],
        "rule": args.rule,
        "backends": list(args.backends),
        "cost_images": args.cost_images,
        "threads": args.threads,
        "tiny": bool(args.tiny),
    }
    if args.init_from:
        settings["init_from"] = str(args.init_from)
    command = C.shown_command("detection_tables.py", given, hidden=("--json", "--docs", "--out"))
    result: dict[str, Any] = {
        **C.header(NAME, VERSION, command, env),
        "settings": settings,
        "data": {
            "classes": classes,
            "val_objects": sum(len(t.labels) for t in val.targets()),
            "train_objects": sum(len(t.labels) for t in train.targets()),
        },
        "wall_seconds": wall,
        "load_average_during": load.summary(),
        "proposals": [proposals[m.name] for m in methods],
        "runs": runs,
        "summary": summary,
        "paired": paired,
        "proposal_cost": pcost,
        "cost": cost,
    }
    if pretrained is not None:
        result["pretrain"] = pretrained
    return result


def rel(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(C.ROOT)) if p.is_relative_to(C.ROOT) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())
