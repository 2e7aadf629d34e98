"""Foreign GoogLeNet weights in: torchvision's port and the original BVLC Caffe model.

:func:`load_torchvision` gives the torchvision-compatible variant ``googlenet_tv``;
:func:`load_caffe` gives the paper's network ``googlenet`` (section 5, Table 1) from BVLC's
reproduction. The ``import_*`` forms also return an :class:`ImportReport` (what was imported,
auxiliary heads or not). Save the result with :func:`googlenet.save`, or run
``googlenet convert {torchvision,caffe} SRC -o OUT.safetensors``.
"""

from .caffe import caffe_layer_map, import_caffe, load_caffe
from .common import ImportReport, file_sha256
from .torchvision import import_torchvision, load_torchvision

__all__ = [
    "ImportReport",
    "caffe_layer_map",
    "file_sha256",
    "import_caffe",
    "import_torchvision",
    "load_caffe",
    "load_torchvision",
]
