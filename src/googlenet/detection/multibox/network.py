"""The MultiBox network: what goes in (the warped image), how it is built, and what comes out.

Erhan et al. 2014 (arXiv:1312.2249) predict ``K`` boxes and ``K`` confidences from one pass of a
classification network; GoogLeNet's detector uses the Inception network for it (paper section 8).
Here that is the GoogLeNet backbone up to inception5b (``forward_features``, N x 1024 x 7 x 7 at
224 px), average pooling and one linear layer to ``K * 4`` box residuals and ``K`` confidence logits
(``c_i = sigmoid(logit_i)``). It is a :class:`~googlenet.models.model.GoogLeNet` with
``num_classes = 5 K`` and no auxiliary heads, so :mod:`googlenet.weights.store` saves and checks it
like any other model. The output's first ``4 K`` entries are the residuals (prior-major,
``x1 y1 x2 y2``), the last ``K`` the logits: :func:`split_outputs` is the one place that reads that
layout, :func:`create_multibox_network` the one place that builds the head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...data.config import DataConfig
from ...data.transforms import interpolation_mode
from ...errors import GoogLeNetError
from ...models.model import GoogLeNet
from ...models.registry import create_model

__all__ = ["DEFAULT_IMAGE_SIZE", "create_multibox_network", "decode_boxes", "preprocess", "split_outputs"]

DEFAULT_IMAGE_SIZE = 224  # section 5: the network's receptive field


def create_multibox_network(
    num_priors: int,
    *,
    model: str = "googlenet",
    confidence_start: float | None = None,
    **model_overrides: Any,
) -> GoogLeNet:
    """A GoogLeNet whose classifier predicts ``num_priors`` boxes (``5 K`` outputs), no auxiliary heads.

    ``model`` and ``model_overrides`` are :func:`~googlenet.models.registry.create_model`'s (a trained
    backbone is loaded afterwards: ``--init-from``, :func:`.task.multibox_task`). The residual outputs
    start at zero, so every box starts at its prior. ``confidence_start`` (the share of priors
    matched per image, :func:`.data.positive_share`) sets the confidence biases so that every
    ``c_i`` starts there, as RetinaNet (Lin et al. 2017) initialises its classifier: with
    ``c_i = 1/2`` the ``K`` unmatched terms would dominate the first steps.
    """
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    net = create_model(model, num_classes=5 * num_priors, aux_logits=False, **model_overrides)
    with torch.no_grad():
        net.fc.weight[: 4 * num_priors].zero_()
        net.fc.bias[: 4 * num_priors].zero_()
        if confidence_start is not None and 0.0 < confidence_start < 1.0:
            net.fc.bias[4 * num_priors :] = math.log(confidence_start / (1.0 - confidence_start))
    net.meta.class_names = None
    net.meta.extra = {"multibox_priors": str(num_priors)}
    return net


def split_outputs(outputs: torch.Tensor, num_priors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's N x 5K output -> residuals N x K x 4 and confidence logits N x K."""
    if outputs.shape[-1] != 5 * num_priors:
        raise ValueError(f"{num_priors} priors need {5 * num_priors} outputs. Got {outputs.shape[-1]}")
    return outputs[:, : 4 * num_priors].reshape(-1, num_priors, 4), outputs[:, 4 * num_priors :]


def decode_boxes(residuals: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """``l_i = prior_i + r_i`` (normalised corners, not clipped)."""
    return priors.to(residuals.dtype) + residuals


def preprocess(images: Sequence[np.ndarray], data: DataConfig) -> torch.Tensor:
    """(H, W, 3) uint8 RGB images -> the network's N x 3 x S x S input.

    The whole image is warped (anisotropically) to S x S, so normalised box coordinates are the
    same before and after; then ``(x - mean) / std`` on [0, 1] pixels.
    """
    from torchvision.transforms.v2 import functional as TF

    mode = interpolation_mode(data.interpolation)
    batch = []
    for image in images:
        # A copy: PIL's arrays are read-only and a flipped view has negative strides.
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1)
        tensor = TF.resize(tensor, [data.image_size, data.image_size], interpolation=mode, antialias=True)
        batch.append(TF.normalize(tensor.float() / 255.0, list(data.mean), list(data.std)))
    return torch.stack(batch)
