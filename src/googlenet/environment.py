"""What produced a result: library versions, the machine, the device, the command and the git commit.

A training run records it in ``env.json`` (:func:`googlenet.training.train.open_run_dir`), so that a
number in ``metrics.jsonl`` can be traced to the software and hardware that gave it; benchmarks
record the same facts beside their timings. The CPU's name comes from :mod:`googlenet.cpu`, the one
owner of CPU facts.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .cpu import cpu_name

__all__ = ["environment", "git_commit"]


def environment(
    device: str | torch.device | None = None, world_size: int = 1, backend: str | None = None
) -> dict[str, Any]:
    """This process's versions (Python, torch, torchvision), platform, hostname, CPU name, the
    machine's logical CPUs (``cpu_count``), torch's thread count, the ``device`` it runs on (default
    the CPU) and its name, the ``world_size`` and distributed ``backend`` of its run, the package's
    git commit (None outside a checkout), ``sys.argv``, and the CUDA version on a CUDA device."""
    import torchvision

    device = torch.device(device if device is not None else "cpu")
    cpu = cpu_name()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
        "backend": backend,
        "git_commit": git_commit(),
        "argv": list(sys.argv),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def git_commit() -> str | None:
    """The commit of the git checkout this package runs from; None when it is not in one (an
    installed wheel) or git is missing."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
