"""Levers for the README's main job (``make run``, issue 13 section 4): what each gives, what it costs.

The main job trains a small ensemble on the built-in set and prints the paper's Table 3 (section 7:
1/10/144 crops x 1..N models). Its targets: every member at most 30% top-1 error (1 crop); 144
crops lowering the mean single-model error and the ensemble beating the mean member, each with a
paired confidence interval that excludes zero; at most 15 minutes on 2 cores of an AVX2-only CPU.

Two subcommands, both reading what the CLI wrote (the script imports the library, never the reverse):

``table RUN_DIR ...``: one row per probe run (a ``googlenet train`` run directory): its recipe,
images seen, the averaged and raw validation top-1 error after every epoch, and the estimated wall
time on both CPU kinds (images x the throughputs below, plus the per-epoch validation).

``ci --data DIR --checkpoint ENSEMBLE``: Table 3 (as ``googlenet evaluate`` prints it) and its two
effects with paired confidence intervals over the same images. For each validation image ``i`` the
per-image 0/1 top-1 errors give

* crops effect: ``d_i = mean_m err(i, m, 1 crop) - mean_m err(i, m, 144 crops)`` (mean single model);
* ensemble effect: ``d_i = mean_m err(i, m, c) - err(i, ensemble, c)`` at each crop scheme ``c``;

and the interval is the paired t interval ``mean(d) +- t * sd(d) / sqrt(n)`` and a seeded paired
bootstrap (resampling images, 10,000 draws, 2.5 / 97.5 percentiles). ``googlenet evaluate`` does
not print these yet; this is what it would print.

    python benchmarks/demo_levers.py table runs/probe_*
    python benchmarks/demo_levers.py ci --data runs/demo/data --checkpoint runs/demo/ensemble --limit 300

Throughputs (images/s, googlenet_bn, 64 px, batch 32, 2 threads) behind the time estimates:
AVX2-only AMD EPYC (Zen 1, fp32: no bf16 there): 50 training (issue 13) and ~290 evaluation crops
(issue 13: 1,000 images x 144 crops x 3 members in ~25 min); AVX-512 + AVX512-BF16 AMD EPYC (bf16
autocast): ~240 training (docs/demo.md: 220-260) and ~1,230 evaluation crops (docs/demo.md: 300 images
x 155 crops x 3 members in 113 s).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

# images/s on 2 cores, 64 px: (training step, evaluation forward per crop); sources in the docstring
THROUGHPUT = {
    "avx2": {"googlenet_bn": (50.0, 290.0), "googlenet": (40.0, 250.0)},
    "avx512_bf16": {"googlenet_bn": (240.0, 1230.0), "googlenet": (200.0, 1100.0)},
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
    from googlenet.data.builtin import resolve_data
    from googlenet.data.datasets import build_dataset
    from googlenet.evaluation.protocol import (
        crop_probabilities,
        load_models,
        paired_effects,
        select_images,
        table3,
        table3_spread,
    )
    from googlenet.evaluation.tables import format_effects, format_spread, format_table3
    from googlenet.runs import resolve_checkpoints

    root = resolve_data(args.data)
    dataset = build_dataset(root, "val")
    loaded = load_models(resolve_checkpoints(args.checkpoint))
    picked = [dataset.samples[i] for i in select_images(len(dataset.samples), args.limit)]
    labels = torch.tensor([label for _, label in picked])
    schemes = [str(c) for c in args.crops]
    result = crop_probabilities(
        [p for p, _ in picked],
        loaded.models,
        schemes,
        loaded.data_config,
        batch_size=144,
        workers=args.workers,
    )
    # The Table 3 that `googlenet evaluate --model-counts every` prints, from the same probabilities.
    print(format_table3(table3(result, labels, model_counts="every"), title="Table 3"))
    if len(loaded.models) > 1:
        print(
            format_spread(table3_spread(result, labels), title="Mean ± sd over every k-subset of the models")
        )

    # googlenet evaluate prints the same table; the library computes it (protocol.paired_effects).
    print(format_effects(paired_effects(result, labels), title=f"paired over {len(labels)} images of {root}"))


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
    args = parser.parse_args(argv)
    if args.command == "table":
        table(args.runs)
    else:
        confidence_intervals(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
