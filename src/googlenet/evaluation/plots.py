"""The report's pictures (sections 6 and 7): training curves, confusion matrix, predictions, Table 3.

Drawn on :class:`matplotlib.figure.Figure` objects with an explicit Agg canvas, so nothing here
touches pyplot's global state or the process-wide backend; every PNG is written atomically.
:mod:`googlenet.evaluation.report` decides what to draw and assembles the pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from .metrics import PAPER_TOP_K
from .tables import table3_header, table3_markdown_cells

__all__ = ["plot_confusion", "plot_curves", "plot_predictions", "plot_table3"]

# Above this many classes the confusion matrix and the tick labels become unreadable as text;
# the matrix is then drawn without per-class labels.
MAX_LABELLED_CLASSES = 30
PREDICTION_GRID = (4, 4)  # rows x columns of validation images in predictions.png


def new_figure(width: float, height: float) -> Any:
    # An explicit Agg canvas per figure: no pyplot, no process-wide backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(records):
        value = r.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(r.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


# The series of every panel: (name, line style, single-run colour). The style tells the series apart
# when several runs are overlaid (the colour then tells the runs apart).
CURVE_SERIES = {
    "train": ("-", "C0"),
    "val, raw weights": ("--", "C1"),
    "val, averaged weights": (":", "C2"),
}
# (panel title, y label, [(metrics key, series)], y is an error shown in percent)
CURVE_PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...], bool], ...] = (
    (
        "Loss",
        "cross-entropy",
        (
            ("train_loss", "train"),
            ("val_loss", "val, raw weights"),
            ("avg_val_loss", "val, averaged weights"),
        ),
        False,
    ),
    (
        "Top-1 error",
        "error (%)",
        (
            ("train_top1_err", "train"),
            ("val_top1_err", "val, raw weights"),
            ("avg_val_top1_err", "val, averaged weights"),
        ),
        True,
    ),
    (
        "Top-{k} error",
        "error (%)",
        (
            # The trainer's top-k keys (k = its top_k), under either name.
            ("val_top5_err", "val, raw weights"),
            ("val_topk_err", "val, raw weights"),
            ("avg_val_top5_err", "val, averaged weights"),
            ("avg_val_topk_err", "val, averaged weights"),
        ),
        True,
    ),
    ("Learning rate", "lr", (("lr", "train"),), False),
)


def plot_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path) -> Path:
    """Training curves, one panel per quantity (loss, top-1 error, top-5 error, learning rate).

    ``runs`` maps a legend label to that run's metrics records (see :func:`read_metrics`). Solid:
    training; dashed: validation with the raw weights; dotted: validation with the Polyak-averaged
    weights (section 6). One run: one colour per series; several runs: one colour per run. The
    legend sits under the panels, where it hides no curve.
    """
    from matplotlib.lines import Line2D

    if not runs:
        raise ValueError("plot_curves needs at least one run")
    several = len(runs) > 1
    run_colours = {label: f"C{i % 10}" for i, label in enumerate(runs)}
    # top_k is metrics.topk_for(classes) in the trainer's records: a 4-class set has a top-3 error
    ks = {int(r["top_k"]) for records in runs.values() for r in records if isinstance(r.get("top_k"), int)}
    k = ks.pop() if len(ks) == 1 else PAPER_TOP_K
    fig = new_figure(11.0, 8.0 + 0.25 * len(runs) * several)
    axes = fig.subplots(2, 2).ravel()
    used_series: set[str] = set()
    for ax, (title, ylabel, keys, is_error) in zip(axes, CURVE_PANELS, strict=True):
        drawn = 0
        for label, records in runs.items():
            for key, series in keys:
                xs, ys = _series(records, key)
                if not xs:
                    continue
                if is_error:
                    ys = [100.0 * y for y in ys]
                style, colour = CURVE_SERIES[series]
                ax.plot(
                    xs,
                    ys,
                    style,
                    color=run_colours[label] if several else colour,
                    marker="o" if len(xs) < 15 else None,
                    ms=3,
                )
                used_series.add(series)
                drawn += 1
        ax.set_title(title.format(k=k) + (" (val)" if "{k}" in title else ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if drawn == 0:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif is_error:
            # An error is never negative: no axis down to -0.05% around a flat 0% line, but a small
            # margin under 0 so that such a line stays visible above the frame.
            low, high = ax.get_ylim()
            high = high if high > 0 else 1.0
            ax.set_ylim(max(low, -0.03 * high), high)
        if title == "Learning rate" and drawn:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    handles = [
        Line2D(
            [], [], linestyle=CURVE_SERIES[s][0], color="black" if several else CURVE_SERIES[s][1], label=s
        )
        for s in CURVE_SERIES
        if s in used_series
    ]
    if several:
        handles += [
            Line2D([], [], color=c, marker="o", ms=4, label=label) for label, c in run_colours.items()
        ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)
    fig.suptitle("Training curves" + (f" ({len(runs)} runs)" if several else ""))
    return save_figure(fig, Path(path))


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str] | None, path: str | Path, title: str
) -> Path:
    """The confusion matrix, rows = true class, columns = predicted, normalised per true class."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    labelled = n <= MAX_LABELLED_CLASSES
    side = 4.5 + (0.35 * n if labelled else 4.0)
    fig = new_figure(side + 1.5, side)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if labelled:
        names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
        names = [s if len(s) <= 18 else s[:17] + "…" for s in names]
        ax.set_xticks(range(n), names, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(matrix[i, j])),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    return save_figure(fig, Path(path))


def plot_predictions(
    images: np.ndarray,
    labels: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    columns: int = PREDICTION_GRID[1],
    k: int = PAPER_TOP_K,
) -> Path:
    """A grid of images (``N x H x W x 3`` floats in [0, 1]) with their top-k classes.

    The frame and title are green when the top-1 class is right, orange when the true class is
    only within the top-k (right by the ILSVRC top-5 criterion), red otherwise; the true class is
    marked with a check mark in the list.
    """
    n = len(images)
    if n == 0:
        raise ValueError("plot_predictions needs at least one image")
    k = min(k, probs.shape[1])
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig = new_figure(3.2 * columns, 4.1 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.axis("off")
    for ax, image, label, p in zip(axes, images, labels, probs, strict=False):
        order = np.argsort(-p, kind="stable")[:k]
        if order[0] == label:
            colour, verdict = "tab:green", "right"
        elif label in order:
            colour, verdict = "tab:orange", f"top-{k} only"
        else:
            colour, verdict = "tab:red", "wrong"
        ax.imshow(np.clip(image, 0.0, 1.0))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(4)
        ax.set_title(f"true: {_short(class_names[label])} ({verdict})", fontsize=9, color=colour)
        lines = [f"{'✓' if c == label else ' '} {100 * p[c]:5.1f}% {_short(class_names[c])}" for c in order]
        ax.set_xlabel("\n".join(lines), fontsize=8, family="monospace", loc="left")
    fig.suptitle(f"Validation images and top-{k} predictions (centre crop)")
    return save_figure(fig, Path(path))


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_table3(rows: Sequence[Any], path: str | Path, title: str = "Table 3") -> Path:
    """Table 3 drawn as an image (the cells of :func:`googlenet.evaluation.tables.table3_markdown`)."""
    import textwrap

    cells = table3_markdown_cells(rows)
    # A long title (evaluate's names the data folder and every model) wraps within the figure's width.
    title_lines = textwrap.wrap(title, 110) or [""]
    fig = new_figure(11.5, 0.5 + 0.2 * len(title_lines) + 0.36 * (len(cells) + 1))
    ax = fig.subplots()
    ax.axis("off")
    # bbox fills the axes, so the table sits right under the title whatever the row count.
    table = ax.table(cellText=cells, colLabels=table3_header(rows), cellLoc="center", bbox=(0, 0, 1, 1))
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8eef7")
    ax.set_title("\n".join(title_lines))
    return save_figure(fig, Path(path))
