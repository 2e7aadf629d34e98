"""Table 3 (section 7) and its spread over seeds as text and as markdown, from one cell builder.

:func:`table3_cells` and :func:`spread_cells` turn rows (:class:`~googlenet.evaluation.protocol.Table3Row`,
:class:`~googlenet.evaluation.protocol.SpreadRow`) into the strings every form prints; the text tables
(``googlenet evaluate``), the markdown tables and the PNG (``googlenet report``) only choose the
columns, their headers and the frame. The top-k column is named by the rows' k (``top-5`` from five
classes up, :func:`googlenet.evaluation.metrics.topk_for`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

__all__ = [
    "format_spread",
    "format_table3",
    "markdown_table",
    "spread_cells",
    "spread_markdown",
    "table3_cells",
    "table3_header",
    "table3_markdown",
]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:.2f}%"


def _signed_percent(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:+.2f}%"


def _k(rows: Sequence[Any]) -> int:
    return rows[0].k if rows else 5


def table3_cells(rows: Sequence[Any]) -> list[dict[str, str]]:
    """Per row: models, crops, cost, topk, top1 (errors in percent, two decimals as the paper
    prints), delta_topk, delta_top1 ("base" on the first row, signed percent after)."""
    return [
        {
            "models": str(r.models),
            "crops": str(r.crops),
            "cost": str(r.cost),
            "topk": _percent(r.topk_error),
            "top1": _percent(r.top1_error),
            "delta_topk": "base" if i == 0 else _signed_percent(r.delta_topk),
            "delta_top1": "base" if i == 0 and r.top1_error is not None else _signed_percent(r.delta_top1),
        }
        for i, r in enumerate(rows)
    ]


def spread_cells(rows: Sequence[Any], range_separator: str) -> list[dict[str, str]]:
    """Per row: models, crops, subsets, topk and top1 (mean ± sample standard deviation), top1_range
    (min, ``range_separator``, max)."""
    return [
        {
            "models": str(r.models),
            "crops": str(r.crops),
            "subsets": str(r.subsets),
            "topk": f"{100 * r.topk_mean:.2f} ± {100 * r.topk_std:.2f}%",
            "top1": f"{100 * r.top1_mean:.2f} ± {100 * r.top1_std:.2f}%",
            "top1_range": f"{100 * r.top1_min:.2f}{range_separator}{100 * r.top1_max:.2f}%",
        }
        for r in rows
    ]


# (cell key, header) per column; "{k}" is the rows' top-k.
_TEXT_TABLE3 = (
    ("models", "models"),
    ("crops", "crops"),
    ("cost", "cost"),
    ("topk", "top-{k} error"),
    ("top1", "top-1 error"),
    ("delta_topk", "top-{k} vs base"),
    ("delta_top1", "top-1 vs base"),
)
_MARKDOWN_TABLE3 = (
    ("models", "Number of models"),
    ("crops", "Number of crops"),
    ("cost", "Cost"),
    ("topk", "Top-{k} error"),
    ("delta_topk", "Top-{k} vs base"),
    ("top1", "Top-1 error"),
    ("delta_top1", "Top-1 vs base"),
)
_TEXT_SPREAD = (
    ("models", "models"),
    ("crops", "crops"),
    ("subsets", "subsets"),
    ("topk", "top-{k} error"),
    ("top1", "top-1 error"),
    ("top1_range", "top-1 min..max"),
)
_MARKDOWN_SPREAD = (
    ("models", "Number of models"),
    ("crops", "Number of crops"),
    ("subsets", "Subsets"),
    ("topk", "Top-{k} error"),
    ("top1", "Top-1 error"),
    ("top1_range", "Top-1 range"),
)


def _columns(
    columns: Sequence[tuple[str, str]], cells: Sequence[dict[str, str]], k: int
) -> tuple[list[str], list[list[str]]]:
    header = [h.format(k=k) for _, h in columns]
    return header, [[c[key] for key, _ in columns] for c in cells]


def table3_header(rows: Sequence[Any]) -> list[str]:
    """The markdown / picture column headers of :func:`table3_markdown`."""
    return [h.format(k=_k(rows)) for _, h in _MARKDOWN_TABLE3]


def table3_markdown_cells(rows: Sequence[Any]) -> list[list[str]]:
    """The cells of :func:`table3_markdown`, row by row (what the report's picture draws)."""
    return _columns(_MARKDOWN_TABLE3, table3_cells(rows), _k(rows))[1]


def _text_table(header: Sequence[str], lines: Sequence[Sequence[str]], title: str | None) -> str:
    """Right-aligned columns under a dashed header line, optionally under a title."""
    widths = [max(len(h), *(len(line[c]) for line in lines)) for c, h in enumerate(header)]
    out = [title] if title else []
    out.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def markdown_table(header: Sequence[str], lines: Sequence[Sequence[str]], left: Collection[int] = ()) -> str:
    """A GitHub markdown table (what the reports' index.md holds and index.html renders as a table):
    the columns whose indices are in ``left`` left-aligned (names), the others right-aligned
    (numbers); a ``|`` in a cell is escaped."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    out = [row(header), "|" + "".join("---|" if c in left else "---:|" for c in range(len(header)))]
    out += [row(line) for line in lines]
    return "\n".join(out) + "\n"


def format_table3(rows: Sequence[Any], title: str | None = None) -> str:
    """Rows as a text table shaped like the paper's Table 3."""
    return _text_table(*_columns(_TEXT_TABLE3, table3_cells(rows), _k(rows)), title)


def format_spread(rows: Sequence[Any], title: str | None = None) -> str:
    """:func:`~googlenet.evaluation.protocol.table3_spread` rows as a text table (mean ± sample
    standard deviation, top-1 range as ``min..max``)."""
    return _text_table(*_columns(_TEXT_SPREAD, spread_cells(rows, ".."), _k(rows)), title)


def table3_markdown(rows: Sequence[Any]) -> str:
    """Table 3 as a GitHub markdown table."""
    return markdown_table(table3_header(rows), table3_markdown_cells(rows))


def spread_markdown(rows: Sequence[Any]) -> str | None:
    """The spread rows as a markdown table (top-1 range as ``min-max``); None without rows (one model)."""
    if not rows:
        return None
    return markdown_table(*_columns(_MARKDOWN_SPREAD, spread_cells(rows, "-"), _k(rows)))


def format_effects(effects: Sequence[Any], title: str | None = None) -> str:
    """The paired effects (:func:`~googlenet.evaluation.protocol.paired_effects`, or their JSON form
    as :class:`~googlenet.evaluation.result.EvaluationResult` keeps them) as a text table: error
    points gained, positive = better."""
    effects = [SimpleNamespace(**e) if isinstance(e, Mapping) else e for e in effects]
    header = [
        "effect (top-1 error points, positive = better)",
        "mean",
        "paired 95% CI",
        "bootstrap 95% CI",
        "",
    ]
    lines = [
        [
            e.name,
            f"{100 * e.mean:+.2f}",
            f"[{100 * e.low:+.2f}, {100 * e.high:+.2f}]",
            f"[{100 * e.boot_low:+.2f}, {100 * e.boot_high:+.2f}]",
            "excludes 0" if e.excludes_zero else "includes 0",
        ]
        for e in effects
    ]
    return _text_table(header, lines, title)
