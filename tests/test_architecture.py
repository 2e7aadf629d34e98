"""The package's layers (docs/architecture.md): which package may import which, checked on the source.

Every ``import`` / ``from ... import`` of ``googlenet`` code, at module level or inside a function,
is resolved to its package and compared with :data:`ALLOWED`. A new dependency that breaks the
layering fails here, naming the file and the import. Two more rules on the same imports: no module
of ``src/googlenet`` and no script of ``benchmarks/`` takes part in an import cycle, and a command
module (``cli/*_cmd.py``) imports no other CLI module than ``cli/common.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "googlenet"

# Leaves: facts every layer may ask (no package imports of their own beyond errors).
FOUNDATION = {
    "errors", "atomic", "cache", "cost", "cpu", "device", "environment", "manifest", "parts", "progress",
    "runs", "version",
}  # fmt: skip
# package -> the packages (besides itself and FOUNDATION) it may import, lowest layer first.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "cache": set(),
    "cost": set(),
    "cpu": set(),
    "device": set(),
    "environment": set(),
    "manifest": set(),
    "parts": set(),
    "progress": set(),
    "version": set(),
    # runs owns the layouts and what --checkpoint names; loading them is training.loading's.
    "runs": set(),
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
    if src in FOUNDATION and dst in FOUNDATION:
        return src != "errors" and (dst != "runs" or src == "runs")  # runs is the leaves' top
    if src == dst or dst in FOUNDATION:
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
    assert not _allowed("googlenet.runs", "googlenet.training.loading")
    assert _allowed("googlenet.runs", "googlenet.manifest")


def _module_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports (function-level included).
    A name imported from a package resolves to the submodule when one has that name; importing one's
    own package's ``__init__`` (its re-exports) is not a dependency."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        named: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                named |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                module = node.module or ""
                if node.level:
                    module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
                named |= {module} | {f"{module}.{a.name}" for a in node.names}
        deps = set()
        for target in named:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            own_init = name.startswith(target + ".") and modules.get(target, Path()).name == "__init__.py"
            if target and target != name and not own_init:
                deps.add(target)
        graph[name] = deps
    return graph


def _script_graph(folder: Path) -> dict[str, set[str]]:
    """Each script of ``folder`` -> the sibling scripts it imports."""
    scripts = {p.stem: p for p in folder.glob("*.py")}
    graph = {}
    for name, path in scripts.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                deps.add(node.module.split(".")[0])
        graph[name] = {d for d in deps if d in scripts and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_package_or_the_benchmarks() -> None:
    cycles = _cycles(_module_graph()) + [
        [f"benchmarks/{m}.py" for m in c] for c in _cycles(_script_graph(PACKAGE.parents[1] / "benchmarks"))
    ]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_command_modules_import_only_the_cli_common_module() -> None:
    graph = _module_graph()
    bad = [
        f"{name} imports {dep}"
        for name, deps in sorted(graph.items())
        if name.startswith("googlenet.cli.") and name.endswith("_cmd")
        for dep in sorted(deps)
        if dep.startswith("googlenet.cli") and dep != "googlenet.cli.common"
    ]
    assert not bad, "command modules share through cli/common.py only:\n" + "\n".join(bad)
