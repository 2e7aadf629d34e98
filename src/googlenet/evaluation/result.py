"""The result of one run of the section 7 protocol: Table 3, its spread, and what was evaluated.

:class:`EvaluationResult` is what ``googlenet evaluate`` computes and ``--json`` writes, and what
``googlenet report --evaluation`` reads back: the Table 3 rows, the spread over every k-subset of
the models, each model's own scores, the checkpoints (with their tensor hashes, so that a report
can tell which models were evaluated wherever the files now lie), the data (folder, split, class
names), the image size and crop schemes. :meth:`EvaluationResult.to_json` and
:meth:`EvaluationResult.from_json` are the one reader and writer of that file.

Format 2 names the top-k quantity by its k (``top_k``; keys ``topk_err``, ``delta_topk``,
``topk_mean``, ``topk_std``). Format 1 files (``top5_err`` and so on, docs/results/) are read as
they are: their "top-5" was already top-``min(5, classes)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import GoogLeNetError
from .metrics import PAPER_TOP_K
from .protocol import SpreadRow, Table3Row

__all__ = ["FORMAT", "FORMAT_VERSION", "EvaluationResult", "read_evaluation"]

FORMAT = "googlenet-evaluate"
FORMAT_VERSION = 2


@dataclass
class EvaluationResult:
    """Table 3 of one evaluation and everything needed to say what it is of.

    ``checkpoints``: one dict per model (name, source, weights, kind, sha256, variant, num_classes,
    backend, precision); ``per_model``: each model's own ``top1_err`` / ``topk_err`` per crop
    scheme; ``unreadable``: ``{"index", "path", "error"}`` per image that could not be read
    (counted as wrong). ``chunk_images``: the images scored together (no batch crosses a chunk).
    ``world_size``: the processes that scored the images (torchrun's ranks); ``ranks``: one dict per
    rank (``rank``, its images ``first_image`` to ``stop_image``, how many it ``computed`` and how
    many it found done in the work folder, ``resumed``, and its ``seconds``). ``estimate``: the
    :class:`googlenet.cost.CostEstimate` said before the work, when one was measured. ``extra``
    keeps keys this version does not know, so a file read and written again loses nothing.
    """

    rows: list[Table3Row]
    spread: list[SpreadRow] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)  # protocol.PairedEffect.to_dict()
    per_model: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    top_k: int = PAPER_TOP_K
    data: str | None = None
    data_arg: str | None = None
    split: str | None = None
    layout: str | None = None
    num_images: int | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    limit: int | None = None
    image_size: int | None = None
    schemes: list[int] = field(default_factory=list)
    combine: str = "mean"
    model_counts: str | None = None
    backend: str | None = None
    precision: str | None = None
    device: str | None = None
    batch_size: int | None = None
    chunk_images: int | None = None
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None
    world_size: int = 1
    ranks: list[dict[str, Any]] = field(default_factory=list)
    estimate: dict[str, Any] | None = None
    wall_time_s: float | None = None
    images_per_s: float | None = None
    date: str | None = None
    googlenet_version: str | None = None
    torch_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rows:
            raise GoogLeNetError("an evaluation needs at least one Table 3 row")
        known = self.class_names is not None and self.num_classes is not None
        if known and len(self.class_names) != self.num_classes:
            raise GoogLeNetError(
                f"evaluation names {len(self.class_names)} classes but counts {self.num_classes}"
            )

    @property
    def num_unreadable(self) -> int:
        return len(self.unreadable)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (format 2)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "top_k": self.top_k,
            "rows": [r.to_dict(base=i == 0) for i, r in enumerate(self.rows)],
            "per_model": self.per_model,
            "spread": [r.to_dict() for r in self.spread],
            "effects": self.effects,
            "checkpoints": self.checkpoints,
            "data": self.data,
            "data_arg": self.data_arg,
            "split": self.split,
            "layout": self.layout,
            "num_images": self.num_images,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "limit": self.limit,
            "image_size": self.image_size,
            "schemes": self.schemes,
            "combine": self.combine,
            "model_counts": self.model_counts,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "batch_size": self.batch_size,
            "chunk_images": self.chunk_images,
            "unreadable": self.unreadable,
            "num_unreadable": self.num_unreadable,
            "title": self.title,
            "world_size": self.world_size,
            "ranks": self.ranks,
            "estimate": self.estimate,
            "wall_time_s": self.wall_time_s,
            "images_per_s": self.images_per_s,
            "date": self.date,
            "googlenet_version": self.googlenet_version,
            "torch_version": self.torch_version,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        return atomic_write_text(Path(path), self.to_json())

    @classmethod
    def from_json(cls, data: str | dict[str, Any], source: str = "evaluation") -> EvaluationResult:
        """Read a format 1 or 2 evaluation (a JSON text or the parsed object); errors name ``source``.

        Required: a non-empty ``rows`` list whose rows have models, crops and the top-k error.
        ``cost`` defaults to models x crops, the deltas to the difference from the first (base)
        row; ``top1_err`` may be missing (a hand-written table).
        """
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise GoogLeNetError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise GoogLeNetError(f"{source}: expected a JSON object with a 'rows' list")
        if data.get("format", FORMAT) != FORMAT:
            raise GoogLeNetError(
                f"{source}: format {data.get('format')!r} is not {FORMAT!r}; pass a file written by "
                "googlenet evaluate --json"
            )
        version = data.get("format_version", 1)
        if version not in (1, FORMAT_VERSION):
            raise GoogLeNetError(f"{source}: format_version {version!r} is not 1 or {FORMAT_VERSION}")
        fields = dict(data)
        for key in ("format", "format_version", "num_unreadable"):
            fields.pop(key, None)
        num_classes = _optional_int(fields.pop("num_classes", None), "num_classes", source)
        top_k = fields.pop("top_k", None)
        if top_k is None:
            # format 1 wrote no top_k: its "top-5" was top-min(5, classes)
            top_k = min(PAPER_TOP_K, num_classes) if num_classes else PAPER_TOP_K
        top_k = _int(top_k, "top_k", source)
        rows = _table3_rows(fields.pop("rows", None), top_k, source)
        spread = _spread_rows(fields.pop("spread", None) or [], top_k, source)
        per_model = [_renamed(m) for m in _list(fields.pop("per_model", None) or [], "per_model", source)]
        known = set(cls.__dataclass_fields__) - {"rows", "spread", "per_model", "extra"}
        kwargs = {k: fields.pop(k) for k in list(fields) if k in known}
        if "dataset" in fields and "title" not in kwargs:  # hand-written tables named their data so
            kwargs["title"] = fields.pop("dataset")
        for key in ("checkpoints", "unreadable", "schemes", "effects"):
            _list(kwargs.get(key, []), key, source)
        class_names = kwargs.get("class_names")
        if class_names is not None and not (
            isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)
        ):
            raise GoogLeNetError(f"{source}: class_names must be a list of strings")
        try:
            return cls(
                rows=rows,
                spread=spread,
                per_model=per_model,
                top_k=top_k,
                num_classes=num_classes,
                extra=fields,
                **kwargs,
            )
        except GoogLeNetError as exc:
            raise GoogLeNetError(f"{source}: {exc}") from None


def read_evaluation(path: str | Path) -> EvaluationResult:
    """:meth:`EvaluationResult.from_json` of a file; errors name it and say what to pass."""
    path = Path(path)
    if path.is_dir():
        raise GoogLeNetError(
            f"evaluation {path} is a folder: pass the JSON file written by googlenet evaluate --json"
        )
    if not path.is_file():
        raise GoogLeNetError(
            f"evaluation file {path} not found: pass the file written by googlenet evaluate --json"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoogLeNetError(f"evaluation file {path} cannot be read ({exc})") from None
    return EvaluationResult.from_json(text, source=str(path))


# Format 1 -> format 2 key names (the top-k quantity named by its k, not by 5).
_RENAMED = {
    "top5_err": "topk_err",
    "delta_top5": "delta_topk",
    "top5_mean": "topk_mean",
    "top5_std": "topk_std",
}


def _renamed(row: Any) -> Any:
    if not isinstance(row, dict):
        return row
    return {_RENAMED.get(k, k): v for k, v in row.items()}


def _list(value: Any, key: str, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise GoogLeNetError(f"{source}: {key} must be a list")
    return value


def _int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GoogLeNetError(f"{source}: {key} must be a positive integer. Got {value!r}")
    return value


def _optional_int(value: Any, key: str, source: str) -> int | None:
    return None if value is None else _int(value, key, source)


def _fraction(value: Any, where: str, source: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GoogLeNetError(f"{source}: {where} must be a number. Got {value!r}")
    return float(value)


def _table3_rows(rows: Any, k: int, source: str) -> list[Table3Row]:
    if not isinstance(rows, list) or not rows:
        raise GoogLeNetError(f"{source}: evaluation JSON has no 'rows' list of Table 3 rows")
    out: list[Table3Row] = []
    for i, raw in enumerate(rows):
        row = _renamed(raw)
        if not isinstance(row, dict) or not {"models", "crops", "topk_err"} <= set(row):
            raise GoogLeNetError(
                f"{source}: evaluation row {i} lacks one of models, crops, top{k}_err: {raw!r}"
            )
        where = f"row {i}"
        models, crops = (
            _int(row["models"], f"{where} models", source),
            _int(row["crops"], f"{where} crops", source),
        )
        topk = _fraction(row["topk_err"], f"{where} topk_err", source)
        top1 = _fraction(row.get("top1_err"), f"{where} top1_err", source, optional=True)
        deltas = []
        for key, value, base in (
            ("delta_topk", topk, out[0].topk_error if out else None),
            ("delta_top1", top1, out[0].top1_error if out else None),
        ):
            delta = _fraction(row.get(key), f"{where} {key}", source, optional=True)
            if i > 0 and delta is None and base is not None and value is not None:
                delta = value - base
            deltas.append(0.0 if i == 0 and value is not None else delta)
        names = row.get("model_names") or ()
        out.append(
            Table3Row(
                models=models,
                crops=crops,
                cost=_int(row.get("cost", models * crops), f"{where} cost", source),
                topk_error=topk,
                top1_error=top1,
                delta_topk=deltas[0],
                delta_top1=deltas[1],
                model_names=tuple(str(n) for n in names),
                k=k,
            )
        )
    return out


_SPREAD_KEYS = (
    "models",
    "crops",
    "subsets",
    "topk_mean",
    "topk_std",
    "top1_mean",
    "top1_std",
    "top1_min",
    "top1_max",
)


def _spread_rows(rows: Any, k: int, source: str) -> list[SpreadRow]:
    out = []
    for i, raw in enumerate(_list(rows, "spread", source)):
        row = _renamed(raw)
        try:
            values = {key: row[key] for key in _SPREAD_KEYS}
            counts = {key: int(values.pop(key)) for key in ("models", "crops", "subsets")}
            floats = {key: float(v) for key, v in values.items()}
        except (KeyError, TypeError, ValueError):
            raise GoogLeNetError(f"{source}: evaluation spread row {i} is malformed: {raw!r}") from None
        out.append(SpreadRow(**counts, **floats, k=k))
    return out
