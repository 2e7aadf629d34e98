"""The optional packages some features need, and the pip extra (pyproject.toml) that installs each.

``pip install googlenet`` runs the network on torch alone; ONNX export and the onnxruntime /
OpenVINO backends need packages installed with an extra. A feature asks :func:`missing` (a reason,
or None) or :func:`require` (raises) before it imports them, so that a user without the extra reads
one line naming what is missing and the command that installs it, never a ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib

from ..errors import GoogLeNetError

__all__ = ["EXTRAS", "install_hint", "missing", "require"]

# module -> the extra of pyproject.toml's [project.optional-dependencies] that installs it
EXTRAS: dict[str, str] = {
    "onnx": "onnx",
    "onnxscript": "onnx",  # torch.onnx.export's dynamo exporter
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",  # OpenVINO's int8 quantisation
    "pycocotools": "detection",  # the COCO detection rule
}


def install_hint(module: str) -> str:
    """The command that installs ``module`` with this package."""
    return f"pip install 'googlenet[{EXTRAS[module]}]'"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def missing(feature: str, *modules: str) -> str | None:
    """None when every one of ``modules`` imports, else one line: what ``feature`` needs and how to
    install it (the first missing module)."""
    for module in modules:
        if not _importable(module):
            return f"{feature} needs the {module} package, which is not installed: {install_hint(module)}"
    return None


def require(feature: str, *modules: str) -> None:
    """Raise :class:`~googlenet.errors.GoogLeNetError` with :func:`missing`'s line, if there is one."""
    reason = missing(feature, *modules)
    if reason is not None:
        raise GoogLeNetError(reason)
