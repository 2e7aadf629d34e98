"""MultiBox's learning curve: coverage of the val boxes against the training images seen.

Reads the ``metrics.jsonl`` of ``googlenet train-multibox`` runs (one record per epoch: the epoch's
``train_images`` and the validation's ``val_`` / ``avg_val_coverage_at_<n>`` and ``prior_coverage``,
:mod:`googlenet.detection.multibox.task`) and draws, per run, the coverage (IoU >= 0.5) by the best
``--at`` proposals of the raw and the Polyak-averaged weights against the cumulative training
images, with the run's priors alone as a dashed line (what a network that learns nothing beyond
its priors gives). Prints the same numbers as a markdown table. Measures nothing itself: the runs
and their commands are in docs/detection.md ("MultiBox").

    python benchmarks/multibox_curve.py RUN_DIR[=LABEL] ... --at 100 --out docs/img/multibox_curve.png
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from googlenet.evaluation.plots import new_figure, save_figure
from googlenet.runs import read_metrics


def curve(records: Sequence[Mapping[str, Any]], at: int) -> list[dict[str, float]]:
    """Per epoch: training images seen so far and the raw / averaged / priors' coverage."""
    seen = 0
    points = []
    for record in records:
        seen += int(record["train_images"])
        points.append(
            {
                "images": seen,
                "raw": record.get(f"val_coverage_at_{at}", float("nan")),
                "averaged": record.get(f"avg_val_coverage_at_{at}", float("nan")),
                "priors": record.get("avg_val_prior_coverage", float("nan")),
                "images_per_s": record.get("images_per_s", float("nan")),
            }
        )
    return points


def plot(runs: Mapping[str, list[dict[str, float]]], at: int, path: Path) -> Path:
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for n, (label, points) in enumerate(runs.items()):
        colour = f"C{n}"
        x = [p["images"] for p in points]
        ax.plot(
            x, [100 * p["averaged"] for p in points], "-o", color=colour, ms=3, label=f"{label} (averaged)"
        )
        ax.plot(x, [100 * p["raw"] for p in points], ":", color=colour, label=f"{label} (raw)")
        ax.axhline(
            100 * points[-1]["priors"], color=colour, ls="--", lw=0.8, label=f"{label}: its priors alone"
        )
    ax.set_xlabel("training images seen")
    ax.set_ylabel(f"val boxes covered by the best {at} (IoU >= 0.5), %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def markdown(runs: Mapping[str, list[dict[str, float]]], at: int) -> str:
    lines = [
        f"| run | images seen | coverage at {at}, raw | averaged | priors alone | images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, points in runs.items():
        for p in points:
            lines.append(
                f"| {label} | {p['images']} | {100 * p['raw']:.1f}% | {100 * p['averaged']:.1f}% | "
                f"{100 * p['priors']:.1f}% | {p['images_per_s']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="train-multibox run directories, each optionally =LABEL")
    p.add_argument("--at", type=int, default=100, help="proposals per image (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.runs:
        directory, _, label = spec.partition("=")
        runs[label or Path(directory).name] = curve(read_metrics(directory), args.at)
    plot(runs, args.at, args.out)
    print(markdown(runs, args.at))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
