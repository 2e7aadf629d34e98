"""Pictures of training runs and of the paper's Table 3 (sections 6 and 7).

:func:`write_report` turns one or more run directories (written by ``googlenet train``) and,
optionally, an evaluation JSON (written by ``googlenet evaluate --json``) into a folder of PNGs
plus ``index.md`` and ``index.html``:

- ``curves.png``: loss, top-1 / top-5 error, learning rate, and the validation error of the raw
  weights next to that of the Polyak-averaged weights (section 6: "Polyak averaging ... was used
  to create the final model used at inference time"); several runs are overlaid.
- ``confusion.png``: the confusion matrix of the first run's averaged model on the validation
  split (single centre crop, section 7's base row), or of the ensemble when several runs are given
  (softmax probabilities averaged over models, as section 7 does).
- ``predictions.png``: validation images with their top-5 classes; right answers and mistakes marked.
- ``table3.png`` and ``table3.md``: the Table 3 rows (models x crops -> cost, top-5 error, delta).

Plots are drawn on :class:`matplotlib.figure.Figure` objects with an explicit Agg canvas, so
nothing here touches pyplot's global state or the process-wide backend. Every file is written
atomically.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..errors import GoogLeNetError
from ..runs import RunLayout, expand_run_dirs, read_metrics, read_run_config, run_label

# Above this many classes the confusion matrix and the tick labels become unreadable as text;
# the matrix is then drawn without per-class labels.
MAX_LABELLED_CLASSES = 30
PREDICTION_GRID = (4, 4)  # rows x columns of validation images in predictions.png
TOP_K = 5  # ILSVRC's top-5 criterion (section 7)


# --------------------------------------------------------------------------------------------
# Reading runs


# --------------------------------------------------------------------------------------------
# Pure computations


def confusion_matrix(
    labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as class ``j`` (int64)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and preds differ in length. Got {labels.size} and {preds.size}")
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive. Got {num_classes}")
    for name, values in (("labels", labels), ("preds", preds)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}). Got {values.min()}..{values.max()}")
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def topk_errors(probs: np.ndarray, labels: np.ndarray, k: int = TOP_K) -> tuple[float, float]:
    """(top-1 error, top-k error) as fractions, section 7's two measures."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top1 = float(np.mean(order[:, 0] != labels))
    topk = float(np.mean(~np.any(order == labels[:, None], axis=1)))
    return top1, topk


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100.0 * float(value):.2f}%"


def _signed_percent(value: Any) -> str:
    return "" if value is None else f"{100.0 * float(value):+.2f}%"


def _optional_float(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(value)


def table3_rows(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Table 3 rows of an evaluation dict.

    Accepted schema (errors are fractions in [0, 1], as ``googlenet evaluate --json`` writes)::

        {"rows": [{"models": 1, "crops": 1, "cost": 1, "top5_err": 0.1007, "top1_err": 0.30,
                   "delta_top5": null, "delta_top1": null}, ...], ...metadata...}

    The first row is the base (Table 3's "base": 1 model, 1 crop). ``cost`` defaults to models x
    crops (the paper's definition); ``delta_top5`` / ``delta_top1`` (the "compared to base"
    columns) default to the difference from the base row.
    """
    rows = evaluation.get("rows") if isinstance(evaluation, Mapping) else None
    if not isinstance(rows, list) or not rows:
        raise GoogLeNetError("evaluation JSON has no 'rows' list of Table 3 rows")
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or "top5_err" not in row or "models" not in row or "crops" not in row:
            raise GoogLeNetError(f"evaluation row {i} lacks one of models, crops, top5_err: {row!r}")
        models, crops = int(row["models"]), int(row["crops"])
        entry: dict[str, Any] = {
            "models": models,
            "crops": crops,
            "cost": int(row.get("cost", models * crops)),
            "top5_err": float(row["top5_err"]),
            "top1_err": _optional_float(row, "top1_err"),
        }
        for k in ("top5", "top1"):
            delta = _optional_float(row, f"delta_{k}")
            base = out[0][f"{k}_err"] if out else None
            if i > 0 and delta is None and base is not None and entry[f"{k}_err"] is not None:
                delta = entry[f"{k}_err"] - base
            entry[f"delta_{k}"] = None if i == 0 else delta
        out.append(entry)
    return out


TABLE3_HEADER = (
    "Number of models",
    "Number of crops",
    "Cost",
    "Top-5 error",
    "Top-5 vs base",
    "Top-1 error",
    "Top-1 vs base",
)


def _table3_cells(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            str(r["models"]),
            str(r["crops"]),
            str(r["cost"]),
            _percent(r["top5_err"]),
            "base" if i == 0 else _signed_percent(r.get("delta_top5")),
            _percent(r.get("top1_err")),
            "base" if i == 0 and r.get("top1_err") is not None else _signed_percent(r.get("delta_top1")),
        ]
        for i, r in enumerate(rows)
    ]


def table3_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Table 3 as a GitHub markdown table (errors in percent, two decimals as the paper prints)."""
    lines = ["| " + " | ".join(TABLE3_HEADER) + " |", "|" + "---:|" * len(TABLE3_HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _table3_cells(rows)]
    return "\n".join(lines) + "\n"


def spread_markdown(evaluation: Mapping[str, Any]) -> str | None:
    """The ``spread`` rows of ``googlenet evaluate --json`` (mean ± standard deviation over every
    k-subset of the models) as a markdown table; None when the evaluation has none (one model)."""
    rows = evaluation.get("spread") if isinstance(evaluation, Mapping) else None
    if not rows:
        return None
    header = ("Number of models", "Number of crops", "Subsets", "Top-5 error", "Top-1 error", "Top-1 range")
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for i, r in enumerate(rows):
        try:
            cells = [
                str(int(r["models"])),
                str(int(r["crops"])),
                str(int(r["subsets"])),
                f"{100 * float(r['top5_mean']):.2f} ± {100 * float(r['top5_std']):.2f}%",
                f"{100 * float(r['top1_mean']):.2f} ± {100 * float(r['top1_std']):.2f}%",
                f"{100 * float(r['top1_min']):.2f}-{100 * float(r['top1_max']):.2f}%",
            ]
        except (KeyError, TypeError, ValueError):
            raise GoogLeNetError(f"evaluation spread row {i} is malformed: {r!r}") from None
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Atomic writes and figures


def _new_figure(width: float, height: float) -> Any:
    # An explicit Agg canvas per figure: no pyplot, no process-wide backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: Path) -> Path:
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
        (("val_top5_err", "val, raw weights"), ("avg_val_top5_err", "val, averaged weights")),
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
    # top_k is min(5, classes) in the trainer's records; a 4-class set has a top-4 error
    ks = {int(r["top_k"]) for records in runs.values() for r in records if isinstance(r.get("top_k"), int)}
    k = ks.pop() if len(ks) == 1 else TOP_K
    fig = _new_figure(11.0, 8.0 + 0.25 * len(runs) * several)
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
    return _save_figure(fig, Path(path))


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
    fig = _new_figure(side + 1.5, side)
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
    return _save_figure(fig, Path(path))


def plot_predictions(
    images: np.ndarray,
    labels: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    columns: int = PREDICTION_GRID[1],
    k: int = TOP_K,
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
    fig = _new_figure(3.2 * columns, 4.1 * rows)
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
    return _save_figure(fig, Path(path))


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_table3(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "Table 3") -> Path:
    """Table 3 drawn as an image (same cells as :func:`table3_markdown`)."""
    cells = _table3_cells(rows)
    fig = _new_figure(11.5, 0.7 + 0.36 * (len(cells) + 1))
    ax = fig.subplots()
    ax.axis("off")
    # bbox fills the axes, so the table sits right under the title whatever the row count.
    table = ax.table(cellText=cells, colLabels=list(TABLE3_HEADER), cellLoc="center", bbox=(0, 0, 1, 1))
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8eef7")
    ax.set_title(title)
    return _save_figure(fig, Path(path))


# --------------------------------------------------------------------------------------------
# Predictions of the runs' models on the validation split


@dataclass
class ValidationPredictions:
    """Softmax probabilities (averaged over models) of every validation image, in dataset order."""

    probs: np.ndarray  # N x num_classes
    labels: np.ndarray  # N
    class_names: list[str]
    models: int
    image_size: int
    indices: np.ndarray  # N dataset indices of the rows (unreadable files are left out)
    meta: Any = None  # the first model's ModelMeta (its preprocessing un-normalises the grid's images)
    layout: str = "auto"  # the dataset layout the images were read with


def _resolve_data_root(data: str | Path | None, config: Mapping[str, Any], run_dir: Path) -> Path | None:
    root = data if data is not None else config.get("data")
    if root is None:
        return None
    if str(root) == "builtin":
        from ..data.builtin import resolve_data

        return Path(resolve_data("builtin"))
    path = Path(root)
    if not path.is_dir():
        raise GoogLeNetError(f"data directory {path} (for run {run_dir}) does not exist")
    return path


def predict_validation(
    model_paths: Sequence[Path],
    data_root: Path,
    image_size: int,
    *,
    batch_size: int = 32,
    max_images: int | None = None,
    device: str = "cpu",
    layout: str = "auto",
) -> ValidationPredictions:
    """Run each model on the validation split (single centre crop) and average the softmax."""
    import torch

    from ..data.datasets import build_dataset
    from ..data.transforms import eval_transform
    from ..weights.store import load_weights

    models = [load_weights(p, device=device) for p in model_paths]
    first = models[0]
    for path, m in zip(model_paths[1:], models[1:], strict=True):
        if m.num_classes != first.num_classes:
            raise GoogLeNetError(
                f"{path} has {m.num_classes} classes but {model_paths[0]} has {first.num_classes}; "
                "an ensemble needs the same classes"
            )
    # Each model gets its own preprocessing (a run's model carries its mean and std).
    datasets = [
        build_dataset(data_root, "val", eval_transform(m.meta, image_size), layout=layout) for m in models
    ]
    total = len(datasets[0])
    if total == 0:
        raise GoogLeNetError(f"{data_root}: the validation split has no images")
    # Folder datasets are sorted by class, so a cap takes evenly spaced images, not the first ones.
    indices = list(range(total))
    if max_images is not None and max_images < total:
        indices = sorted({round(i) for i in np.linspace(0, total - 1, max(1, max_images))})
    class_names = list(first.meta.class_names or getattr(datasets[0], "classes", None) or [])
    if len(class_names) != first.num_classes:
        class_names = [str(i) for i in range(first.num_classes)]
    probs: np.ndarray | None = None
    labels: list[int] = []
    kept: list[int] = []
    with torch.inference_mode():
        for dataset, model in zip(datasets, models, strict=True):
            # Batches by hand (not a DataLoader) so that every model sees the same images in the
            # same order and an unreadable file (the dataset returns None) is dropped for all.
            model_probs: list[np.ndarray] = []
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                items = [(i, dataset[i]) for i in chunk]
                items = [(i, item) for i, item in items if item is not None]
                if not items:
                    continue
                x = torch.stack([item[0] for _, item in items]).to(device)
                model_probs.append(torch.softmax(model(x).float(), dim=1).cpu().double().numpy())
                if probs is None:  # first model: record labels and which images were readable
                    labels += [int(item[1]) for _, item in items]
                    kept += [i for i, _ in items]
            stacked = np.concatenate(model_probs) if model_probs else np.zeros((0, first.num_classes))
            probs = stacked if probs is None else probs + stacked
    if probs is None or not len(kept):
        raise GoogLeNetError(f"{data_root}: no readable validation image")
    return ValidationPredictions(
        probs=probs / len(models),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=class_names,
        models=len(models),
        image_size=image_size,
        indices=np.asarray(kept, dtype=np.int64),
        meta=first.meta,
        layout=layout,
    )


def _spread_indices(labels: np.ndarray, count: int) -> list[int]:
    # Round-robin over classes so that the grid shows as many classes as it can, not the first
    # class's images only (folder datasets are sorted by class).
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        by_class.setdefault(c, []).append(i)
    picked: list[int] = []
    while len(picked) < count and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(picked) < count:
                picked.append(by_class[c].pop(0))
    return picked


# --------------------------------------------------------------------------------------------
# The report


def load_evaluation(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GoogLeNetError(f"evaluation file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GoogLeNetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise GoogLeNetError(f"{path}: expected a JSON object with a 'rows' list")
    return data


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    evaluation: str | Path | Mapping[str, Any] | None = None,
    data: str | Path | None = None,
    image_size: int | None = None,
    *,
    max_images: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
) -> Path:
    """Write the report of ``run_dirs`` into ``out``; returns the path of ``out/index.md``.

    An ensemble directory among ``run_dirs`` stands for its members (:func:`expand_run_dirs`).

    ``data`` (a folder or ``"builtin"``) and ``image_size`` default to the first run's
    ``config.yaml``. The confusion matrix and prediction grid need every run's
    ``model.safetensors`` and a validation split; without them those sections are left out and
    ``index.md`` says why. ``max_images`` caps the validation images used (all by default).
    """
    if not run_dirs:
        raise GoogLeNetError("no run directory given")
    run_paths = expand_run_dirs(run_dirs)
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in run_paths:
        runs[run_label(run, runs)] = read_metrics(run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    sections: list[tuple[str, str | None, str]] = []  # (title, picture file or None, text)
    plot_curves(runs, out / "curves.png")
    epochs = ", ".join(f"{label}: {len(records)} epochs" for label, records in runs.items())
    sections.append(
        (
            "Training curves",
            "curves.png",
            f"Runs: {epochs}. Dashed: raw weights; dotted: Polyak-averaged weights (section 6).",
        )
    )

    config = read_run_config(run_paths[0])
    model_paths = [RunLayout(r).weights for r in run_paths]
    missing = [str(p) for p in model_paths if not p.is_file()]
    data_root = _resolve_data_root(data, config, run_paths[0])
    size = image_size or config.get("image_size")
    if missing:
        sections.append(("Validation predictions", None, f"Left out: no weights at {', '.join(missing)}."))
    elif data_root is None:
        sections.append(
            (
                "Validation predictions",
                None,
                "Left out: no --data given and the run's config.yaml names none.",
            )
        )
    else:
        if not size:
            from ..weights.store import load_weights

            size = int(load_weights(model_paths[0], verify=False).meta.input_size[-1])
        preds = predict_validation(
            model_paths,
            data_root,
            int(size),
            batch_size=batch_size,
            max_images=max_images,
            device=device,
            layout=str(config.get("layout") or "auto"),
        )
        sections += _prediction_sections(preds, out, data_root, int(size))

    if evaluation is not None:
        eval_data = evaluation if isinstance(evaluation, Mapping) else load_evaluation(evaluation)
        rows = table3_rows(eval_data)
        title = "Table 3" + (
            f" ({eval_data['dataset']})" if isinstance(eval_data.get("dataset"), str) else ""
        )
        plot_table3(rows, out / "table3.png", title=title)
        markdown = table3_markdown(rows)
        atomic_write_text(out / "table3.md", markdown)
        sections.append(
            (
                "Table 3 (section 7: models x crops)",
                "table3.png",
                markdown + "\nErrors are on the evaluated validation split; cost = models x crops.",
            )
        )
        spread = spread_markdown(eval_data)
        if spread is not None:
            sections.append(
                (
                    "Spread over seeds (every k-subset of the models)",
                    None,
                    spread + "\nTable 3's k-model rows use the k best members, picked on the same images; "
                    "here every k-subset counts, so nothing is picked on the test set. Mean ± sample "
                    "standard deviation over the subsets.",
                )
            )

    atomic_write_text(out / "index.md", _index_markdown(run_paths, sections))
    atomic_write_text(out / "index.html", _index_html(run_paths, sections))
    return out / "index.md"


def _prediction_sections(
    preds: ValidationPredictions,
    out: Path,
    data_root: Path,
    image_size: int,
) -> list[tuple[str, str | None, str]]:
    n_classes = preds.probs.shape[1]
    predicted = preds.probs.argmax(axis=1)
    matrix = confusion_matrix(preds.labels, predicted, n_classes)
    top1, top5 = topk_errors(preds.probs, preds.labels)
    who = f"ensemble of {preds.models} models" if preds.models > 1 else "averaged weights"
    plot_confusion(
        matrix,
        preds.class_names,
        out / "confusion.png",
        title=f"Confusion matrix, {who}, {len(preds.labels)} val images",
    )
    sections: list[tuple[str, str | None, str]] = [
        (
            "Confusion matrix",
            "confusion.png",
            f"{who.capitalize()}, single centre crop at {image_size} px on {data_root}: "
            f"top-1 error {_percent(top1)}, top-{min(TOP_K, n_classes)} error {_percent(top5)} "
            f"over {len(preds.labels)} validation images.",
        )
    ]
    count = PREDICTION_GRID[0] * PREDICTION_GRID[1]
    picked = _spread_indices(preds.labels, count)
    images = _images_for(preds, data_root, picked)
    plot_predictions(
        images, preds.labels[picked].tolist(), preds.probs[picked], preds.class_names, out / "predictions.png"
    )
    sections.append(
        (
            "Predictions",
            "predictions.png",
            f"Green: top-1 right; orange: right only within the top {min(TOP_K, n_classes)}; red: wrong. "
            "✓ marks the true class.",
        )
    )
    return sections


def _images_for(preds: ValidationPredictions, data_root: Path, rows: Sequence[int]) -> np.ndarray:
    """The centre crops the model saw for ``rows`` of ``preds``, un-normalised to [0, 1] RGB for display."""
    import torch

    from ..data.datasets import build_dataset
    from ..data.transforms import eval_transform

    meta = preds.meta
    dataset = build_dataset(data_root, "val", eval_transform(meta, preds.image_size), layout=preds.layout)
    mean = torch.tensor(meta.mean).view(3, 1, 1)
    std = torch.tensor(meta.std).view(3, 1, 1)
    indices = preds.indices[list(rows)].tolist()
    return np.stack([(dataset[i][0] * std + mean).clamp(0, 1).permute(1, 2, 0).numpy() for i in indices])


def _index_markdown(run_paths: Sequence[Path], sections: Sequence[tuple[str, str | None, str]]) -> str:
    lines = ["# GoogLeNet training report", "", "Runs:", ""]
    lines += [f"- `{p}`" for p in run_paths]
    for title, picture, text in sections:
        lines += ["", f"## {title}", ""]
        if picture:
            lines += [f"![{title}]({picture})", ""]
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


def _index_html(run_paths: Sequence[Path], sections: Sequence[tuple[str, str | None, str]]) -> str:
    esc = html.escape
    body = ["<h1>GoogLeNet training report</h1>", "<p>Runs:</p><ul>"]
    body += [f"<li><code>{esc(str(p))}</code></li>" for p in run_paths]
    body.append("</ul>")
    for title, picture, text in sections:
        body.append(f"<h2>{esc(title)}</h2>")
        if picture:
            body.append(f'<p><img src="{esc(picture)}" alt="{esc(title)}" style="max-width:100%"></p>')
        body.append(f"<pre>{esc(text.rstrip())}</pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>GoogLeNet training report</title></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
