"""The MultiBox network: what goes in (the warped image), how it is built, and what comes out.

Erhan et al. 2014 (arXiv:1312.2249) predict ``K`` boxes and ``K`` confidences from one pass of a
classification network; GoogLeNet's detector uses the Inception network for it (paper section 8).
Two heads, named by :class:`MultiBoxHead` (``multibox.json``'s ``"head"``; docs/detection.md,
"MultiBox", says how each relates to the papers):

* ``pool`` (the first one built here, and what a folder without ``"head"`` holds): the backbone up to
  inception5b (``forward_features``, N x 1024 x 7 x 7 at 224 px), average pooling and one linear
  layer to ``K * 4`` box residuals and ``K`` confidence logits. It is a plain
  :class:`~googlenet.models.model.GoogLeNet` with ``num_classes = 5 K`` and no auxiliary heads.
* ``grid``: priors tied to the cells of one Inception map (``tap``, inception4e by default: 14 x 14
  at 224 px, 8 x 8 at 128), ``per_cell`` of them centred on each cell (:func:`.priors.
  fit_grid_priors`), and a convolutional head in the classifier's place (``fc``): a 3 x 3
  convolution (``hidden`` channels, the variant's BatchNorm and ReLU) and a 1 x 1 convolution to
  ``5 per_cell`` outputs per cell, shared by every cell, as the later MultiBox of Szegedy et al.
  (arXiv:1412.1441) and the region proposal network of Faster R-CNN predict from feature maps.
  :class:`MultiBoxNetwork`: the backbone stops at ``tap``.

Either way the output is N x 5K: the first ``4 K`` entries are the residuals (prior-major,
``x1 y1 x2 y2``), the last ``K`` the logits (``c_i = sigmoid(logit_i)``). :func:`split_outputs` is
the one place that reads that layout, :func:`create_multibox_network` the one place that builds a
head, and :mod:`googlenet.weights.store` saves and checks either network.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data.config import DataConfig
from ...data.transforms import interpolation_mode
from ...errors import GoogLeNetError
from ...models.layers import ConvAct
from ...models.model import GoogLeNet, ModelMeta, init_weights
from ...models.registry import create_model
from ...models.spec import GoogLeNetConfig

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "HEADS",
    "GridHead",
    "MultiBoxHead",
    "MultiBoxNetwork",
    "create_multibox_network",
    "decode_boxes",
    "grid_size",
    "preprocess",
    "split_outputs",
]

DEFAULT_IMAGE_SIZE = 224  # section 5: the network's receptive field
HEADS = ("pool", "grid")


@dataclass(frozen=True)
class MultiBoxHead:
    """Which head predicts the boxes, and its shape (``multibox.json``'s ``"head"``).

    ``kind``: ``pool`` (average pool + one linear layer, the head of folders written before heads
    had a name) or ``grid`` (priors tied to the cells of the ``tap`` map, ``per_cell`` per cell,
    predicted by a ``hidden``-channel 3 x 3 convolution and a shared 1 x 1 one). ``tap``,
    ``per_cell`` and ``hidden`` mean nothing to ``pool``.
    """

    kind: str = "grid"
    tap: str = "inception4e"  # stride 16: 8 x 8 cells at 128 px, 14 x 14 at 224
    per_cell: int = 3
    hidden: int = 256

    def validate(self, stages: Sequence[str] | None = None) -> None:
        """A one-line error naming the first bad field; ``stages``: the backbone's stage names."""
        if self.kind not in HEADS:
            raise GoogLeNetError(f"MultiBox head must be one of {', '.join(HEADS)}. Got {self.kind!r}")
        for name in ("per_cell", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoogLeNetError(f"MultiBox head {name} must be a positive integer. Got {value!r}")
        if stages is not None and self.kind == "grid" and self.tap not in stages:
            raise GoogLeNetError(
                f"MultiBox head tap {self.tap!r} is not a stage of the backbone (one of {', '.join(stages)})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind} if self.kind == "pool" else dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, source: str) -> MultiBoxHead:
        """The head a ``multibox.json`` or ``task.yaml`` names; none (an older file): ``pool``."""
        if data is None:
            return cls(kind="pool")
        if not isinstance(data, Mapping):
            raise GoogLeNetError(f"{source}: head must be a mapping. Got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GoogLeNetError(
                f"{source}: unknown MultiBox head field {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        head = cls(**{"kind": "pool", **data}) if "kind" not in data else cls(**data)
        try:
            head.validate()
        except GoogLeNetError as exc:
            raise GoogLeNetError(f"{source}: {exc}") from None
        return head


class GridHead(nn.Module):
    """The ``grid`` head: 3 x 3 conv (``hidden``, the variant's BatchNorm, ReLU) -> 1 x 1 conv to
    ``5 A`` outputs per cell, ``A = per_cell``; its output rearranged to MultiBox's N x 5K layout.

    Channel layout of ``predict``: ``4 A`` residuals (``a``-major, ``x1 y1 x2 y2``), then ``A``
    logits. Prior ``k`` of the N x 5K output is cell ``(row, col)``'s slot ``a`` with
    ``k = (row * s + col) * A + a`` (:func:`.priors.fit_grid_priors` orders the priors the same way).
    """

    def __init__(self, in_channels: int, per_cell: int, hidden: int, *, config: GoogLeNetConfig) -> None:
        super().__init__()
        self.per_cell = per_cell
        self.hidden = ConvAct(in_channels, hidden, 3, padding=1, config=config)
        self.predict = nn.Conv2d(hidden, 5 * per_cell, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.predict(self.hidden(features))  # N x 5A x s x s
        n, a, s = out.shape[0], self.per_cell, out.shape[-1]
        # -> N x s x s x A x 4 (cell-major, then slot), flattened: the priors' order
        residuals = out[:, : 4 * a].reshape(n, a, 4, s, s).permute(0, 3, 4, 1, 2).reshape(n, -1)
        logits = out[:, 4 * a :].permute(0, 2, 3, 1).reshape(n, -1)  # N x (s * s * A)
        return torch.cat([residuals, logits], dim=1)  # N x 5K

    def output_layers(self) -> tuple[slice, slice]:
        """The rows of ``predict`` that give residuals and logits."""
        return slice(0, 4 * self.per_cell), slice(4 * self.per_cell, 5 * self.per_cell)


class MultiBoxNetwork(GoogLeNet):
    """GoogLeNet up to ``head.tap`` with the :class:`GridHead` in the classifier's place (``fc``).

    Its stage modules keep Table 1's names, so ``--init-from`` loads a classifier's backbone into it
    and ``--freeze`` works; the stages after the tap are not built. The constructor takes
    :class:`~googlenet.models.model.GoogLeNet`'s arguments, so :func:`googlenet.weights.store.
    load_weights` rebuilds it (``build=``). ``num_classes`` is ``5 K``, ``K = cells x per_cell``.
    """

    def __init__(
        self,
        config: GoogLeNetConfig,
        num_classes: int,
        aux_logits: bool = False,
        in_channels: int = 3,
        meta: ModelMeta | None = None,
        *,
        head: MultiBoxHead,
    ) -> None:
        if aux_logits:
            raise GoogLeNetError("the MultiBox network has no auxiliary heads")
        super().__init__(
            config, num_classes=num_classes, aux_logits=False, in_channels=in_channels, meta=meta
        )
        head.validate(self.stages)
        if head.kind != "grid":
            raise GoogLeNetError(f"MultiBoxNetwork is the grid head's network. Got head {head.kind!r}")
        last = self.stages.index(head.tap)
        for name in self.stages[last + 1 :]:
            delattr(self, name)
        self.stages = self.stages[: last + 1]
        del self.avgpool, self.dropout
        self.num_features = _channels_at(config, last)
        self.head = head
        self.fc = GridHead(self.num_features, head.per_cell, head.hidden, config=config)
        init_weights(self.fc, config.init)
        # The outputs start small, as a classifier layer's (N(0, 0.01), the region proposal
        # network's too): the variant's conv init would spread the first confidences widely.
        nn.init.normal_(self.fc.predict.weight, 0.0, 0.01)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # features: N x C x s x s at the tap (832 x 8 x 8 for inception4e at 128 px)
        return self.fc.hidden(features) if pre_logits else self.fc(features)  # N x 5K

    def reset_classifier(self, num_classes: int) -> None:
        raise GoogLeNetError("the MultiBox grid head has no classifier to reset")


def _channels_at(config: GoogLeNetConfig, index: int) -> int:
    """Output channels of the ``index``-th stage of ``config.rows()`` (pools and LRN keep theirs)."""
    for row in reversed(config.rows()[: index + 1]):
        if hasattr(row, "out_channels"):
            return int(row.out_channels)
    return 3


def grid_size(backbone: str | GoogLeNetConfig, tap: str, image_size: int, **model_overrides: Any) -> int:
    """Cells per side of the ``tap`` map of ``backbone`` (a registered model's name, with
    :func:`~googlenet.models.registry.create_model`'s overrides, or a config) at ``image_size`` px.

    Shapes only: the backbone runs on PyTorch's ``meta`` device, which computes no values, so the
    pools' rounding (``ceil_mode``) is PyTorch's own rather than restated here.
    """
    with torch.device("meta"):
        if isinstance(backbone, GoogLeNetConfig):
            net = GoogLeNet(backbone, num_classes=1, aux_logits=False)
        else:
            net = create_model(backbone, num_classes=1, aux_logits=False, **model_overrides)
        MultiBoxHead(tap=tap).validate(net.stages)
        x = torch.zeros(1, 3, image_size, image_size)
        for name in net.stages[: net.stages.index(tap) + 1]:
            x = getattr(net, name)(x)
    if x.shape[-1] != x.shape[-2]:
        raise GoogLeNetError(f"the {tap} map is not square at {image_size} px: {tuple(x.shape[-2:])}")
    return int(x.shape[-1])


def create_multibox_network(
    num_priors: int,
    *,
    model: str = "googlenet",
    head: MultiBoxHead | None = None,
    confidence_start: float | None = None,
    **model_overrides: Any,
) -> GoogLeNet:
    """The MultiBox network of ``head`` (default ``pool``) for ``num_priors`` boxes (``5 K`` outputs).

    ``model`` and ``model_overrides`` are :func:`~googlenet.models.registry.create_model`'s (a trained
    backbone is loaded afterwards: ``--init-from``, :func:`.task.multibox_task`). ``pool``: a
    GoogLeNet with ``num_classes = 5 K`` and no auxiliary heads; ``grid``: a :class:`MultiBoxNetwork`
    (``num_priors`` must be its cells x ``per_cell``, checked by :class:`.model.MultiBox`). The
    residual outputs start at zero, so every box starts at its prior. ``confidence_start`` (the
    share of priors matched per image, :func:`.data.positive_share`) sets the confidence biases so
    that every ``c_i`` starts there, as RetinaNet (Lin et al. 2017) initialises its classifier: with
    ``c_i = 1/2`` the ``K`` unmatched terms would dominate the first steps.
    """
    if num_priors < 1:
        raise GoogLeNetError(f"the number of priors must be >= 1. Got {num_priors}")
    head = head or MultiBoxHead(kind="pool")
    net = create_model(model, num_classes=5 * num_priors, aux_logits=False, **model_overrides)
    if head.kind == "pool":
        residual_rows, logit_rows = slice(0, 4 * num_priors), slice(4 * num_priors, 5 * num_priors)
        last = net.fc
    else:
        net = MultiBoxNetwork(net.config, 5 * num_priors, meta=net.meta, head=head)
        residual_rows, logit_rows = net.fc.output_layers()
        last = net.fc.predict
    with torch.no_grad():
        last.weight[residual_rows].zero_()
        last.bias[residual_rows].zero_()
        if confidence_start is not None and 0.0 < confidence_start < 1.0:
            last.bias[logit_rows] = math.log(confidence_start / (1.0 - confidence_start))
    net.meta.class_names = None
    net.meta.extra = {"multibox_priors": str(num_priors), "multibox_head": head.kind}
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
