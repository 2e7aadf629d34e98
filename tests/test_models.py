"""The three GoogLeNet variants against Table 1, figure 3, the BVLC deploy net and torchvision."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import googlenet
from googlenet.models.layers import AuxHead, Inception
from googlenet.models.spec import TABLE1, TABLE1_OUTPUT_SIZES, InceptionRow

MODELS = googlenet.list_models()


def _torchvision_reference(**kwargs) -> nn.Module:
    """torchvision's GoogLeNet with weights whose logits actually depend on the input.

    torchvision's own init (std 0.01 everywhere) makes the deep net's output nearly constant, which
    would let a comparison pass for the wrong reasons; He init and random BN statistics do not.
    """
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, init_weights=True, **kwargs)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # fan_in: keeps the scale
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def _stage_outputs(model: googlenet.GoogLeNet, size: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:]))
        )
        for n in model.stages
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return shapes


def test_list_models() -> None:
    assert MODELS == ["googlenet", "googlenet_bn", "googlenet_tv"]


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_after_every_table1_row(name: str) -> None:
    model = googlenet.create_model(name, aux_logits=False)
    shapes = _stage_outputs(model, 224)
    checked = 0
    for row in TABLE1:
        if row.name in TABLE1_OUTPUT_SIZES:
            assert shapes[model.config.name_of(row.name)] == TABLE1_OUTPUT_SIZES[row.name], row.name
            checked += 1
    assert checked == 15  # conv1 .. inception5b rows of Table 1
    assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 7, 7)


def test_paper_parameter_count_equals_bvlc_deploy_net() -> None:
    model = googlenet.create_model("googlenet", aux_logits=False)
    assert sum(p.numel() for p in model.parameters()) == 6_998_552
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    assert weights == 6_990_272


def test_inception_rows_follow_table1_columns() -> None:
    model = googlenet.create_model("googlenet", aux_logits=False)
    for row in TABLE1:
        if not isinstance(row, InceptionRow):
            continue
        block = model.get_submodule(row.name)
        assert block.branch1.conv.out_channels == row.ch1x1
        assert block.branch2[0].conv.out_channels == row.ch3x3_reduce
        assert block.branch2[1].conv.out_channels == row.ch3x3
        assert block.branch3[0].conv.out_channels == row.ch5x5_reduce
        assert block.branch3[1].conv.out_channels == row.ch5x5
        assert block.branch3[1].conv.kernel_size == (5, 5)  # a real 5x5 (section 5)
        assert block.branch3[1].conv.padding == (2, 2)
        assert block.branch4[1].conv.out_channels == row.pool_proj
        pool = block.branch4[0]
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)


def test_lrn_placement_and_constants() -> None:
    model = googlenet.create_model("googlenet")
    stages = model.stages
    assert stages[stages.index("pool1") + 1] == "norm1"
    assert stages[stages.index("conv2") + 1] == "norm2"
    assert stages[stages.index("norm2") + 1] == "pool2"
    for name in ("norm1", "norm2"):
        lrn = model.get_submodule(name)
        assert isinstance(lrn, nn.LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    for name in ("googlenet_bn", "googlenet_tv"):
        other = googlenet.create_model(name)
        assert not any(isinstance(m, nn.LocalResponseNorm) for m in other.modules())
        assert sum(isinstance(m, nn.BatchNorm2d) for m in other.modules()) == sum(
            isinstance(m, nn.Conv2d) for m in other.modules()
        )


def test_lrn_matches_caffe_formula() -> None:
    # Caffe ACROSS_CHANNELS: b = a / (k + alpha / n * sum_{window} a^2) ^ beta, window of n channels.
    torch.manual_seed(0)
    x = torch.randn(1, 8, 3, 3) * 30
    lrn = googlenet.create_model("googlenet").norm1
    n, alpha, beta, k = 5, 1e-4, 0.75, 1.0
    expected = torch.empty_like(x)
    for c in range(8):
        lo, hi = max(0, c - n // 2), min(8, c + n // 2 + 1)
        scale = k + alpha / n * (x[:, lo:hi] ** 2).sum(1)
        expected[:, c] = x[:, c] / scale**beta
    torch.testing.assert_close(lrn(x), expected, rtol=1e-5, atol=1e-6)


def test_lrn_equals_torch_on_channels_last_input() -> None:
    torch.manual_seed(0)
    x = (torch.randn(2, 13, 6, 5) * 30).contiguous(memory_format=torch.channels_last)
    ours = googlenet.create_model("googlenet").norm2
    reference = nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)
    torch.testing.assert_close(ours(x), reference(x.contiguous()), rtol=1e-6, atol=1e-6)
    assert ours(x).is_contiguous(memory_format=torch.channels_last)


def test_max_pools_round_up_like_caffe() -> None:
    model = googlenet.create_model("googlenet")
    strided = [m for m in model.modules() if isinstance(m, nn.MaxPool2d) and m.stride == 2]
    assert len(strided) == 4 and all(m.ceil_mode for m in strided)
    # 112 -> 56 only with ceil mode (floor would give 55).
    assert model.pool1(torch.zeros(1, 1, 112, 112)).shape[-1] == 56


def test_torchvision_variant_loads_torchvision_state_dict_and_matches_logits() -> None:
    reference = _torchvision_reference(aux_logits=True)
    ours = googlenet.create_model("googlenet_tv").eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert ours.state_dict()[key].shape == value.shape, key
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        assert (ours(x) - expected).abs().max() <= 1e-5
        assert (expected[0] - expected[1]).abs().max() > 1e-2  # the logits depend on the input
    assert ours.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision's known deviation
    assert ours.maxpool4.kernel_size == 2


def test_torchvision_transform_input_is_explicit() -> None:
    reference = _torchvision_reference(aux_logits=False, transform_input=True)
    plain = googlenet.create_model("googlenet_tv", aux_logits=False)
    assert plain.meta.transform_input is False
    ours = googlenet.create_model("googlenet_tv", aux_logits=False, transform_input=True)
    assert ours.meta.transform_input is True
    ours.load_state_dict(reference.state_dict())
    plain.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert (ours.eval()(x) - reference.eval()(x)).abs().max() <= 1e-5
        assert (plain.eval()(x) - reference(x)).abs().max() > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = googlenet.create_model(name, num_classes=5).train()
    out = model.forward_train(torch.randn(2, 3, 96, 96))
    loss = sum(F.cross_entropy(o, torch.tensor([0, 3])) for o in out)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", MODELS)
def test_return_type_never_depends_on_mode(name: str) -> None:
    model = googlenet.create_model(name, num_classes=7)
    x = torch.randn(2, 3, 96, 96)
    for mode in (True, False):
        model.train(mode)
        assert isinstance(model(x), torch.Tensor) and model(x).shape == (2, 7)
        out = model.forward_train(x)
        assert isinstance(out, googlenet.GoogLeNetOutputs)
        assert [t.shape for t in out] == [(2, 7)] * 3
    no_aux = googlenet.create_model(name, num_classes=7, aux_logits=False)
    out = no_aux.forward_train(x)
    assert out.aux1 is None and out.aux2 is None and out.logits.shape == (2, 7)
    assert not any(isinstance(m, AuxHead) for m in no_aux.modules())


@pytest.mark.parametrize("name", MODELS)
def test_num_classes_override_and_reset_classifier(name: str) -> None:
    model = googlenet.create_model(name, num_classes=17)
    assert model.fc.out_features == 17 and model.aux1.fc2.out_features == 17
    model.reset_classifier(4)
    assert model.fc.out_features == 4 and model.aux2.fc2.out_features == 4
    assert model.num_classes == 4 and model.meta.num_classes == 4
    assert model.forward_train(torch.randn(1, 3, 64, 64)).aux1.shape == (1, 4)
    with pytest.raises(ValueError, match="num_classes"):
        googlenet.create_model(name, num_classes=0)


@pytest.mark.parametrize("size", [64, 97, 257])
@pytest.mark.parametrize("name", MODELS)
def test_non_224_sizes(name: str, size: int) -> None:
    model = googlenet.create_model(name, num_classes=10).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        out = model.forward_train(x)
        feats = model.forward_features(x)
    assert [t.shape for t in out] == [(1, 10)] * 3
    side = (size + 2 * 3 - 7) // 2 + 1  # conv1 7x7/2 pad 3
    for _ in range(4):  # pool1..pool4, 3x3/2 rounding up (Caffe)
        side = math.ceil((side - 3) / 2) + 1
    assert feats.shape == (1, 1024, side, side)


def test_aux_head_pools_5x5_stride_3_at_224_and_adaptively_elsewhere() -> None:
    torch.manual_seed(0)
    head = googlenet.create_model("googlenet").aux1
    x14 = torch.randn(1, 512, 14, 14)
    torch.testing.assert_close(head.pool(x14), F.avg_pool2d(x14, 5, 3))
    assert head.pool(x14).shape[-2:] == (4, 4)
    x6 = torch.randn(1, 512, 6, 6)  # the 4a map at 96 input: 5x5/3 would give 1x1
    torch.testing.assert_close(head.pool(x6), F.adaptive_avg_pool2d(x6, 4))
    tv_head = googlenet.create_model("googlenet_tv").aux1
    torch.testing.assert_close(tv_head.pool(x14), F.adaptive_avg_pool2d(x14, 4))


def test_aux_heads_sit_on_4a_and_4d() -> None:
    model = googlenet.create_model("googlenet")
    assert model.aux_sources == ("inception4a", "inception4d")
    assert model.aux1.conv.conv.in_channels == 512 and model.aux2.conv.conv.in_channels == 528
    assert (model.aux1.fc1.in_features, model.aux1.fc1.out_features) == (2048, 1024)
    assert model.aux1.dropout.p == 0.7 and model.dropout.p == 0.4


def test_paper_initialisation_is_caffe_xavier_with_bias_02() -> None:
    model = googlenet.create_model("googlenet")
    conv = model.inception4a.branch3[1].conv
    bound = math.sqrt(3.0 / (16 * 5 * 5))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.all(conv.bias == 0.2) and torch.all(model.aux1.fc1.bias == 0.2)
    assert torch.all(model.fc.bias == 0) and torch.all(model.aux2.fc2.bias == 0)
    bn = googlenet.create_model("googlenet_bn")
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", MODELS)
def test_building_takes_well_under_a_second(name: str) -> None:
    timings = []
    for _ in range(3):  # best of three, in CPU time of this process: the test machine is shared
        start = time.process_time()
        googlenet.create_model(name)
        timings.append(time.process_time() - start)
    assert min(timings) < 0.5


def test_metadata() -> None:
    paper = googlenet.create_model("googlenet", num_classes=3, class_names=["a", "b", "c"])
    assert paper.meta.variant == "googlenet" and paper.meta.class_names == ["a", "b", "c"]
    assert paper.meta.input_size == (3, 224, 224) and paper.meta.channel_order == "RGB"
    # BVLC preprocessing: 0-255 pixels minus the mean (104, 117, 123 in BGR), no std.
    assert [round(m * 255) for m in paper.meta.mean] == [123, 117, 104]
    assert all(abs(s * 255 - 1) < 1e-9 for s in paper.meta.std)
    assert googlenet.create_model("googlenet_bn").meta.std == (0.229, 0.224, 0.225)
    with pytest.raises(ValueError, match="unknown model"):
        googlenet.create_model("inception_v3")
    with pytest.raises(ValueError, match="class names"):
        googlenet.create_model("googlenet", num_classes=2, class_names=["a"])
    with pytest.raises(ValueError, match="unknown model option"):
        googlenet.create_model("googlenet", lrn_size=3)


def test_state_dict_reads_like_table1() -> None:
    keys = list(googlenet.create_model("googlenet").state_dict())
    assert keys[0] == "conv1.conv.weight"
    assert "inception4e.branch3.1.conv.weight" in keys
    assert isinstance(googlenet.create_model("googlenet").inception5b, Inception)


def test_every_public_name_resolves() -> None:
    for name in googlenet.__all__:
        assert getattr(googlenet, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = googlenet.nope
