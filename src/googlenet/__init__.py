"""googlenet: GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2014), complete.

The network in three variants (:func:`create_model`), its Table 1 from the live model
(:func:`googlenet.summary.summarize`), and the built-in dataset (:mod:`googlenet.data.builtin`).
"""

from .model import GoogLeNet, GoogLeNetOutputs, ModelMeta
from .registry import create_model, list_models
from .spec import GoogLeNetConfig
from .weights import load_weights as load
from .weights import save_weights as save

__version__ = "0.1.0"

__all__ = [
    "GoogLeNet",
    "GoogLeNetConfig",
    "GoogLeNetOutputs",
    "ModelMeta",
    "__version__",
    "create_model",
    "list_models",
    "load",
    "save",
]
