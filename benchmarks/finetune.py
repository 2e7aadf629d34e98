"""Fine-tuning vs training from scratch on the built-in set (docs/training.md, its fine-tuning section).

A model is trained on the first ``--pretrain-classes`` built-in classes; then the next
``--target-classes`` classes (which the pre-trained model never saw) are learned twice with the same
budget: once with ``--init-from`` the pre-trained weights (optionally ``--freeze``), once from
random initial weights. Everything runs through the ``googlenet`` CLI, as a user would; the script
prints one line per run and a JSON summary (``--json OUT``).

    python benchmarks/finetune.py --out runs/finetune --json docs/results/finetune_builtin.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import common as C


def googlenet(*args: object) -> None:
    cmd = [sys.executable, "-m", "googlenet", *map(str, args)]
    subprocess.run(cmd, check=True)


def last_record(run: Path) -> dict:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def class_view(source: Path, out: Path, classes: list[str]) -> Path:
    """An ImageFolder of ``classes`` only (symbolic links into ``source``)."""
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
        for name in classes:
            link = out / split / name
            if not link.exists():
                os.symlink((source / split / name).resolve(), link)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/finetune"))
    p.add_argument("--pretrain-classes", type=int, default=10)
    p.add_argument("--target-classes", type=int, default=5)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2, help="the fine-tuning budget (both runs)")
    p.add_argument("--train-per-class", type=int, default=300)
    p.add_argument("--freeze", default=None, help="e.g. inception3b")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    total = args.pretrain_classes + args.target_classes
    data = args.out / "builtin"
    googlenet("data", "make-builtin", data, "--classes", total, "--train-per-class", args.train_per_class,
              "--val-per-class", 60)  # fmt: skip
    names = (data / "classes.txt").read_text().split()
    pre = class_view(data, args.out / "pretrain_data", names[: args.pretrain_classes])
    target = class_view(data, args.out / "target_data", names[args.pretrain_classes :])
    common = ["--config", args.config, "--workers", "0"]
    results = {}
    t0 = time.perf_counter()
    pre_run = args.out / "pretrain"
    if not (pre_run / "model.safetensors").is_file():
        googlenet("train", "--data", pre, "--out", pre_run, "--epochs", args.pretrain_epochs, *common)
    results["pretrain"] = {**last_record(pre_run), "seconds": time.perf_counter() - t0}
    runs = {"fine-tuned": ["--init-from", pre_run]
            + (["--freeze", args.freeze] if args.freeze else []), "scratch": []}  # fmt: skip
    for label, extra in runs.items():
        run = args.out / label
        t0 = time.perf_counter()
        if not (run / "model.safetensors").is_file():
            googlenet("train", "--data", target, "--out", run, "--epochs", args.epochs, *common, *extra)
        results[label] = {**last_record(run), "seconds": time.perf_counter() - t0}
    for label, r in results.items():
        print(
            f"{label:>10}: val top-1 error {100 * r['avg_val_top1_err']:.1f}% (averaged weights), "
            f"{100 * r['val_top1_err']:.1f}% (raw) after {r['epoch']} epochs, {r['seconds']:.0f} s"
        )
    summary = {
        "pretrain_classes": names[: args.pretrain_classes],
        "target_classes": names[args.pretrain_classes :],
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
        "freeze": args.freeze,
        "config": args.config,
        "results": results,
    }
    if args.json:
        C.write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
