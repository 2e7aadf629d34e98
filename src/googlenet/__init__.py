"""googlenet: GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2014), complete.

The network in three variants (:func:`create_model`), the paper's training recipe (:func:`fit`),
its test protocol (:func:`evaluate` -> :class:`EvaluationResult`, Table 3; :func:`multicrop`,
:mod:`googlenet.evaluation.protocol`), the classes of images (:func:`predict`), weights in and out
(:func:`load`, :func:`save`, :func:`load_caffe`, :func:`load_torchvision`) and inference backends
(:class:`Predictor`). The heavier entry points are imported on first use.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .models.model import GoogLeNet, GoogLeNetOutputs, ModelMeta
    from .models.registry import create_model, list_models
    from .models.spec import GoogLeNetConfig
    from .weights.store import load_weights as load
    from .weights.store import save_weights as save

# name -> module that defines it; imported on first use, so that `import googlenet` (and the
# command line, which a Ctrl-C may stop while torch loads) imports no torch.
_LAZY = {
    "GoogLeNet": "googlenet.models.model",
    "GoogLeNetOutputs": "googlenet.models.model",
    "ModelMeta": "googlenet.models.model",
    "create_model": "googlenet.models.registry",
    "list_models": "googlenet.models.registry",
    "GoogLeNetConfig": "googlenet.models.spec",
    "fit": "googlenet.training.train",
    "TrainConfig": "googlenet.training.config",
    "multicrop": "googlenet.data.multicrop",
    "Predictor": "googlenet.inference.predictor",
    "load_caffe": "googlenet.weights.importers",
    "load_torchvision": "googlenet.weights.importers",
    "evaluate": "googlenet.evaluation.evaluate",
    "EvaluationResult": "googlenet.evaluation.result",
    "predict": "googlenet.evaluation.predict",
}

__all__ = [
    "EvaluationResult",
    "GoogLeNet",
    "GoogLeNetConfig",
    "GoogLeNetOutputs",
    "ModelMeta",
    "Predictor",
    "TrainConfig",
    "__version__",
    "create_model",
    "evaluate",
    "fit",
    "list_models",
    "load",
    "load_caffe",
    "load_torchvision",
    "multicrop",
    "predict",
    "save",
]


# The weights store's functions under their short names.
_RENAMED = {
    "load": ("googlenet.weights.store", "load_weights"),
    "save": ("googlenet.weights.store", "save_weights"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _RENAMED:
        module, attribute = _RENAMED[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'googlenet' has no attribute {name!r}")
