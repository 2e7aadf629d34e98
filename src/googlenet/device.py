"""Which torch device a ``--device`` string names: one validator for every command that takes one.

``auto`` is CUDA where available, else the CPU. Anything torch cannot parse (``gpu``), a CUDA
device without CUDA, or a CUDA index beyond the visible devices is a one-line error naming the
value and what to pass, before any work starts.
"""

from __future__ import annotations

from .errors import GoogLeNetError

CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(text: str) -> str:
    """``text`` as a canonical device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``), checked here."""
    import torch

    text = str(text).strip()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise GoogLeNetError(f"unknown device {text!r}: pass {CHOICES}") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise GoogLeNetError(f"device {text!r} is not supported here: pass {CHOICES}")
    if not torch.cuda.is_available():
        raise GoogLeNetError(f"device {text!r} requested but CUDA is not available: pass --device cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise GoogLeNetError(
            f"device {text!r}: only {count} CUDA device(s) visible (cuda:0 to cuda:{count - 1})"
        )
    return str(device)
