"""Building blocks of GoogLeNet: convolution + activation, the Inception module, the auxiliary head.

Section 4 of the paper (figure 2b: the Inception module with dimension reductions) and section 5
(the auxiliary classifiers). Every convolution, reductions and projections included, is followed
by ReLU (section 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spec import AuxSpec, GoogLeNetConfig, InceptionRow


class ConvAct(nn.Sequential):
    """Conv2d [-> BatchNorm] -> ReLU.

    Submodules are ``conv`` / ``bn`` / ``act`` so that with BatchNorm the state-dict keys are
    those of torchvision's ``BasicConv2d`` (``conv.weight``, ``bn.running_mean`` ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        *,
        config: GoogLeNetConfig,
    ) -> None:
        super().__init__()
        batchnorm = config.normalization == "batchnorm"
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=padding, bias=config.conv_bias
        )
        if batchnorm:
            self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps)
        self.act = nn.ReLU(inplace=True)


class LocalResponseNorm(nn.LocalResponseNorm):
    """Caffe's cross-channel LRN (figure 3), same result as :class:`torch.nn.LocalResponseNorm`.

    Written by hand because torch's version pools a 5-D view of the squares with ``avg_pool3d``, which
    is slow on channels_last tensors and leaves autocast's bf16: it was 35-40% of the paper network's
    training step on CPU. Here the channel window is an ``avg_pool1d`` over the channels of each pixel,
    on the NHWC view that channels_last already stores contiguously.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        squares = (x * x).permute(0, 2, 3, 1).reshape(n * h * w, 1, c)
        squares = F.pad(squares, (self.size // 2, (self.size - 1) // 2))
        mean = F.avg_pool1d(squares, self.size, stride=1)  # alpha / size * sum, as Caffe
        scale = (self.k + self.alpha * mean).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return x / scale.pow(self.beta)


class Inception(nn.Module):
    """Figure 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3/1 max pool -> 1x1, concatenated."""

    def __init__(self, in_channels: int, row: InceptionRow, *, config: GoogLeNetConfig) -> None:
        super().__init__()
        k5 = config.branch5x5_kernel
        self.branch1 = ConvAct(in_channels, row.ch1x1, 1, config=config)
        self.branch2 = nn.Sequential(
            ConvAct(in_channels, row.ch3x3_reduce, 1, config=config),
            ConvAct(row.ch3x3_reduce, row.ch3x3, 3, padding=1, config=config),
        )
        self.branch3 = nn.Sequential(
            ConvAct(in_channels, row.ch5x5_reduce, 1, config=config),
            ConvAct(row.ch5x5_reduce, row.ch5x5, k5, padding=k5 // 2, config=config),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            ConvAct(in_channels, row.pool_proj, 1, config=config),
        )
        self.row = row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxHead(nn.Module):
    """Section 5 auxiliary classifier on 4a / 4d.

    Average pool 5x5 stride 3 (4x4 output on the 14x14 maps of a 224 input) -> 1x1 conv with 128
    filters and ReLU -> fully connected 1024 with ReLU -> dropout 70% -> linear classifier.

    For inputs other than 224 the 4a/4d maps are not 14x14 and a 5x5/3 pool would not give 4x4
    (or would not fit at all below 5x5), so the head pools adaptively to 4x4 instead; the FC
    layer then always sees 128 x 4 x 4 features and the weights stay valid for every input size.
    With ``pool_mode="adaptive"`` (torchvision's head) the adaptive pool is used at every size.
    """

    def __init__(self, in_channels: int, num_classes: int, *, spec: AuxSpec, config: GoogLeNetConfig):
        super().__init__()
        self.spec = spec
        self.conv = ConvAct(in_channels, spec.conv_channels, 1, config=config)
        self.fc1 = nn.Linear(spec.conv_channels * spec.pooled_size**2, spec.fc_features)
        self.dropout = nn.Dropout(spec.dropout)
        self.fc2 = nn.Linear(spec.fc_features, num_classes)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        h, w = x.shape[-2:]
        paper_size = (h - s.pool_kernel) // s.pool_stride + 1 if h >= s.pool_kernel else -1
        paper_fits = (
            s.pool_mode == "paper"
            and h == w
            and paper_size == s.pooled_size
            and (h - s.pool_kernel) % s.pool_stride == 0  # exact fit: Caffe's ceil mode agrees
        )
        if paper_fits:
            return F.avg_pool2d(x, s.pool_kernel, s.pool_stride)
        return F.adaptive_avg_pool2d(x, s.pooled_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)  # N x 512 x 4 x 4 (4a) or N x 528 x 4 x 4 (4d)
        x = self.conv(x)  # N x 128 x 4 x 4
        x = torch.flatten(x, 1)  # N x 2048
        x = F.relu(self.fc1(x), inplace=True)  # N x 1024
        x = self.dropout(x)
        return self.fc2(x)  # N x num_classes
