"""Pictures of training runs and of the paper's Table 3 (sections 6 and 7), assembled into a page.

:func:`write_report` turns one or more run directories (written by ``googlenet train``) and,
optionally, an evaluation (:class:`googlenet.evaluation.result.EvaluationResult`, written by
``googlenet evaluate --json``) into a folder of PNGs plus ``index.md`` and ``index.html``:

- ``curves.png``: loss, top-1 / top-k error, learning rate, and the validation error of the raw
  weights next to that of the Polyak-averaged weights (section 6: "Polyak averaging ... was used
  to create the final model used at inference time"); several runs are overlaid.
- ``confusion.png``: the confusion matrix of the first run's averaged model on the validation
  split (single centre crop, section 7's base row), or of the ensemble when several runs are given
  (softmax probabilities averaged over models, as section 7 does).
- ``predictions.png``: validation images with their top-k classes; right answers and mistakes marked.
- ``table3.png`` and ``table3.md``: the Table 3 rows (models x crops -> cost, top-k error, delta).

The predictions go through the protocol's one inference path
(:func:`googlenet.evaluation.loading.load_models` + ``protocol.crop_probabilities``, single crop),
over the images ``protocol.select_images`` picks,
scored by :mod:`googlenet.evaluation.metrics`:
a report's confusion matrix and an ``evaluate --limit`` of the same size see the same images and
count unreadable ones alike. An evaluation is checked against the runs (the same checkpoints, data
and classes) before anything is drawn. The folder is built beside ``out`` and swapped in whole, so
a failure leaves the earlier report as it was and no stale file of an earlier report survives.
The pictures are drawn by :mod:`googlenet.evaluation.plots`. ``index.html`` is ``index.md``
rendered (Python-Markdown, tables as HTML tables), so the two pages never say different things.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_text
from ..data.config import DataConfig
from ..errors import GoogLeNetError
from ..runs import (
    CHECKPOINT_DIR,
    TRAINING_CHECKPOINT_SUFFIX,
    WEIGHTS_SUFFIX,
    RunLayout,
    expand_run_dirs,
    read_metrics,
    read_run_config,
    run_label,
)
from .metrics import confusion_matrix, readable_rows, topk_errors, topk_for
from .plots import PREDICTION_GRID, plot_confusion, plot_curves, plot_predictions, plot_table3
from .result import EvaluationResult, read_evaluation
from .tables import spread_markdown, table3_markdown

__all__ = ["REPORT_FILES", "ValidationPredictions", "markdown_page", "predict_validation", "write_report"]

# Every file a report writes; a folder holding anything else is not replaced by one.
REPORT_FILES = (
    "index.md",
    "index.html",
    "curves.png",
    "confusion.png",
    "predictions.png",
    "table3.png",
    "table3.md",
)


# --------------------------------------------------------------------------------------------
# Predictions of the runs' models on the validation split


@dataclass
class ValidationPredictions:
    """Softmax probabilities (averaged over models) of the selected validation images, in order.

    Rows of unreadable images are NaN (``unreadable``: ``(row, message)``); they count as errors.
    """

    probs: torch.Tensor  # N x num_classes
    labels: torch.Tensor  # N
    paths: list[str]
    class_names: list[str]
    models: int
    data_config: DataConfig
    unreadable: list[tuple[int, str]]

    @property
    def image_size(self) -> int:
        return self.data_config.image_size


def predict_validation(
    models: Sequence[Any],
    data_root: str | Path,
    image_size: int | None = None,
    *,
    batch_size: int = 32,
    max_images: int | None = None,
    device: str = "cpu",
    layout: str = "auto",
    allow_class_mismatch: bool = False,
) -> ValidationPredictions:
    """Every model (:class:`googlenet.runs.ModelRef` s, or paths they resolve from) on the
    validation split, single centre crop, softmax averaged over the models (section 7)."""
    from ..data.datasets import build_dataset
    from ..runs import ModelRef, resolve_checkpoints
    from .loading import load_models
    from .protocol import (
        check_models_fit_data,
        crop_probabilities,
        ensemble_probabilities,
        select_images,
    )

    refs = [m for arg in models for m in ([arg] if isinstance(arg, ModelRef) else resolve_checkpoints([arg]))]
    loaded = load_models(refs, image_size=image_size, device=device)
    dataset = build_dataset(data_root, "val", layout=layout)
    if not dataset.samples:
        raise GoogLeNetError(f"{data_root}: the validation split has no images")
    check_models_fit_data(
        loaded,
        dataset.classes,
        model=str(refs[0].weights),
        data=f"{data_root} (val)",
        allow_mismatch=allow_class_mismatch,
    )
    picked = [dataset.samples[i] for i in select_images(len(dataset.samples), max_images)]
    paths = [str(p) for p, _ in picked]
    result = crop_probabilities(paths, loaded.models, ["1"], loaded.data_config, batch_size=batch_size)
    if not result.probs:
        raise GoogLeNetError(f"{data_root}: no readable validation image (first: {result.unreadable[0][1]})")
    return ValidationPredictions(
        probs=ensemble_probabilities(result, "1"),
        labels=torch.tensor([label for _, label in picked]),
        paths=paths,
        class_names=list(loaded.class_names or dataset.classes),
        models=len(loaded.models),
        data_config=loaded.data_config,
        unreadable=list(result.unreadable),
    )


def _spread_indices(labels: Sequence[int], count: int) -> list[int]:
    # Round-robin over classes so that the grid shows as many classes as it can, not the first
    # class's images only (folder datasets are sorted by class).
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(c, []).append(i)
    picked: list[int] = []
    while len(picked) < count and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(picked) < count:
                picked.append(by_class[c].pop(0))
    return picked


def _crops_shown(preds: ValidationPredictions, rows: Sequence[int]) -> Any:
    """The centre crops the models saw for ``rows`` (the protocol's own crop), as [0, 1] RGB."""
    from ..data.datasets import open_image
    from ..data.multicrop import multicrop

    crops = [
        multicrop(open_image(preds.paths[i]), "1", preds.data_config, dtype=torch.uint8)[0] for i in rows
    ]
    return (torch.stack(crops).permute(0, 2, 3, 1).float() / 255.0).numpy()


# --------------------------------------------------------------------------------------------
# Checks before any work


def _check_run_argument(path: Path) -> None:
    """A file given where a run directory is expected: say what it is and what to pass."""
    if not path.is_file():
        return
    if path.suffix == TRAINING_CHECKPOINT_SUFFIX:
        run = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        raise GoogLeNetError(f"{path} is a training checkpoint; the report takes run directories: pass {run}")
    if path.suffix == WEIGHTS_SUFFIX:
        raise GoogLeNetError(
            f"{path} is a weights file; the report takes run directories (with metrics.jsonl): "
            f"pass the folder given to googlenet train --out (here perhaps {path.parent})"
        )
    if path.suffix == ".json":
        raise GoogLeNetError(
            f"{path} is a file, not a run directory: pass an evaluation as --evaluation {path}, "
            "and run or ensemble directories as RUN_DIR"
        )


def check_report_out(out: Path, report_files: Sequence[str] = REPORT_FILES) -> None:
    """``--out`` must be a new folder or an earlier report's: a report replaces it whole."""
    if out.exists() and not out.is_dir():
        raise GoogLeNetError(f"--out {out} is a file: pass a folder (it is created)")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in report_files)
        if foreign:
            raise GoogLeNetError(
                f"--out {out} holds {foreign[0]}, which no report writes; a report replaces the whole "
                "folder: pass a new folder or an earlier report's"
            )
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise GoogLeNetError(f"--out {out}: {parent} is not a writable folder; pass another --out")


def _weights_identity(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(tensor SHA-256, model meta) recorded in a weights file; (None, None) when it has none."""
    from ..weights.store import read_metadata

    if not path.is_file():
        return None, None
    metadata = read_metadata(path)
    try:
        meta = json.loads(metadata.get("meta", "null"))
    except json.JSONDecodeError:
        meta = None
    return metadata.get("sha256"), meta if isinstance(meta, dict) else None


def _check_evaluation(
    evaluation: EvaluationResult,
    source: str,
    run_paths: Sequence[Path],
    data_root: Path | None,
    *,
    allow_class_mismatch: bool,
) -> None:
    """Refuse an evaluation of other checkpoints, data or classes than the report's: its numbers
    would otherwise be printed as those of the runs reported on."""
    from .protocol import check_class_names

    if not evaluation.checkpoints:
        raise GoogLeNetError(
            f"evaluation {source} records no checkpoints, so it cannot be matched to the runs: pass a file "
            "written by googlenet evaluate --checkpoint RUN ... --json"
        )
    runs = [(RunLayout(r).weights, *_weights_identity(RunLayout(r).weights)) for r in run_paths]
    evaluated_hashes = [c.get("sha256") for c in evaluation.checkpoints]
    run_hashes = [h for _, h, _ in runs]
    if all(evaluated_hashes) and all(run_hashes):
        # The tensors' hash names a model wherever its file now lies (an evaluation made elsewhere).
        same = set(evaluated_hashes) == set(run_hashes)
    else:  # an older evaluation, or runs without weights yet: the files' paths
        same = {os.path.realpath(str(c.get("weights"))) for c in evaluation.checkpoints} == {
            os.path.realpath(w) for w, _, _ in runs
        }
    if not same:
        evaluated = ", ".join(str(c.get("weights")) for c in evaluation.checkpoints)
        reported = ", ".join(str(w) for w, _, _ in runs)
        raise GoogLeNetError(
            f"evaluation {source} is of the checkpoints [{evaluated}] but the report is of [{reported}]: "
            "evaluate these runs (googlenet evaluate --checkpoint RUN ... --json) or report on the runs it "
            "evaluated"
        )
    same_data = (
        data_root is None
        or evaluation.data is None
        or os.path.realpath(evaluation.data) == os.path.realpath(data_root)
    )
    if not same_data:
        raise GoogLeNetError(
            f"evaluation {source} is on the data {evaluation.data} but the report's data is {data_root}: "
            "pass --data with the evaluated data, or an evaluation of this data"
        )
    meta = runs[0][2] or {}
    names, count = meta.get("class_names"), meta.get("num_classes")
    if evaluation.class_names is not None:
        check_class_names(
            names,
            evaluation.class_names,
            model=str(runs[0][0]),
            data=f"evaluation {source}",
            allow_mismatch=allow_class_mismatch,
        )
    if evaluation.num_classes is not None and count is not None and int(count) != evaluation.num_classes:
        raise GoogLeNetError(
            f"evaluation {source} scores {evaluation.num_classes} classes but {runs[0][0]} predicts {count}"
        )


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


def _evaluation(
    evaluation: str | Path | Mapping[str, Any] | EvaluationResult,
) -> tuple[EvaluationResult, str]:
    if isinstance(evaluation, EvaluationResult):
        return evaluation, "(given)"
    if isinstance(evaluation, Mapping):
        return EvaluationResult.from_json(dict(evaluation)), "(given)"
    return read_evaluation(evaluation), str(evaluation)


# --------------------------------------------------------------------------------------------
# The report


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    evaluation: str | Path | Mapping[str, Any] | EvaluationResult | None = None,
    data: str | Path | None = None,
    image_size: int | None = None,
    *,
    max_images: int | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    allow_class_mismatch: bool = False,
) -> Path:
    """Write the report of ``run_dirs`` into ``out``; returns the path of ``out/index.md``.

    An ensemble directory among ``run_dirs`` stands for its members (:func:`googlenet.runs.expand_run_dirs`).

    ``data`` (a folder or ``"builtin"``) defaults to the first run's ``config.yaml``; ``image_size``
    to the models' data config (:func:`googlenet.data.config.resolve_data_config`). The confusion
    matrix and prediction grid need every run's weights and a validation split; without them those
    sections are left out and ``index.md`` says why. ``max_images`` caps the validation images
    (:func:`~googlenet.evaluation.protocol.select_images`, as ``evaluate --limit`` does).
    Everything is checked before the first picture is drawn; ``out`` is replaced whole.
    """
    from ..data.config import check_image_size

    if not run_dirs:
        raise GoogLeNetError("no run directory given")
    if image_size is not None:
        check_image_size(image_size, "--image-size")
    for arg in run_dirs:
        _check_run_argument(Path(arg))
    run_paths = expand_run_dirs(run_dirs)
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in run_paths:
        runs[run_label(run, runs)] = read_metrics(run)
    out = Path(out)
    check_report_out(out)
    config = read_run_config(run_paths[0])
    model_paths = [RunLayout(r).weights for r in run_paths]
    missing = [str(p) for p in model_paths if not p.is_file()]
    data_root = _resolve_data_root(data, config, run_paths[0])
    loaded_evaluation = None
    if evaluation is not None:
        loaded_evaluation, source = _evaluation(evaluation)
        _check_evaluation(
            loaded_evaluation, source, run_paths, data_root, allow_class_mismatch=allow_class_mismatch
        )

    def draw(build: Path) -> list[tuple[str, str | None, str]]:
        return _draw(
            build,
            runs,
            run_paths,
            missing,
            data_root,
            loaded_evaluation,
            image_size=image_size,
            max_images=max_images,
            batch_size=batch_size,
            device=device,
            layout=str(config.get("layout") or "auto"),
            allow_class_mismatch=allow_class_mismatch,
        )

    return build_report_folder(out, draw, title="GoogLeNet training report", items=("Runs", run_paths))


Section = tuple[str, str | None, str]  # (title, picture file or None, text)


def build_report_folder(
    out: Path, draw: Callable[[Path], Sequence[Section]], *, title: str, items: tuple[str, Sequence[Any]]
) -> Path:
    """Draw a report into a temporary folder beside ``out``, write its index.md / index.html, then
    swap it in whole: a failure leaves an earlier report untouched and nothing half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        sections = draw(build)
        markdown = _index_markdown(title, items, sections)
        atomic_write_text(build / "index.md", markdown)
        atomic_write_text(build / "index.html", markdown_page(title, markdown))
        _swap_in(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out / "index.md"


def _swap_in(build: Path, out: Path) -> None:
    """Put the finished folder ``build`` at ``out``; an earlier report there goes as a whole."""
    build.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; give it an ordinary folder's mode
    if not out.exists():
        os.replace(build, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(build, out)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _draw(
    out: Path,
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    run_paths: Sequence[Path],
    missing: Sequence[str],
    data_root: Path | None,
    evaluation: EvaluationResult | None,
    **predict: Any,
) -> list[tuple[str, str | None, str]]:
    """Every picture into ``out``; the page's sections (title, picture file or None, text)."""
    sections: list[tuple[str, str | None, str]] = []
    plot_curves(runs, out / "curves.png")
    epochs = ", ".join(f"{label}: {len(records)} epochs" for label, records in runs.items())
    sections.append(
        (
            "Training curves",
            "curves.png",
            f"Runs: {epochs}. Dashed: raw weights; dotted: Polyak-averaged weights (section 6).",
        )
    )
    if missing:
        listed = ", ".join(f"`{m}`" for m in missing)
        sections.append(("Validation predictions", None, f"Left out: no weights at {listed}."))
    elif data_root is None:
        sections.append(
            (
                "Validation predictions",
                None,
                "Left out: no --data given and the run's config.yaml names none.",
            )
        )
    else:
        preds = predict_validation(
            [RunLayout(r).root for r in run_paths],
            data_root,
            predict.pop("image_size"),
            **predict,
        )
        sections += _prediction_sections(preds, out, data_root)
    if evaluation is not None:
        sections += _evaluation_sections(evaluation, out)
    return sections


def _evaluation_sections(evaluation: EvaluationResult, out: Path) -> list[tuple[str, str | None, str]]:
    # googlenet evaluate's title starts "Table 3 (section 7) on ..."; a hand-written file's names its data.
    title = evaluation.title or "Table 3"
    if not title.startswith("Table 3"):
        title = f"Table 3 ({title})"
    plot_table3(evaluation.rows, out / "table3.png", title=title)
    markdown = table3_markdown(evaluation.rows)
    atomic_write_text(out / "table3.md", markdown)
    sections: list[tuple[str, str | None, str]] = [
        (
            "Table 3 (section 7: models x crops)",
            "table3.png",
            markdown + "\nErrors are on the evaluated validation split; cost = models x crops.",
        )
    ]
    spread = spread_markdown(evaluation.spread)
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
    return sections


def _prediction_sections(
    preds: ValidationPredictions, out: Path, data_root: Path
) -> list[tuple[str, str | None, str]]:
    n_classes = preds.probs.shape[1]
    k = topk_for(n_classes)
    top1, topk = topk_errors(preds.probs, preds.labels, (1, k))
    readable = readable_rows(preds.probs)
    labels = preds.labels[readable]
    matrix = confusion_matrix(labels, preds.probs[readable].argmax(dim=1), n_classes)
    who = f"ensemble of {preds.models} models" if preds.models > 1 else "averaged weights"
    total = len(preds.labels)
    plot_confusion(
        matrix.numpy(),
        preds.class_names,
        out / "confusion.png",
        title=f"Confusion matrix, {who}, {int(readable.sum())} val images",
    )
    unreadable = (
        f" ({len(preds.unreadable)} unreadable, counted as errors and left out of the matrix)"
        if preds.unreadable
        else ""
    )
    sections: list[tuple[str, str | None, str]] = [
        (
            "Confusion matrix",
            "confusion.png",
            f"{who.capitalize()}, single centre crop at {preds.image_size} px on `{data_root}`: "
            f"top-1 error {100 * top1:.2f}%, top-{k} error {100 * topk:.2f}% "
            f"over {total} validation images{unreadable}.",
        )
    ]
    kept = readable.nonzero().flatten().tolist()
    count = PREDICTION_GRID[0] * PREDICTION_GRID[1]
    picked = [kept[i] for i in _spread_indices(labels.tolist(), count)]
    plot_predictions(
        _crops_shown(preds, picked),
        preds.labels[picked].tolist(),
        preds.probs[picked].numpy(),
        preds.class_names,
        out / "predictions.png",
        k=k,
    )
    sections.append(
        (
            "Predictions",
            "predictions.png",
            f"Green: top-1 right; orange: right only within the top {k}; red: wrong. ✓ marks the true class.",
        )
    )
    return sections


def _index_markdown(title: str, items: tuple[str, Sequence[Any]], sections: Sequence[Section]) -> str:
    lines = [f"# {title}", "", f"{items[0]}:", ""]
    lines += [f"- `{p}`" for p in items[1]]
    for heading, picture, text in sections:
        lines += ["", f"## {heading}", ""]
        if picture:
            lines += [f"![{heading}]({picture})", ""]
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


# Pictures and tables fit the window; the tables' alignment is the markdown's (numbers right).
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.45; color: #222; max-width: 72rem;
       margin: 1.5rem auto; padding: 0 1rem; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.6rem; }
thead th { background: #eee; }
tbody tr:nth-child(even) { background: #f7f7f7; }
code { font-size: 0.9em; overflow-wrap: anywhere; }
"""


def markdown_page(title: str, markdown: str) -> str:
    """``markdown`` (a report's index.md) as a standalone HTML page titled ``title``.

    Python-Markdown with its ``tables`` extension, so every markdown table becomes an HTML table;
    raw HTML in the text is escaped, not passed through (paths and class names are text, never markup).
    """
    import markdown as python_markdown

    renderer = python_markdown.Markdown(extensions=["tables"], output_format="html")
    renderer.preprocessors.deregister("html_block")
    renderer.inlinePatterns.deregister("html")
    body = renderer.convert(markdown)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
