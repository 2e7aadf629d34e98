"""googlenet.cpu (CPU facts and the GOOGLENET_CPU_FEATURES override) and googlenet.device (--device)."""

from __future__ import annotations

from pathlib import Path

import pytest

from googlenet import cpu
from googlenet.device import resolve_device
from googlenet.errors import GoogLeNetError

# Two /proc/cpuinfo excerpts: Zen 1 (AVX2 only, the CPU of issue 13) and Zen 4 (bf16 + VNNI).
ZEN1 = "processor\t: 0\nmodel name\t: AMD EPYC 7551\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n"
ZEN4 = (
    "processor\t: 0\nmodel name\t: AMD EPYC 9654\n"
    "flags\t\t: fpu sse2 avx fma avx2 avx512f avx512_vnni avx512_bf16 avx512vl\n"
)


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def use(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(cpu, "_CPUINFO", path)

    monkeypatch.delenv(cpu.FEATURES_ENV, raising=False)
    return use


def test_features_come_from_cpuinfo(cpuinfo) -> None:
    cpuinfo(ZEN1)
    assert cpu.cpu_name() == "AMD EPYC 7551"
    assert cpu.cpu_features() == {"avx2", "fma"}
    assert not cpu.native_bf16() and not cpu.has_vnni()
    cpuinfo(ZEN4)
    assert cpu.cpu_features() == {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert cpu.native_bf16() and cpu.has_vnni()
    assert "avx512_bf16" in cpu.describe() and "AMD EPYC 9654" in cpu.describe()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("avx2", {"avx2"}),
        ("avx2,fma", {"avx2", "fma"}),
        ("AVX2 avx512_bf16", {"avx2", "avx512_bf16"}),
        ("none", set()),
    ],
)
def test_override_only_removes_features(
    cpuinfo, monkeypatch: pytest.MonkeyPatch, limit: str, expected: set
) -> None:
    cpuinfo(ZEN4)
    monkeypatch.setenv(cpu.FEATURES_ENV, limit)
    assert cpu.cpu_features() == expected
    assert cpu.has_vnni() is False
    assert cpu.native_bf16() is ("avx512_bf16" in expected)


def test_override_cannot_add_what_the_cpu_lacks(cpuinfo, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo(ZEN1)
    monkeypatch.setenv(cpu.FEATURES_ENV, "avx2,avx512_bf16,avx512_vnni")
    assert cpu.cpu_features() == {"avx2"} and not cpu.native_bf16() and not cpu.has_vnni()


def test_cpu_count_is_this_process_affinity() -> None:
    import os

    assert 1 <= cpu.cpu_count() <= (os.cpu_count() or 1)


def test_training_precision_asks_the_same_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from googlenet.training.engine import bf16_native

    monkeypatch.setenv(cpu.FEATURES_ENV, "avx2")
    assert not bf16_native(torch.device("cpu"))
    monkeypatch.delenv(cpu.FEATURES_ENV)
    assert bf16_native(torch.device("cpu")) == cpu.native_bf16()


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", ""):
        with pytest.raises(GoogLeNetError, match="unknown device") as info:
            resolve_device(bad)
        assert repr(bad) in str(info.value) and "cpu" in str(info.value)
    with pytest.raises(GoogLeNetError, match="not supported here"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(GoogLeNetError, match="CUDA is not available"):
            resolve_device("cuda:1")
