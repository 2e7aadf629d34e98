"""The paper's Table 1 as data, and the small configs that make the variants.

Szegedy et al., "Going Deeper with Convolutions" (arXiv:1409.4842), section 5 and Table 1;
figure 3 for the LRN placement and the auxiliary heads. The network is built by walking
``TABLE1`` (see :mod:`googlenet.models.model`); a variant is a :class:`GoogLeNetConfig` that changes a
few switches (normalisation, the kernel of the "5x5" branch, pool4, naming), never a second copy
of the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

Normalization = Literal["none", "batchnorm"]


@dataclass(frozen=True)
class ConvRow:
    """A convolution followed by ReLU (and BatchNorm in the BN variants)."""

    name: str
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class PoolRow:
    """A pooling layer; stride-2 max pools round up like Caffe (``ceil_mode``)."""

    name: str
    kind: Literal["max", "avg"]
    kernel: int
    stride: int
    padding: int = 0


@dataclass(frozen=True)
class LRNRow:
    """Local response normalisation (figure 3; BVLC ``pool1/norm1``, ``conv2/norm2``).

    Caffe divides alpha by ``size``, as :class:`torch.nn.LocalResponseNorm` does.
    """

    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@dataclass(frozen=True)
class InceptionRow:
    """One Inception module: the six filter counts of Table 1, in the table's column order."""

    name: str
    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch5x5_reduce: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


Row = ConvRow | PoolRow | LRNRow | InceptionRow

# Table 1, rows conv1 .. inception5b (the pool5 / dropout / linear head follows in the model).
# conv2 is the 1x1 reduce (64) + 3x3 (192) pair of Table 1's "#3x3 reduce" / "#3x3" columns.
TABLE1: tuple[Row, ...] = (
    ConvRow("conv1", 64, kernel=7, stride=2, padding=3),  # 112x112x64
    PoolRow("pool1", "max", kernel=3, stride=2),  # 56x56x64
    LRNRow("norm1"),  # figure 3: LRN after pool1
    ConvRow("conv2_reduce", 64, kernel=1),
    ConvRow("conv2", 192, kernel=3, padding=1),  # 56x56x192
    LRNRow("norm2"),  # figure 3: LRN after conv2's 3x3, before pool2
    PoolRow("pool2", "max", kernel=3, stride=2),  # 28x28x192
    InceptionRow("inception3a", 64, 96, 128, 16, 32, 32),  # 28x28x256
    InceptionRow("inception3b", 128, 128, 192, 32, 96, 64),  # 28x28x480
    PoolRow("pool3", "max", kernel=3, stride=2),  # 14x14x480
    InceptionRow("inception4a", 192, 96, 208, 16, 48, 64),  # 14x14x512
    InceptionRow("inception4b", 160, 112, 224, 24, 64, 64),  # 14x14x512
    InceptionRow("inception4c", 128, 128, 256, 24, 64, 64),  # 14x14x512
    InceptionRow("inception4d", 112, 144, 288, 32, 64, 64),  # 14x14x528
    InceptionRow("inception4e", 256, 160, 320, 32, 128, 128),  # 14x14x832
    PoolRow("pool4", "max", kernel=3, stride=2),  # 7x7x832
    InceptionRow("inception5a", 256, 160, 320, 32, 128, 128),  # 7x7x832
    InceptionRow("inception5b", 384, 192, 384, 48, 128, 128),  # 7x7x1024
)

# Table 1's "output size" column, (C, H, W) at 224x224 input, for tests and the summary.
TABLE1_OUTPUT_SIZES: dict[str, tuple[int, int, int]] = {
    "conv1": (64, 112, 112),
    "pool1": (64, 56, 56),
    "conv2": (192, 56, 56),
    "pool2": (192, 28, 28),
    "inception3a": (256, 28, 28),
    "inception3b": (480, 28, 28),
    "pool3": (480, 14, 14),
    "inception4a": (512, 14, 14),
    "inception4b": (512, 14, 14),
    "inception4c": (512, 14, 14),
    "inception4d": (528, 14, 14),
    "inception4e": (832, 14, 14),
    "pool4": (832, 7, 7),
    "inception5a": (832, 7, 7),
    "inception5b": (1024, 7, 7),
    "avgpool": (1024, 1, 1),
    "dropout": (1024, 1, 1),
    "fc": (1000, 1, 1),
}

# Inputs of the auxiliary classifiers (section 5: "on top of the output of the (4a) and (4d)").
AUX_SOURCES: tuple[str, str] = ("inception4a", "inception4d")


@dataclass(frozen=True)
class AuxSpec:
    """Auxiliary classifier (section 5): avg pool 5x5/3 -> 1x1 conv 128 -> FC 1024 -> dropout -> linear."""

    pool_kernel: int = 5
    pool_stride: int = 3
    pooled_size: int = 4  # 4x4 at 224 input (14x14 maps)
    conv_channels: int = 128
    fc_features: int = 1024
    dropout: float = 0.7
    # "paper": the 5x5/3 average pool when it yields 4x4 (14x14 maps), adaptive 4x4 otherwise;
    # "adaptive": always adaptive 4x4 (torchvision's InceptionAux).
    pool_mode: Literal["paper", "adaptive"] = "paper"


@dataclass(frozen=True)
class GoogLeNetConfig:
    """The switches that make the variants. Defaults are the paper's network."""

    normalization: Normalization = "none"
    lrn: bool = True  # keep the LRN rows of Table 1 / figure 3
    bn_eps: float = 1e-5
    conv_bias: bool = True
    branch5x5_kernel: int = 5  # torchvision's port uses 3 here (a known deviation from the paper)
    pool4_kernel: int = 3  # torchvision's port uses 2
    dropout: float = 0.4  # Table 1, "dropout (40%)"
    aux: AuxSpec = field(default_factory=AuxSpec)
    # Module names; the paper variants use Table 1's, googlenet_tv torchvision's.
    rename: tuple[tuple[str, str], ...] = ()
    init: Literal["caffe_xavier", "kaiming", "torchvision"] = "caffe_xavier"
    # torchvision's hidden input re-normalisation, explicit here (googlenet_tv only).
    transform_input: bool = False

    def name_of(self, row_name: str) -> str:
        return dict(self.rename).get(row_name, row_name)

    def rows(self) -> tuple[Row, ...]:
        """Table 1 with this variant's switches applied."""
        rows: list[Row] = []
        for row in TABLE1:
            if isinstance(row, LRNRow) and not self.lrn:
                continue
            if isinstance(row, PoolRow) and row.name == "pool4":
                row = replace(row, kernel=self.pool4_kernel)
            rows.append(replace(row, name=self.name_of(row.name)))
        return tuple(rows)


PAPER = GoogLeNetConfig()

BATCHNORM = GoogLeNetConfig(normalization="batchnorm", lrn=False, conv_bias=False, init="kaiming")

TORCHVISION = GoogLeNetConfig(
    normalization="batchnorm",
    lrn=False,
    bn_eps=1e-3,
    conv_bias=False,
    branch5x5_kernel=3,
    pool4_kernel=2,
    dropout=0.2,
    aux=AuxSpec(pool_mode="adaptive"),
    rename=(
        ("pool1", "maxpool1"),
        ("conv2_reduce", "conv2"),
        ("conv2", "conv3"),
        ("pool2", "maxpool2"),
        ("pool3", "maxpool3"),
        ("pool4", "maxpool4"),
    ),
    init="torchvision",
)


def config_to_dict(config: GoogLeNetConfig) -> dict:
    """A JSON-ready dict of ``config`` (stored in weight files so a model rebuilds from the file alone)."""
    return asdict(config)


def config_from_dict(data: dict) -> GoogLeNetConfig:
    """Inverse of :func:`config_to_dict`; unknown keys are an error, missing keys take the defaults."""
    data = dict(data)
    if "aux" in data:
        data["aux"] = AuxSpec(**data["aux"])
    if "rename" in data:
        data["rename"] = tuple(tuple(pair) for pair in data["rename"])
    return GoogLeNetConfig(**data)
