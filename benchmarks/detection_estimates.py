"""The cost said before section 8's long jobs, against the time they then took: proposals, train-detector,
evaluate-detection on a built-in detection set.

``googlenet proposals``, ``train-detector`` and ``evaluate-detection`` print, before the work, what
they will do and about how long it will take here (:mod:`googlenet.detection.estimates`: the work
counted, the real step timed on a few warm-up items). This script calls the same library functions
a user calls: for each job the estimate (``estimate_proposals``, ``estimate_train_detector``,
``estimate_detector_evaluation``), then the job itself (``fill_proposals``, ``train_detector``,
``evaluate_detector``), timed from its start to its end, each in this process on the same data. The
proposals cache is emptied before the proposals and before the training, so that both count the
Selective Search they then do; the evaluation finds the val proposals the training cached, and so
does its estimate.

    OMP_NUM_THREADS=1 python benchmarks/detection_estimates.py --out WORK --train-images 40 \\
        --val-images 20 --image-size 128 --threads 1 --json docs/results/detection_estimates.json
    python benchmarks/detection_estimates.py --tiny --out /tmp/est     # 4 + 4 images: the test mode
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common as C
import torch

NAME, VERSION = "detection_estimates", 1
METHOD = "selective-search-2x"
ROW = {
    "job": str,
    "work": str,
    "estimate_s": float,
    "measured_s": float,
    "ratio": float,
    "estimate_took_s": float,
}
SCHEMA: dict[str, Any] = {
    "data": {"train_images": int, "val_images": int, "image_size": int, "classes": int},
    "settings": {"members": int, "epochs": int, "region_size": int, "batch_size": int, "workers": int},
    "rows": [ROW],
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="work folder (emptied first)")
    p.add_argument("--train-images", type=int, default=40)
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--image-size", type=int, default=128, help="shorter side of the built-in images")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--region-size", type=int, default=64, help="warped region side (train-detector --image-size)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="proposal processes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="4 + 4 images at 64 px, batches of 8: the test mode")
    C.output_flags(p)
    args = p.parse_args(argv)
    if args.tiny:
        args.train_images, args.val_images, args.image_size, args.batch_size = 4, 4, 64, 8
    return args


def timed(job: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = job()
    return out, time.perf_counter() - t0


def row(job: str, estimate: Any, took: float, measured: float, data: Path) -> dict[str, Any]:
    return {
        "job": job,
        "work": estimate.work.replace(str(data), "DATA"),
        "estimate_s": estimate.seconds,
        "measured_s": measured,
        "ratio": measured / estimate.seconds if estimate.seconds > 0 else float("nan"),
        "estimate_took_s": took,
    }


def measure(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    from googlenet.detection.builtin import make_builtin_detection
    from googlenet.detection.datasets import open_detection_dataset
    from googlenet.detection.estimates import estimate_proposals
    from googlenet.detection.evaluation import estimate_detector_evaluation, evaluate_detector
    from googlenet.detection.proposals import fill_proposals, proposal_method
    from googlenet.detection.training import estimate_train_detector, train_detector

    torch.set_num_threads(args.threads)
    shutil.rmtree(args.out, ignore_errors=True)
    cache = args.out / "cache"
    os.environ["GOOGLENET_CACHE"] = str(cache)  # this run's proposals only
    data = make_builtin_detection(
        args.out / "data", train_images=args.train_images, val_images=args.val_images,
        image_size=args.image_size, workers=1,
    )  # fmt: skip
    method = proposal_method(METHOD)
    rows = []

    val = open_detection_dataset(data, "val")
    estimate, took = timed(lambda: estimate_proposals(val, method, workers=args.workers))
    C.log(estimate.format())
    _, seconds = timed(lambda: fill_proposals(val, method, workers=args.workers))
    rows.append(row("proposals (val)", estimate, took, seconds, data))

    shutil.rmtree(cache)
    recipe = {
        "data": str(data), "out": str(args.out / "detector"), "epochs": args.epochs,
        "image_size": args.region_size, "batch_size": args.batch_size, "workers": 0,
        "num_threads": args.threads, "device": "cpu",
    }  # fmt: skip
    job = {"members": args.members, "proposals": METHOD, "proposal_workers": args.workers}
    estimate, took = timed(lambda: estimate_train_detector(None, **job, **recipe))
    C.log(estimate.format())
    _, seconds = timed(lambda: train_detector(None, **job, **recipe))
    rows.append(row("train-detector", estimate, took, seconds, data))

    evaluation = {"members": [args.members], "workers": args.workers, "threads": args.threads}
    estimate, took = timed(lambda: estimate_detector_evaluation(recipe["out"], data, **evaluation))
    C.log(estimate.format())
    _, seconds = timed(lambda: evaluate_detector(recipe["out"], data, **evaluation))
    rows.append(row("evaluate-detection", estimate, took, seconds, data))

    command = C.shown_command("detection_estimates.py", sys.argv[1:] if argv is None else argv)
    result = C.header(NAME, VERSION, command, C.environment())
    return {
        **result,
        "data": {
            "train_images": args.train_images, "val_images": args.val_images,
            "image_size": args.image_size, "classes": len(val.class_names),
        },
        "settings": {
            "members": args.members, "epochs": args.epochs, "region_size": args.region_size,
            "batch_size": args.batch_size, "workers": args.workers,
        },
        "rows": rows,
    }  # fmt: skip


def render(result: dict[str, Any]) -> str:
    C.check_result(result, NAME, VERSION, SCHEMA)
    d, s = result["data"], result["settings"]
    columns = [
        C.text("job"),
        C.Column("estimate s", C.field("estimate_s", "{:.1f}")),
        C.Column("measured s", C.field("measured_s", "{:.1f}")),
        C.Column("measured / estimate", C.field("ratio", "{:.2f}")),
        C.Column("the estimate took s", C.field("estimate_took_s", "{:.1f}")),
        C.text("work"),
    ]
    return "\n\n".join(
        [
            C.machine_line(result),
            f"Built-in detection set: {d['train_images']} train / {d['val_images']} val images at "
            f"{d['image_size']} px, {d['classes']} classes; `{METHOD}` proposals with {s['workers']} "
            f"process(es); {s['members']} member(s), {s['epochs']} epoch(s), {s['region_size']} px regions, "
            f"batches of {s['batch_size']}.",
            C.table(result["rows"], columns),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = measure(args, argv)
    C.publish(result, render(result), args.json, None if args.no_docs else args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
