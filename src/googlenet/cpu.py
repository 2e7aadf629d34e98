"""What this process's CPU offers: its name, usable cores and the instruction-set features that decide
which precisions are fast here (the single owner of these facts for training and inference).

``native_bf16()`` decides whether bf16 autocast (training, :mod:`googlenet.training.engine`) and
bf16 inference (:mod:`googlenet.inference`) are worth running: without AVX512-BF16 or AMX, bf16 is
emulated and slower than fp32. ``has_vnni()`` decides the int8 format: x86 int8 kernels without
VNNI multiply u8 x s8 pairs into saturating 16-bit sums, so int8 there quantises differently
(:mod:`googlenet.inference.int8`).

``GOOGLENET_CPU_FEATURES`` (comma- or space-separated, e.g. ``avx2``) limits the detected set to
the listed features, so tests and benchmarks can run as on a CPU without bf16 / VNNI. It only
removes features: listing one the CPU lacks does not add it. ``none`` (or an empty value) removes
all of them. Combine it with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` to make
PyTorch's own kernels behave as on such a CPU too (docs/inference.md).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

FEATURES_ENV = "GOOGLENET_CPU_FEATURES"
# The features this package's decisions depend on, by their /proc/cpuinfo flag names.
KNOWN_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``platform.processor()`` elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _detected_features() -> set[str]:
    flags = _cpuinfo_field("flags")
    if flags is not None:
        return set(flags.split()) & set(KNOWN_FEATURES)
    # No /proc/cpuinfo (macOS, Windows): ask PyTorch, which reads cpuid itself.
    import torch

    found = set()
    capability = str(torch.backends.cpu.get_cpu_capability()).lower()
    if capability.startswith(("avx2", "avx512")):
        found |= {"avx2", "fma"}
    if capability.startswith("avx512"):
        found.add("avx512f")
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        found.add("avx512_bf16")
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        found |= {"amx_tile", "amx_bf16"}
    if getattr(torch.cpu, "_is_avx512_vnni_supported", lambda: False)():
        found.add("avx512_vnni")
    return found


def cpu_features() -> set[str]:
    """The CPU's features among :data:`KNOWN_FEATURES`, limited by ``$GOOGLENET_CPU_FEATURES``."""
    found = _detected_features()
    limit = os.environ.get(FEATURES_ENV)
    if limit is not None:
        allowed = {f for f in re.split(r"[\s,]+", limit.strip().lower()) if f and f != "none"}
        found &= allowed
    return found


def native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere it is emulated, slow."""
    return bool(cpu_features() & {"avx512_bf16", "amx_bf16"})


def has_vnni() -> bool:
    """True where the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    return bool(cpu_features() & {"avx512_vnni", "avx_vnni"})


def describe() -> str:
    """One line for logs and benchmark tables: name, cores and the features that matter here."""
    features = sorted(cpu_features())
    return f"{cpu_name()}, {cpu_count()} cores, features: {', '.join(features) or 'none'}"
