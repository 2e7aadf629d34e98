"""Levers for the README's main job (``make run``): what each gives, what it costs.

The main job trains a small ensemble on the built-in set and prints the paper's Table 3 (section 7:
1/10/144 crops x 1..N models). Its targets: every member at most 30% top-1 error (1 crop); 144
crops lowering the mean single-model error and the ensemble beating the mean member, each with a
paired confidence interval that excludes zero; at most 15 minutes on 2 cores of an AVX2-only CPU.

Three subcommands, each reading what the CLI wrote (the script imports the library, never the reverse):

``table RUN_DIR ...``: one row per probe run (a ``googlenet train`` run directory): its recipe,
images seen, the averaged and raw validation top-1 error after every epoch, and the estimated wall
time on both CPU kinds (images x the throughputs below, plus the per-epoch validation).

``ci --data DIR --checkpoint ENSEMBLE``: Table 3 (as ``googlenet evaluate`` prints it) and its two
effects with paired confidence intervals over the same images. For each validation image ``i`` the
per-image 0/1 top-1 errors give

* crops effect: ``d_i = mean_m err(i, m, 1 crop) - mean_m err(i, m, 144 crops)`` (mean single model);
* ensemble effect: ``d_i = mean_m err(i, m, c) - err(i, ensemble, c)`` at each crop scheme ``c``;

and the interval is the paired t interval ``mean(d) +- t * sd(d) / sqrt(n)`` and a seeded paired
bootstrap (resampling images, 10,000 draws, 2.5 / 97.5 percentiles), as ``googlenet evaluate``
prints them (:func:`googlenet.evaluate` computes them).

``views --data DIR --checkpoint ENSEMBLE``: which of the 144 views help or hurt each member. The
views are grouped by scale, square and position (``googlenet.data.multicrop``'s order: index
``72 * mirrored + 18 * scale + 6 * square + position``), and each group's probabilities, averaged
within the group, are scored top-1 against the labels, beside the mean error of a single view.

    python benchmarks/demo_levers.py table runs/probe_*
    python benchmarks/demo_levers.py ci --data runs/demo/data --checkpoint runs/demo/ensemble --limit 300
    python benchmarks/demo_levers.py views --data runs/demo/data --checkpoint runs/demo/ensemble --limit 300

Throughputs (images/s, googlenet_bn, 64 px, batch 32, 2 threads) behind the time estimates:
AVX2-only AMD EPYC (Zen 1, fp32: no bf16 there): 50 training and ~290 evaluation crops, as a user
measured them on a fresh clone there (1,000 images x 144 crops x 3 members in ~25 min); AVX-512 +
AVX512-BF16 AMD EPYC (bf16 autocast training, fp32 evaluation as ``googlenet evaluate`` runs it): ~115
training (the 100-130 images/s each epoch of the timed fresh-clone ``make run`` printed, docs/demo.md
"Time") and ~500 evaluation crops (its 93,000 crops in 185 s); ``googlenet`` (LRN) ~90 and ~450 (its
probe in docs/demo.md).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

# images/s on 2 cores, 64 px: (training step, evaluation forward per crop); sources in the docstring
THROUGHPUT = {
    "avx2": {"googlenet_bn": (50.0, 290.0), "googlenet": (40.0, 250.0)},
    "avx512_bf16": {"googlenet_bn": (115.0, 500.0), "googlenet": (90.0, 450.0)},
}
EVAL_CROPS = 1 + 10 + 144  # one evaluate call runs every scheme of Table 3


def estimate_seconds(model: str, train_images: int, val_forwards: int, cpu: str) -> float:
    train_rate, eval_rate = THROUGHPUT[cpu].get(model, THROUGHPUT[cpu]["googlenet_bn"])
    return train_images / train_rate + val_forwards / eval_rate


def eval_seconds(model: str, images: int, members: int, cpu: str) -> float:
    return images * EVAL_CROPS * members / THROUGHPUT[cpu].get(model, THROUGHPUT[cpu]["googlenet_bn"])[1]


def _describe(config: dict) -> str:
    aug = config.get("augment") or {}
    parts = [
        config.get("model", "googlenet"),
        f"{config.get('optimizer', 'sgd')} lr {config.get('lr')}",
        f"bs {config.get('batch_size')}",
        f"wd {config.get('weight_decay')}",
        f"warm {config.get('warmup_epochs')}",
        f"x{config.get('lr_gamma')}/{config.get('lr_step_epochs')} ep",
        f"ema {config.get('ema_decay')}",
    ]
    if config.get("label_smoothing"):
        parts.append(f"ls {config['label_smoothing']}")
    if aug:
        parts.append("aug " + ",".join(f"{k}={v}" for k, v in sorted(aug.items())))
    if config.get("model_options"):
        parts.append("model " + json.dumps(config["model_options"], separators=(",", ":")))
    if config.get("builtin"):
        parts.append("builtin " + ",".join(f"{k}={v}" for k, v in sorted(config["builtin"].items())))
    return "; ".join(parts)


def table(run_dirs: list[str]) -> None:
    from googlenet.runs import read_metrics, read_run_config

    for run_dir in run_dirs:
        config = read_run_config(run_dir)
        records = read_metrics(run_dir)
        if not records:
            print(f"{run_dir}: no finished epoch")
            continue
        train_images = sum(int(r.get("train_images", 0)) for r in records) or _train_images(config, records)
        val_images = sum(int(r.get("val_images", 0)) for r in records)
        curve = " ".join(f"{100 * r['avg_val_top1_err']:.1f}/{100 * r['val_top1_err']:.1f}" for r in records)
        model = config.get("model", "googlenet")
        val_forwards = 2 * val_images  # raw and averaged weights every epoch
        avx2 = estimate_seconds(model, train_images, val_forwards, "avx2")
        avx512 = estimate_seconds(model, train_images, val_forwards, "avx512_bf16")
        print(f"{run_dir}: {_describe(config)}")
        print(
            f"  epochs {len(records)}, images seen {train_images}, top-1 err avg/raw per epoch: {curve}; "
            f"train loss {records[-1]['train_loss']:.2f}; est. {avx2 / 60:.1f} min AVX2, "
            f"{avx512 / 60:.1f} min AVX-512+bf16 per member"
        )


def _train_images(config: dict, records: list[dict]) -> int:
    return int(records[-1]["step"]) * int(config.get("batch_size", 32))


def confidence_intervals(args: argparse.Namespace) -> None:
    """Table 3 with every model count, its spread over k-subsets and the two paired effects: what
    ``googlenet evaluate --model-counts every`` prints, from :func:`googlenet.evaluate`."""
    import googlenet
    from googlenet.evaluation.tables import format_effects, format_spread, format_table3

    result = googlenet.evaluate(
        args.data, args.checkpoint, crops=args.crops, model_counts="every", limit=args.limit,
        batch_size=144, workers=args.workers,
    )  # fmt: skip
    print(format_table3(result.rows, title="Table 3"))
    if result.spread:
        print(format_spread(result.spread, title="Mean ± sd over every k-subset of the models"))
    print(format_effects(result.effects, title=f"paired over {result.num_images} images of {result.data}"))


SQUARES = ("left/top", "centre", "right/bottom")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre", "whole square")


def view_groups() -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks over the 144 views: by scale, by square, by position (mirrors included); scales are
    named by the paper's shorter sides at 224 px (``multicrop.PAPER_SCALES``)."""
    from googlenet.data.multicrop import PAPER_SCALES

    base = np.arange(144) % 72
    scale, square, position = base // 18, (base // 6) % 3, base % 6
    return {
        "scale": {f"{side}": scale == i for i, side in enumerate(PAPER_SCALES)},
        "square": {name: square == i for i, name in enumerate(SQUARES)},
        "position": {name: position == i for i, name in enumerate(POSITIONS)},
    }


def view_group_errors(probs: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Top-1 error (fraction) of each group's mean probabilities; ``probs`` is images x 144 x classes.

    Also ``all`` (the 144-crop error) and ``single view`` (the mean error of one view alone)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.ndim != 3 or probs.shape[1] != 144 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected images x 144 x classes probabilities for {labels.shape[0]} labels")

    def error(mask: np.ndarray) -> float:
        return float((probs[:, mask].mean(axis=1).argmax(-1) != labels).mean())

    out = {
        kind: {name: error(mask) for name, mask in groups.items()} for kind, groups in view_groups().items()
    }
    out["overall"] = {
        "all 144": error(np.ones(144, dtype=bool)),
        "single view": float((probs.argmax(-1) != labels[:, None]).mean()),
    }
    return out


def view_errors(args: argparse.Namespace) -> None:
    from googlenet.data.builtin import resolve_data
    from googlenet.data.datasets import build_dataset, open_image
    from googlenet.data.multicrop import multicrop, normalize_crops
    from googlenet.evaluation.loading import load_models
    from googlenet.evaluation.protocol import select_images
    from googlenet.runs import resolve_checkpoints

    root = resolve_data(args.data)
    dataset = build_dataset(root, "val")
    loaded = load_models(resolve_checkpoints(args.checkpoint))
    picked = [dataset.samples[i] for i in select_images(len(dataset.samples), args.limit)]
    labels = np.array([label for _, label in picked])
    crops = [multicrop(open_image(path), "144", loaded.data_config, dtype=torch.uint8) for path, _ in picked]
    # Per view, by hand: protocol.crop_probabilities averages over the views, which is what this undoes.
    for model in loaded.models:
        with torch.no_grad():
            probs = np.stack(
                [
                    torch.softmax(model.forward(normalize_crops(c, model.mean, model.std)), -1).numpy()
                    for c in crops
                ]
            )
        errors = view_group_errors(probs, labels)
        print(f"{model.name} ({len(labels)} images of {root}): top-1 error of each group of the 144 views")
        for kind, groups in errors.items():
            print(f"  {kind:9s} " + "  ".join(f"{name} {100 * e:.1f}%" for name, e in groups.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_table = sub.add_parser("table", help="one row per probe run directory")
    p_table.add_argument("runs", nargs="+")
    p_ci = sub.add_parser("ci", help="paired confidence intervals of Table 3's two effects")
    p_ci.add_argument("--data", required=True)
    p_ci.add_argument("--checkpoint", nargs="+", required=True)
    p_ci.add_argument("--limit", type=int, default=None)
    p_ci.add_argument("--crops", type=int, nargs="+", default=[1, 144])
    p_ci.add_argument("--workers", type=int, default=1)
    p_views = sub.add_parser("views", help="top-1 error of each group of the 144 views, per member")
    p_views.add_argument("--data", required=True)
    p_views.add_argument("--checkpoint", nargs="+", required=True)
    p_views.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "table":
        table(args.runs)
    elif args.command == "views":
        view_errors(args)
    else:
        confidence_intervals(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
