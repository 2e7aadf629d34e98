"""``auto``: measure the candidate backend / precision pairs, keep the fastest, say why, cache it.

Each candidate is built and timed on a random batch (one warm-up call, then the median of
:data:`REPEATS` calls). The float candidates (fp32, bf16) compete on speed alone: they compute the
same network up to rounding. int8 changes predictions, so it is a candidate only when the caller
gave calibration images, and it is taken only when both hold:

- it is faster than the best float candidate by more than timing noise: its time times
  :func:`required_speedup` (at least :data:`INT8_MIN_SPEEDUP`, more when the repeats spread more)
  must be below the float time;
- its top-1 agreement with fp32 on the calibration images is at least
  :data:`googlenet.inference.int8.MIN_AGREEMENT`.

Otherwise the best float candidate is kept and :attr:`Choice.reason` says why. The choice (with
its timings and reason) is cached in ``cache_dir() / CACHE_FILE`` per model, image size, batch,
threads, candidates, calibration data and machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cache import cache_dir
from ..cpu import cpu_count, cpu_features, cpu_name
from ..models.model import GoogLeNet
from .backends import Runner
from .int8 import MIN_AGREEMENT, agreement

BATCH = 16  # the batch auto times the candidates on, unless told otherwise
REPEATS = 3
# int8 must be at least 10% faster than the best float candidate. Why 10%: 8 medians-of-3 of one
# OpenVINO fp32 predictor (batch 16, 96 px) on the 2-core development machine at load average 7
# ranged over 7% (max / min); int8 costs accuracy, and a gain inside that noise is no gain. The
# torch backend's medians ranged over 1.9x there (its OpenMP pool suffers most from other
# processes), which is why the margin also grows with the spread of the repeats being compared.
INT8_MIN_SPEEDUP = 1.10
CACHE_FILE = "inference_auto.json"
CACHE_VERSION = 2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate: the median, and the relative spread ``(max - min) / median``."""

    seconds: float
    spread: float


@dataclass
class Choice:
    """What auto chose, what it measured and why."""

    backend: str
    precision: str
    runner: Runner | None
    reason: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per call, "backend/precision"
    agreement: float | None = None  # int8's top-1 agreement with fp32, when measured
    from_cache: bool = False


def time_runner(run: Callable[[torch.Tensor], Any], batch: torch.Tensor, repeats: int = REPEATS) -> Timing:
    """The median and spread of ``repeats`` timed calls after one warm-up call."""
    run(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return Timing(median, (max(times) - min(times)) / median if median > 0 else 0.0)


def required_speedup(int8: Timing, best_float: Timing) -> float:
    """How much faster int8 must be to count as faster: the fixed margin, or the noise seen now."""
    return max(INT8_MIN_SPEEDUP, 1 + int8.spread + best_float.spread)


def machine_key() -> str:
    """What makes a timing valid elsewhere: CPU, its features, cores, library versions."""
    parts = [cpu_name(), ",".join(sorted(cpu_features())), str(cpu_count()), f"torch {torch.__version__}"]
    for name in ("onnxruntime", "openvino"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} absent")
    return " | ".join(parts)


def tensors_digest(batches: list[torch.Tensor] | None) -> str | None:
    """A short hash of the calibration images (int8's agreement depends on them)."""
    if not batches:
        return None
    digest = hashlib.sha256()
    for b in batches:
        digest.update(b.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_key(model: GoogLeNet, candidates: list[tuple[str, str]], **settings: Any) -> str:
    desc = {
        "variant": model.meta.variant,
        "num_classes": model.num_classes,
        "config": hashlib.sha256(repr(model.config).encode()).hexdigest()[:12],
        "machine": machine_key(),
        "candidates": sorted(f"{b}/{p}" for b, p in candidates),
        **settings,
    }
    return json.dumps(desc, sort_keys=True)


def read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    from ..atomic import atomic_write_text

    try:
        data = read_cache(path) or {"version": CACHE_VERSION, "choices": {}}
        data.setdefault("choices", {})[key] = entry
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only home must not stop inference
        log.warning("could not write the auto-choice cache %s: %s", path, exc)


def _name(backend: str, precision: str) -> str:
    return f"{backend}/{precision}"


def choose(
    candidates: list[tuple[str, str]],
    build: Callable[[str, str], Runner],
    *,
    image_size: int,
    batch: int = BATCH,
    calibration: list[torch.Tensor] | None = None,
    reference: Callable[[], list[torch.Tensor]] | None = None,
    cache: str | None = None,
) -> Choice:
    """Measure ``candidates`` (pairs ``(backend, precision)``) built by ``build`` and choose.

    ``reference()`` gives the fp32 logits of the ``calibration`` batches (needed when an int8
    candidate is present). ``cache`` is the cache key, None to always measure.
    """
    path = cache_dir() / CACHE_FILE
    if cache is not None:
        entry = read_cache(path).get("choices", {}).get(cache)
        if entry and (entry.get("backend"), entry.get("precision")) in candidates:
            log.info("auto: %s/%s (cached in %s)", entry["backend"], entry["precision"], path)
            return Choice(
                entry["backend"],
                entry["precision"],
                None,
                f"cached: {entry.get('reason', 'measured earlier')}",
                dict(entry.get("timings", {})),
                entry.get("agreement"),
                from_cache=True,
            )
    dummy = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    runners: dict[str, Runner] = {}
    timing: dict[str, Timing] = {}
    for backend, precision in candidates:
        name = _name(backend, precision)
        runners[name] = build(backend, precision)
        timing[name] = time_runner(runners[name], dummy)
    floats = [_name(b, p) for b, p in candidates if p != "int8"]
    int8 = [_name(b, p) for b, p in candidates if p == "int8"]
    best = min(floats, key=lambda n: timing[n].seconds) if floats else int8[0]
    rate = {n: batch / t.seconds for n, t in timing.items()}
    reason = (
        f"fastest of {len(floats)} float candidates ({rate[best]:.1f} images/s)"
        if len(floats) > 1
        else f"the only float candidate ({rate[best]:.1f} images/s)"
    )
    measured_agreement = None
    if int8 and floats:
        name = int8[0]
        need = required_speedup(timing[name], timing[best])
        speedup = timing[best].seconds / timing[name].seconds
        if speedup < need:
            reason += (
                f"; {name} was {speedup:.2f}x its speed, below the {need:.2f}x that counts as faster "
                "than timing noise"
            )
        else:
            assert calibration and reference is not None
            measured_agreement = agreement(runners[name], reference(), calibration)
            if measured_agreement < MIN_AGREEMENT:
                reason += (
                    f"; {name} was {speedup:.2f}x faster but agreed with fp32 on only "
                    f"{measured_agreement:.1%} of the calibration images (< {MIN_AGREEMENT:.0%})"
                )
            else:
                reason = (
                    f"{speedup:.2f}x faster than {best} (>= {need:.2f}x) and {measured_agreement:.1%} top-1 "
                    f"agreement with fp32 on the calibration images (>= {MIN_AGREEMENT:.0%})"
                )
                best = name
    backend, precision = best.split("/")
    timings = {n: t.seconds for n, t in timing.items()}
    log.info(
        "auto: %s (%s; measured: %s)", best, reason, ", ".join(f"{n} {r:.1f}/s" for n, r in rate.items())
    )
    if cache is not None:
        write_cache(
            path,
            cache,
            {
                "backend": backend,
                "precision": precision,
                "reason": reason,
                "timings": timings,
                "agreement": measured_agreement,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    return Choice(backend, precision, runners[best], reason, timings, measured_agreement)
