"""What every benchmark shares: the result's schema check, the machine it ran on, markdown tables and
the docs section a result is rendered into.

Every script in ``benchmarks/`` measures, builds one result dict (``{"benchmark", "schema_version",
"command", "environment", ...}``: :func:`header`), checks it against its ``SCHEMA`` with
:func:`check_result` and writes it as JSON; the markdown in the docs is rendered from that JSON only
(the script's ``render(result)``; ``benchmarks/render.py`` finds it by the result's name), so a saved
result re-renders without measuring and the tests check the numbers, never the wording. The
explanations of each benchmark are written by hand in the docs, outside the generated sections.

Each result goes to its own section, one per benchmark and CPU kind (:func:`cpu_kind`: an AVX-512
CPU with bf16 and VNNI and an AVX2-only one choose different precisions and kernels, so their numbers
are not comparable), between markers ``<!-- NAME:start -->`` / ``<!-- NAME:end -->``; a script
rewrites only its own section.

A schema is a dict: ``key -> type`` (``str``, ``int``, ``float``, ``bool``), a nested schema dict, or
a one-item list ``[item]`` for a list of such items; a key ending in ``?`` is optional; ``dict`` alone
accepts any mapping.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from googlenet import cpu
from googlenet.atomic import atomic_write_text
from googlenet.environment import environment as library_environment

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOCS = ROOT / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n"
# Set by the user to make this CPU behave as another kind (docs/inference.md): a run with any of them
# is recorded as emulated.
EMULATION_ENV = (cpu.FEATURES_ENV, "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")

ENVIRONMENT_SCHEMA: dict[str, Any] = {
    "date": str,  # "YYYY-MM-DD HH:MM UTC"
    "cpu": str,
    "cpu_features": [str],
    "cpu_kind": str,
    "emulation": {"?": str},  # the variables of EMULATION_ENV that were set, with their values
    "cores": int,
    "torch_threads": int,
    "versions": {"?": str},  # torch, torchvision, python, onnxruntime, ...
    "git_commit?": str,  # the package's commit, where it ran from a git checkout
    "load_average": [float],
    "load_average_after?": [float],
    "accelerator?": str,
}
COMMON_SCHEMA: dict[str, Any] = {
    "benchmark": str,
    "schema_version": int,
    "command": str,
    "source?": str,  # who measured it where it was not this script's run (e.g. a user, on their machine)
    "environment": ENVIRONMENT_SCHEMA,
}


class SchemaError(ValueError):
    pass


def check(value: Any, schema: Any, path: str = "result") -> None:
    """Raise :class:`SchemaError` naming the first place where ``value`` does not follow ``schema``.

    A schema dict with the single key ``"?"`` is a mapping of any keys to that item schema.
    """
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        if set(schema) == {"?"}:
            for key, item in value.items():
                check(item, schema["?"], f"{path}.{key}")
            return
        known = {k.rstrip("?") for k in schema}
        extra = sorted(set(value) - known)
        if extra:
            raise SchemaError(f"{path}: unexpected key {extra[0]!r} (known: {', '.join(sorted(known))})")
        for key, item in schema.items():
            name = key.rstrip("?")
            if name in value:
                check(value[name], item, f"{path}.{name}")
            elif not key.endswith("?"):
                raise SchemaError(f"{path}: missing key {name!r}")
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check(item, schema[0], f"{path}[{i}]")
    elif schema is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{path}: expected a number, got {value!r}")
    elif schema is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{path}: expected an integer, got {value!r}")
    elif schema is dict:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
    elif not isinstance(value, schema):
        raise SchemaError(f"{path}: expected {schema.__name__}, got {value!r}")


def check_result(result: Mapping[str, Any], name: str, version: int, schema: Mapping[str, Any]) -> None:
    """The common fields, the benchmark's name and schema version, then its own fields."""
    if result.get("benchmark") != name:
        raise SchemaError(f"result.benchmark: expected {name!r}, got {result.get('benchmark')!r}")
    if result.get("schema_version") != version:
        raise SchemaError(
            f"result.schema_version: {result.get('schema_version')!r}; this renderer reads version {version} "
            f"of {name} (re-run the benchmark)"
        )
    check(result, {**COMMON_SCHEMA, **schema})


def header(name: str, version: int, command: str, env: dict[str, Any]) -> dict[str, Any]:
    """The fields of :data:`COMMON_SCHEMA` that every result starts with."""
    return {"benchmark": name, "schema_version": version, "command": command, "environment": env}


# --------------------------------------------------------------------------- environment


def cpu_kind(features: Sequence[str], emulated: bool = False) -> str:
    """``avx512-bf16-vnni``, ``avx2``, ...: the widest vector ISA, then native bf16 and VNNI, which decide
    the fast precisions (:mod:`googlenet.cpu`); ``-emulated`` where the features were limited on purpose."""
    found = set(features)
    isa = "avx512" if "avx512f" in found else "avx2" if "avx2" in found else "baseline"
    parts = [isa]
    if found & {"avx512_bf16", "amx_bf16"}:
        parts.append("bf16")
    if found & {"avx512_vnni", "avx_vnni"}:
        parts.append("vnni")
    if emulated:
        parts.append("emulated")
    return "-".join(parts)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: a busy machine slows every contender of a run."""
    return [round(x, 2) for x in os.getloadavg()]


def environment(device: str | torch.device | None = None, **versions: str) -> dict[str, Any]:
    """The machine of a result: the library's record (:func:`googlenet.environment.environment`: CPU
    name, torch threads, versions, the device and the git commit) in :data:`ENVIRONMENT_SCHEMA`'s
    shape, and what a benchmark adds: the date, the CPU's features and kind (the variables that
    emulate another kind included), its usable cores and the load before measuring. ``versions``:
    the other libraries a benchmark runs (onnxruntime, ...); ``device`` a CUDA device, recorded as
    the accelerator with the CUDA version."""
    info = library_environment(device=device, world_size=1, backend=None)
    emulation = {k: os.environ[k] for k in EMULATION_ENV if k in os.environ}
    features = sorted(cpu.cpu_features())
    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": info["cpu"],
        "cpu_features": features,
        "cpu_kind": cpu_kind(features, emulated=bool(emulation)),
        "emulation": emulation,
        "cores": cpu.cpu_count(),
        "torch_threads": info["torch_threads"],
        "versions": {
            "torch": info["torch"],
            "torchvision": info["torchvision"],
            "python": info["python"],
            **({"cuda": str(info["cuda"])} if "cuda" in info else {}),
            **versions,
        },
        "load_average": load_average(),
    }
    if info["git_commit"]:
        env["git_commit"] = info["git_commit"]
    if "cuda" in info:
        env["accelerator"] = info["device_name"]
    return env


def shown_command(script: str, argv: Sequence[str], hidden: Sequence[str] = ("--json", "--docs")) -> str:
    """The command for the docs: the measuring flags, without where the output went (``hidden``)."""
    shown: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in hidden:
            skip = True
        elif a not in ("--write-docs", "--no-docs") and not a.startswith(tuple(f"{h}=" for h in hidden)):
            shown.append(a)
    return " ".join(["python", f"benchmarks/{script}", *shown])


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the rendered result."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- markdown


@dataclass(frozen=True)
class Column:
    """One table column: its header, how a row gives its cell, right-aligned (numbers) or not."""

    header: str
    cell: Callable[[Mapping[str, Any]], str]
    numeric: bool = True


def field(key: str, fmt: str = "{:.2f}", missing: str = "-") -> Callable[[Mapping[str, Any]], str]:
    return lambda row: missing if row.get(key) is None else fmt.format(row[key])


def text(key: str) -> Column:
    return Column(key, lambda row: str(row.get(key) or ""), numeric=False)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    lines = [
        "| " + " | ".join(c.header for c in columns) + " |",
        "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(c.cell(row) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(result: Mapping[str, Any]) -> str:
    """Who ran what where: the line above every generated table."""
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if k != "python")
    load = ", ".join(f"{x:.1f}" for x in env["load_average"]) or "not recorded"
    after = env.get("load_average_after")
    load += f" before, {', '.join(f'{x:.1f}' for x in after)} after" if after else ""
    emulated = ""
    if env["emulation"]:
        emulated = (
            " **Emulated**: run on another CPU with "
            + " ".join(f"`{k}={v}`" for k, v in env["emulation"].items())
            + ", so the package and PyTorch's kernels behave as on this kind; the runtimes' own kernels "
            "(onnxruntime, OpenVINO) still pick theirs by cpuid."
        )
    source = f" {result['source'].rstrip('.')}." if result.get("source") else ""
    accelerator = f", {env['accelerator']}" if env.get("accelerator") else ""
    return (
        f"**{env['cpu']}** (features: {', '.join(env['cpu_features']) or 'none'}; kind `{env['cpu_kind']}`), "
        f"{env['cores']} cores, {env['torch_threads']} torch thread(s){accelerator}; "
        f"{versions + '; ' if versions else ''}{env['date']}; load average (1/5/15 min) {load}."
        f"{source}{emulated}\n\n"
        f"Command: `{result['command']}`"
    )


# --------------------------------------------------------------------------- docs sections and files


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def section_name(result: Mapping[str, Any]) -> str:
    """One section per benchmark and CPU kind (``inference avx2``), or per accelerator where one ran it."""
    env = result["environment"]
    where = env.get("accelerator") or env["cpu_kind"]
    return f"{result['benchmark']} {re.sub(r'[^a-z0-9.]+', '-', where.lower()).strip('-')}"


def write_section(name: str, body: str, path: Path = DOCS) -> Path:
    """Replace the ``name`` section of ``path`` with ``body``, leaving the rest alone. A new section goes
    after the last one of the same benchmark (the first word of ``name``), else at the end. The file is
    re-read just before the atomic write, since other scripts own the other sections."""
    start, end = markers(name)
    text_ = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text_ and end in text_:
        text_ = text_[: text_.index(start)] + block + text_[text_.index(end) + len(end) :]
    else:
        siblings = list(re.finditer(rf"<!-- {re.escape(name.split()[0])} [^>]*:end -->", text_))
        if siblings:
            at = siblings[-1].end()
            text_ = text_[:at] + "\n\n" + block + text_[at:]
        else:
            text_ = text_.rstrip("\n") + "\n\n" + block + "\n"
    return atomic_write_text(path, text_)


def section(path: Path, name: str) -> str | None:
    """The body of section ``name`` of ``path`` as :func:`write_section` wrote it, or None."""
    start, end = markers(name)
    text_ = path.read_text(encoding="utf-8")
    if start not in text_ or end not in text_:
        return None
    return text_.split(start, 1)[1].split(end, 1)[0].strip()


def write_json(path: Path, result: Mapping[str, Any]) -> Path:
    """A result as indented JSON, written atomically (a killed run leaves the old file whole)."""
    return atomic_write_text(path, json.dumps(result, indent=1) + "\n")


def output_flags(parser: argparse.ArgumentParser) -> None:
    """``--no-docs``, ``--docs FILE`` and ``--json FILE``: where a benchmark that writes its docs section
    by default puts its result."""
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the markdown file to update")
    parser.add_argument("--json", type=Path, default=None, help="write the result here (schema: SCHEMA)")


def publish(result: Mapping[str, Any], body: str, json_path: Path | None, docs: Path | None) -> None:
    """Print ``body``, the result's rendering, then write the result as JSON and/or ``body`` as its
    section of ``docs``. A script renders first (``publish(result, render(result), ...)``): its
    ``render`` checks the schema, so a result that does not follow it writes nothing."""
    print(body)
    if json_path is not None:
        write_json(json_path, result)
    if docs is not None:
        write_section(section_name(result), body, docs)
