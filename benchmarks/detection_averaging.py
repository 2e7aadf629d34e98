"""Polyak averaging of the detector's region classifiers at several run lengths (sections 6 and 8).

train-detector keeps its members' Polyak-averaged weights (section 6: "Polyak averaging ... was used
to create the final model used at inference time"). With the classifier's fixed EMA decay of 0.999
per step, a run of a few hundred steps ends with an average that is still mostly its initial
weights. This script measures, on one detection set, the ILSVRC mAP of the raw and of the averaged
weights of one member for each averaging setting:

- ``fixed``: EMA decay 0.999 per step (the classifier's default, what train-detector used before);
- ``warmup``: train-detector's default (:data:`googlenet.detection.training.DETECTOR_RECIPE`): the
  decay warmed up, ``min(0.999, (1 + t) / (10 + t))`` at update ``t``
  (:func:`googlenet.training.optim.ema_decay_at`).

Each setting trains one member with :func:`googlenet.detection.train_detector` (its other defaults
untouched) for the first of ``--epochs``, then continues it with :func:`googlenet.fit` from its
``last.pt`` (an exact resume) to each further count; after each count the raw and the averaged
weights are scored on the val split (:class:`googlenet.detection.Detector` on the cached proposals,
the ILSVRC rule), with paired bootstrap intervals over the
val images for the warmed-up average minus each other (``--bootstrap`` resamples). The raw weights
do not depend on the averaging, so the two settings' raw weights are compared (their tensor hashes)
and scored once.
Re-running with the same ``--out`` reuses what is done.

    python -m googlenet data make-builtin-detection DATA --train-images 100 --val-images 50
    OMP_NUM_THREADS=1 python benchmarks/detection_averaging.py --data DATA --init-from CLASSIFIER \\
        --out WORK --epochs 1 5 --image-size 64 --threads 1 --json docs/results/detection_averaging.json
    python benchmarks/detection_averaging.py --tiny --out /tmp/avg     # 4 + 2 images: the test mode
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common as C
import torch

from googlenet.detection import Detector
from googlenet.detection.bootstrap import paired_map_interval
from googlenet.detection.builtin import make_builtin_detection
from googlenet.detection.datasets import open_detection_dataset
from googlenet.detection.detections import detections_of
from googlenet.detection.detector import read_manifest
from googlenet.detection.metrics import MatchedDetections, match_detections
from googlenet.detection.proposals import cached_proposals
from googlenet.detection.training import region_task, train_detector
from googlenet.runs import RunLayout, read_metrics
from googlenet.training.config import resume_config
from googlenet.training.train import fit
from googlenet.weights.store import load_weights, read_metadata

NAME, VERSION = "detection_averaging", 1
SETTINGS = {"fixed": {"ema_warmup": False}, "warmup": {}}  # {} = train-detector's defaults
RULE = "ilsvrc"
_INTERVAL = {"difference": float, "low": float, "high": float}  # a paired difference and its 95% interval
SCHEMA = {
    "data": str,
    "init_from?": str,
    "image_size": int,
    "train_images": int,
    "val_images": int,
    "val_objects": int,
    "rule": str,
    "rows": [
        {
            "epochs": int,
            "steps": int,
            "raw_identical": bool,  # both settings trained the same raw weights (tensor hashes)
            "raw_mAP": float,
            "raw_fixed_mAP?": float,  # only where the raw weights differ
            "averaged_fixed_mAP": float,
            "averaged_warmup_mAP": float,
            "warmup_minus_averaged_fixed": _INTERVAL,
            "warmup_minus_raw": _INTERVAL,
        }
    ],
    "seconds": {"?": float},
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="detection dataset folder (default: a tiny built-in set)")
    p.add_argument("--init-from", default=None, help="classification weights to fine-tune (default: none)")
    p.add_argument("--out", type=Path, required=True, help="work folder (reused when re-run)")
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 5], help="run lengths, increasing")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="4 train + 2 val images at 64 px: the test mode")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples of the val images per interval")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.epochs != sorted(set(args.epochs)) or args.epochs[0] < 1:
        p.error(f"--epochs must increase from 1 or more. Got {args.epochs}")
    return args


def weights_at(member: Path, folder: Path) -> dict[str, Path]:
    """Copies of the member's averaged and raw weights in ``folder`` (they are overwritten when the
    member trains further)."""
    folder.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(member)
    out = {}
    for kind, source in (("averaged", layout.weights), ("raw", layout.raw_weights)):
        out[kind] = folder / source.name
        if not out[kind].is_file():
            shutil.copyfile(source, out[kind])
    return out


def train(args: argparse.Namespace, data: str, setting: str) -> dict[int, dict[str, Path]]:
    """The member of ``setting`` trained to each of ``--epochs``: its weights files per count."""
    root = args.out / setting
    snapshots = {e: root / f"epochs_{e}" for e in args.epochs}
    if all((snapshots[e] / RunLayout(".").weights.name).is_file() for e in args.epochs):
        return {e: weights_at(root / "detector" / "member_00", snapshots[e]) for e in args.epochs}
    first, *more = args.epochs
    fields: dict[str, Any] = {
        "data": data, "out": str(root / "detector"), "epochs": first, "image_size": args.image_size,
        "num_threads": args.threads, "workers": 0, "keep_checkpoints": "last", **SETTINGS[setting],
    }  # fmt: skip
    if args.init_from:
        fields["init_from"] = args.init_from
    manifest = train_detector(members=1, proposal_workers=0, messages=C.log, **fields)
    member = root / "detector" / manifest.members[0]
    found = {first: weights_at(member, snapshots[first])}
    task = region_task(manifest.proposal_method())
    for epochs in more:
        if not (snapshots[epochs] / RunLayout(".").weights.name).is_file():
            done = len(read_metrics(member))
            if done < epochs:
                fit(resume_config(member, {"epochs": epochs}), task=task)
        found[epochs] = weights_at(member, snapshots[epochs])
    return found


def detect(path: Path, dataset: Any, proposals: Any, manifest: Any, image_size: int) -> list[Any]:
    """The detections of the weights in ``path`` on ``dataset`` (one member, torch fp32)."""
    detector = Detector(
        [load_weights(path)], manifest.class_names, manifest.proposal_method(), image_size=image_size,
        backend="torch", precision="fp32",
    )  # fmt: skip
    return detections_of(detector.detect_dataset(dataset, proposals))


def matched(detections: list[Any], dataset: Any) -> MatchedDetections:
    """The detections matched to the val split's ground truth under the ILSVRC rule."""
    return match_detections(detections, dataset.targets(), dataset.class_names, RULE, dataset.blacklist)


def paired_bootstrap(a: list[Any], b: list[Any], dataset: Any, draws: int) -> dict[str, float]:
    """mAP(a) - mAP(b) on the val images and its 95% paired bootstrap interval over the images
    (:func:`googlenet.detection.bootstrap.paired_map_interval`, ``draws`` resamples, seed 0)."""
    x = paired_map_interval(matched(a, dataset), matched(b, dataset), draws=draws)
    return {"difference": x.point, "low": x.low, "high": x.high}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    env = C.environment()
    t0 = time.perf_counter()
    data = args.data
    if args.tiny or data is None:
        data = str(args.out / "data")
        make_builtin_detection(data, train_images=4, val_images=2, image_size=64, workers=1)
    timings: dict[str, float] = {}
    weights = {}
    for setting in SETTINGS:
        t = time.perf_counter()
        weights[setting] = train(args, data, setting)
        timings[f"train {setting}"] = time.perf_counter() - t
    manifest = read_manifest(args.out / "warmup" / "detector")
    member = args.out / "warmup" / "detector" / manifest.members[0]
    dataset = open_detection_dataset(data, "val", classes=manifest.class_names)
    proposals = cached_proposals(dataset, manifest.proposal_method())
    t = time.perf_counter()
    rows = []
    history = read_metrics(member)
    for epochs in args.epochs:
        hashes = {s: read_metadata(weights[s][epochs]["raw"]).get("sha256") for s in SETTINGS}
        same_raw = len(set(hashes.values())) == 1
        record = next(r for r in history if r["epoch"] == epochs)
        row: dict[str, Any] = {"epochs": epochs, "steps": record["step"], "raw_identical": same_raw}
        found = {
            "raw": detect(weights["warmup"][epochs]["raw"], dataset, proposals, manifest, args.image_size)
        }
        if not same_raw:
            found["raw_fixed"] = detect(
                weights["fixed"][epochs]["raw"], dataset, proposals, manifest, args.image_size
            )
        for setting in SETTINGS:
            found[f"averaged_{setting}"] = detect(
                weights[setting][epochs]["averaged"], dataset, proposals, manifest, args.image_size
            )
        row.update({f"{name}_mAP": matched(dets, dataset).mean_ap() for name, dets in found.items()})
        for other in ("averaged_fixed", "raw"):
            row[f"warmup_minus_{other}"] = paired_bootstrap(
                found["averaged_warmup"], found[other], dataset, args.bootstrap
            )
        rows.append(row)
        C.log(f"{epochs} epoch(s): {row}")
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    env["load_average_after"] = C.load_average()
    result = {
        **C.header(NAME, VERSION, C.shown_command("detection_averaging.py", sys.argv[1:]), env),
        "data": str(Path(data).resolve()),
        **({"init_from": args.init_from} if args.init_from else {}),
        "image_size": args.image_size,
        "train_images": len(open_detection_dataset(data, "train", classes=manifest.class_names)),
        "val_images": len(dataset),
        "val_objects": int(sum(len(t.boxes) for t in dataset.targets())),
        "rule": RULE,
        "rows": rows,
        "seconds": timings,
    }
    C.publish(result, render(result), args.json, None)
    return 0


def render(result: dict[str, Any]) -> str:
    """The result as a markdown table (its schema checked first)."""
    C.check_result(result, NAME, VERSION, SCHEMA)
    columns = [
        C.Column("epochs", C.field("epochs", "{}")),
        C.Column("steps", C.field("steps", "{}")),
        C.Column("raw weights", lambda r: f"{100 * r['raw_mAP']:.1f}%"),
        C.Column("averaged, EMA 0.999 fixed", lambda r: f"{100 * r['averaged_fixed_mAP']:.1f}%"),
        C.Column("averaged, warmed up (default)", lambda r: f"{100 * r['averaged_warmup_mAP']:.1f}%"),
        C.Column("warmed up - fixed (95% interval)", lambda r: _difference(r["warmup_minus_averaged_fixed"])),
        C.Column("warmed up - raw (95% interval)", lambda r: _difference(r["warmup_minus_raw"])),
    ]
    return f"{C.machine_line(result)}\n\n{C.table(result['rows'], columns)}"


def _difference(d: dict[str, float]) -> str:
    return f"{100 * d['difference']:+.1f} ({100 * d['low']:+.1f}, {100 * d['high']:+.1f})"


if __name__ == "__main__":
    raise SystemExit(main())
