"""GoogLeNet built by walking Table 1 (:data:`googlenet.models.spec.TABLE1`).

Sections 5 of the paper. ``model(x)`` always returns logits; :meth:`GoogLeNet.forward_train`
always returns :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)``, in train and eval mode alike,
so that the return type never depends on the mode (unlike torchvision's port).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from .layers import AuxHead, ConvAct, Inception, LocalResponseNorm
from .spec import AUX_SOURCES, ConvRow, GoogLeNetConfig, InceptionRow, LRNRow, PoolRow, Row

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# BVLC train_val.prototxt: mean_value 104 117 123 (BGR) on 0-255 pixels, no scaling. Expressed on
# [0, 1] RGB pixels: subtract 123/255, 117/255, 104/255 and divide by 1/255.
CAFFE_MEAN = (123 / 255, 117 / 255, 104 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)


@dataclass
class ModelMeta:
    """What a user needs to feed the model and read its output.

    Preprocessing is expressed on RGB pixels scaled to [0, 1]: ``(x - mean) / std``.
    ``transform_input`` is torchvision's extra re-normalisation (googlenet_tv only).
    """

    variant: str
    num_classes: int
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    resize_ratio: float = 256 / 224  # section 7: shorter side 256 for a 224 crop
    interpolation: str = "bilinear"
    class_names: list[str] | None = None
    transform_input: bool = False
    source: str = "random init"
    extra: dict[str, str] = field(default_factory=dict)


class GoogLeNetOutputs(NamedTuple):
    """Return type of :meth:`GoogLeNet.forward_train`; aux entries are None without aux heads."""

    logits: torch.Tensor
    aux1: torch.Tensor | None
    aux2: torch.Tensor | None


def _build_row(row: Row, in_channels: int, config: GoogLeNetConfig) -> tuple[nn.Module, int]:
    if isinstance(row, ConvRow):
        conv = ConvAct(in_channels, row.out_channels, row.kernel, row.stride, row.padding, config=config)
        return conv, row.out_channels
    if isinstance(row, PoolRow):
        if row.kind == "max":
            pool: nn.Module = nn.MaxPool2d(row.kernel, row.stride, row.padding, ceil_mode=True)
        else:
            pool = nn.AvgPool2d(row.kernel, row.stride, row.padding, ceil_mode=True)
        return pool, in_channels
    if isinstance(row, LRNRow):
        return LocalResponseNorm(row.size, row.alpha, row.beta, row.k), in_channels
    if isinstance(row, InceptionRow):
        return Inception(in_channels, row, config=config), row.out_channels
    raise TypeError(f"unknown Table 1 row {row!r}")


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1, one class for every variant (see :mod:`googlenet.models.spec`)."""

    def __init__(
        self,
        config: GoogLeNetConfig,
        num_classes: int = 1000,
        aux_logits: bool = True,
        in_channels: int = 3,
        meta: ModelMeta | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.stages: list[str] = []
        channels = in_channels
        aux_channels: dict[str, int] = {}
        aux_names = {config.name_of(n) for n in AUX_SOURCES}
        for row in config.rows():
            module, channels = _build_row(row, channels, config)
            self.add_module(row.name, module)
            self.stages.append(row.name)
            if row.name in aux_names:
                aux_channels[row.name] = channels
        self.aux_sources = tuple(config.name_of(n) for n in AUX_SOURCES)
        self.num_features = channels  # 1024
        if aux_logits:
            self.aux1: AuxHead | None = AuxHead(
                aux_channels[self.aux_sources[0]], num_classes, spec=config.aux, config=config
            )
            self.aux2: AuxHead | None = AuxHead(
                aux_channels[self.aux_sources[1]], num_classes, spec=config.aux, config=config
            )
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # pool5: 7x7/1 average at 224 input
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self.meta = meta or ModelMeta(variant="custom", num_classes=num_classes)
        self.meta.num_classes = num_classes
        init_weights(self, config.init)

    @property
    def aux_logits(self) -> bool:
        return self.aux1 is not None

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's googlenet(transform_input=True): inputs normalised with ImageNet mean/std
        # are re-normalised to (x - 0.5) / 0.5, which its ported weights expect. Same arithmetic
        # as torchvision (x * std / 0.5 + (mean - 0.5) / 0.5) so the results agree bit for bit.
        scale = torch.tensor([s / 0.5 for s in IMAGENET_STD], dtype=x.dtype, device=x.device)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN], dtype=x.dtype, device=x.device)
        return x * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1)

    def _features(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.config.transform_input:
            x = self._transform_input(x)
        taps: list[torch.Tensor] = []
        # At 224 input, the stages produce (Table 1):
        # conv1 N x 64 x 112 x 112 -> pool1 N x 64 x 56 x 56 -> conv2 N x 192 x 56 x 56
        # -> pool2 N x 192 x 28 x 28 -> 3a N x 256 x 28 x 28 -> 3b N x 480 x 28 x 28
        # -> pool3 N x 480 x 14 x 14 -> 4a N x 512 (aux1) ... 4d N x 528 (aux2) -> 4e N x 832 x 14 x 14
        # -> pool4 N x 832 x 7 x 7 -> 5a N x 832 x 7 x 7 -> 5b N x 1024 x 7 x 7
        for name in self.stages:
            x = self._modules[name](x)
            if with_aux and name in self.aux_sources:
                taps.append(x)
        return x, taps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The N x 1024 x H/32 x W/32 map of inception5b, before pooling."""
        return self._features(x, with_aux=False)[0]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(features)  # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)  # N x 1024
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, N x num_classes, in train and eval mode alike (auxiliary heads are not run)."""
        return self.forward_head(self.forward_features(x))

    def forward_train(self, x: torch.Tensor) -> GoogLeNetOutputs:
        """``(logits, aux1, aux2)``: the main and the two auxiliary classifiers (section 5).

        The auxiliary heads run whenever they exist, in either mode; they are None when the
        model was built with ``aux_logits=False``.
        """
        features, taps = self._features(x, with_aux=self.aux1 is not None)
        logits = self.forward_head(features)
        if self.aux1 is None or self.aux2 is None:
            return GoogLeNetOutputs(logits, None, None)
        return GoogLeNetOutputs(logits, self.aux1(taps[0]), self.aux2(taps[1]))

    def reset_classifier(self, num_classes: int) -> None:
        """New, freshly initialised final (and auxiliary) classifiers for ``num_classes``."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        device = self.fc.weight.device
        self.fc = nn.Linear(self.num_features, num_classes, device=device)
        _init_linear(self.fc, self.config.init, classifier=True)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = nn.Linear(head.fc2.in_features, num_classes, device=device)
                _init_linear(head.fc2, self.config.init, classifier=True)
        self.num_classes = num_classes
        self.meta.num_classes = num_classes
        self.meta.class_names = None


def _caffe_xavier_(weight: torch.Tensor) -> None:
    # Caffe's XavierFiller (variance_norm FAN_IN, the BVLC default): U(-a, a), a = sqrt(3 / fan_in).
    fan_in = weight[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    nn.init.uniform_(weight, -bound, bound)


def _torchvision_normal_(weight: torch.Tensor) -> None:
    # torchvision draws trunc_normal_(std=0.01, a=-2, b=2): the bounds are 200 standard deviations
    # away, so the truncation never bites (probability ~0) and a plain normal is the same
    # distribution, without trunc_normal_'s rejection loop that makes building take ~1 s.
    nn.init.normal_(weight, 0.0, 0.01)


def _init_linear(m: nn.Linear, scheme: str, classifier: bool) -> None:
    if scheme == "caffe_xavier":
        _caffe_xavier_(m.weight)
        # BVLC: bias 0.2 on every hidden layer, 0 on the classifiers.
        nn.init.constant_(m.bias, 0.0 if classifier else 0.2)
    elif scheme == "kaiming":
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)
    else:  # torchvision's GoogLeNet: truncated normal std 0.01, bias left at PyTorch's default
        _torchvision_normal_(m.weight)


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise every conv / linear / BN layer of ``model`` with the variant's scheme.

    - ``caffe_xavier`` (googlenet, BVLC train_val.prototxt): xavier on every weight, bias 0.2,
      classifier bias 0. This is what lets the LRN network without BatchNorm train from scratch.
    - ``kaiming`` (googlenet_bn): He normal (fan_out) convolutions, BN 1/0, linear N(0, 0.01).
    - ``torchvision`` (googlenet_tv): torchvision's truncated normal std 0.01, BN 1/0.
    """
    classifiers = {id(model.fc)} if isinstance(model, GoogLeNet) else set()
    if isinstance(model, GoogLeNet):
        classifiers |= {id(h.fc2) for h in (model.aux1, model.aux2) if h is not None}
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "caffe_xavier":
                _caffe_xavier_(m.weight)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                _torchvision_normal_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.2 if scheme == "caffe_xavier" else 0.0)
        elif isinstance(m, nn.Linear):
            _init_linear(m, scheme, classifier=id(m) in classifiers)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
