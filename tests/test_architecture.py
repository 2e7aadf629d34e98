"""The package's layers (docs/architecture.md): which package may import which, checked on the source.

Every ``import`` / ``from ... import`` of ``googlenet`` code, at module level or inside a function,
is resolved to its package and compared with :data:`ALLOWED`. A new dependency that breaks the
layering fails here, naming the file and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "googlenet"

# Leaves: facts every layer may ask (no package imports of their own beyond errors).
FOUNDATION = {"errors", "atomic", "cache", "cpu", "device", "environment", "runs"}
# package -> the packages (besides itself and FOUNDATION) it may import, lowest layer first.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "cache": set(),
    "cpu": set(),
    "device": set(),
    "environment": set(),
    # runs owns the layouts; ModelRef.load reaches up (lazily) to the loaders of the files it names.
    "runs": {"weights", "training"},
    "models": set(),
    "weights": {"models"},
    "data": {"models"},
    "inference": {"models", "weights", "data"},
    # training reads top-k from the one metrics module (evaluation.metrics), nothing else of evaluation.
    "training": {"models", "weights", "data", "inference", "evaluation.metrics"},
    "evaluation": {"models", "weights", "data", "inference", "training"},
    "detection": {"models", "weights", "data", "inference", "training", "evaluation"},
    "cli": {"models", "weights", "data", "inference", "training", "evaluation", "detection"},
    "__init__": {"models", "weights", "data", "inference", "training", "evaluation"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _existing(module: str, fallback: str) -> str:
    """``module`` when it is a module of the package, else ``fallback`` (a name defined in it)."""
    path = PACKAGE.parent / Path(*module.split("."))
    return module if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else fallback


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute googlenet module) for every googlenet import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:
                # "from . import x": x may be a module
                found += [(node.lineno, _existing(f"{target}.{a.name}", target)) for a in node.names]
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in found if t == "googlenet" or t.startswith("googlenet.")]


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _allowed(source: str, target: str) -> bool:
    src, dst = _layer(source), _layer(target)
    if dst == "__init__":
        return src in {"cli", "__init__"}  # the version string; nothing else imports the top package
    if src == dst or dst in FOUNDATION - {"runs"} or (dst == "runs" and src not in {"errors", "atomic"}):
        return True
    allowed = ALLOWED.get(src, set())
    sub = ".".join(target.split(".")[1:3])
    return dst in allowed or sub in allowed


def test_every_import_respects_the_layers() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        for line, target in _imports(path):
            if not _allowed(source, target):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target}")
    assert not bad, "imports that break docs/architecture.md:\n" + "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # The rule itself: a model module importing training would be refused.
    assert not _allowed("googlenet.models.model", "googlenet.training.engine")
    assert not _allowed("googlenet.inference.predictor", "googlenet.detection.boxes")
    assert not _allowed("googlenet.training.train", "googlenet.evaluation.report")
    assert _allowed("googlenet.training.train", "googlenet.evaluation.metrics")
    assert _allowed("googlenet.detection.proposals", "googlenet.training.engine")
