"""MultiBox: class-agnostic box proposals from one pass of the Inception network (paper section 8).

GoogLeNet's detector adds "200 proposals" of MultiBox (Erhan, Szegedy, Toshev, Anguelov, "Scalable
Object Detection using Deep Neural Networks", CVPR 2014, arXiv:1312.2249) to Selective Search's.
One job per module, in the paper's notation (docs/detection.md, section "MultiBox"):

* :mod:`.priors`: normalised box coordinates, the k-means priors, the bipartite matching of ground
  truths to priors and the targets it gives;
* :mod:`.network`: the network (the GoogLeNet backbone and a head to ``K`` box residuals and ``K``
  confidence logits: ``pool``, one linear layer after the average pool, or ``grid``, a convolutional
  head over an Inception map whose cells carry the priors), its input and the layout of its output;
* :mod:`.loss`: ``F = F_conf + alpha F_match`` and the label tensors training reads it from;
* :mod:`.model`: :class:`MultiBox`, a trained model's boxes and proposals for an image;
* :mod:`.store`: the model folder (``model.safetensors`` + ``multibox.json``);
* :mod:`.data`: the training samples of a detection dataset;
* :mod:`.task`: :func:`multibox_task`, training with the classifier's loop, and its options;
  :func:`train_multibox`, the ``train-multibox`` command's job.

The proposals of a model folder for the detector are :func:`googlenet.detection.proposals.
multibox_proposals` (methods ``multibox`` and ``paper``).
"""

from .data import MultiBoxSamples, positive_share
from .loss import (
    DEFAULT_ALPHA,
    LABEL_COLUMNS,
    LABEL_INDEX,
    LABEL_MATCHED,
    LABEL_RESIDUAL,
    MultiBoxLoss,
    label_loss,
    multibox_loss,
)
from .model import DEFAULT_NMS_IOU, MultiBox
from .network import (
    DEFAULT_IMAGE_SIZE,
    HEADS,
    MultiBoxHead,
    MultiBoxNetwork,
    create_multibox_network,
    decode_boxes,
    grid_size,
    preprocess,
    split_outputs,
)
from .priors import (
    DEFAULT_NUM_PRIORS,
    encode_targets,
    fit_grid_priors,
    fit_priors,
    match_cost,
    match_priors,
    training_boxes,
)
from .store import MULTIBOX_MANIFEST, load_multibox, save_multibox
from .task import (
    MULTIBOX_RECIPE,
    MultiBoxOptions,
    check_new_run,
    multibox_task,
    resume_options,
    train_multibox,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NMS_IOU",
    "DEFAULT_NUM_PRIORS",
    "HEADS",
    "LABEL_COLUMNS",
    "LABEL_INDEX",
    "LABEL_MATCHED",
    "LABEL_RESIDUAL",
    "MULTIBOX_MANIFEST",
    "MULTIBOX_RECIPE",
    "MultiBox",
    "MultiBoxHead",
    "MultiBoxLoss",
    "MultiBoxNetwork",
    "MultiBoxOptions",
    "MultiBoxSamples",
    "check_new_run",
    "create_multibox_network",
    "decode_boxes",
    "encode_targets",
    "fit_grid_priors",
    "fit_priors",
    "grid_size",
    "label_loss",
    "load_multibox",
    "match_cost",
    "match_priors",
    "multibox_loss",
    "multibox_task",
    "positive_share",
    "preprocess",
    "resume_options",
    "save_multibox",
    "split_outputs",
    "train_multibox",
    "training_boxes",
]
