"""Shape arithmetic, checked against torch itself over a wide grid of layer settings."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from linesweep.core.errors import InfeasibleArchitecture
from linesweep.run.config import ModelConfig, WindowConfig
from linesweep.run.model import build_model, check_plan
from linesweep.run.shapes import conv_output_shape, plan_cnn

sizes = st.integers(1, 24)
kernels = st.integers(1, 7)
strides = st.integers(1, 4)
paddings = st.integers(0, 3)
dilations = st.integers(1, 3)


def test_the_notebooks_chain_of_sizes():
    out = conv_output_shape((11, 11), kernel_size=2, stride=1, pad=0, dilation=1)
    assert out == (10, 10)
    for expected in ((9, 9), (8, 8), (7, 7)):
        out = conv_output_shape(out, kernel_size=2)
        assert out == expected


def test_every_argument_takes_an_int_or_a_pair():
    assert conv_output_shape(11, kernel_size=(3, 1)) == (9, 11)
    shape = conv_output_shape((11, 20), kernel_size=3, stride=(1, 2), pad=(1, 0), dilation=(2, 1))
    assert shape == (9, 9)


@settings(max_examples=300, deadline=None)
@given(
    h=sizes, w=sizes, kh=kernels, kw=kernels, sh=strides, sw=strides, ph=paddings, pw=paddings,
    dh=dilations, dw=dilations,
)  # fmt: skip
def test_conv_output_shape_matches_torch_conv2d(h, w, kh, kw, sh, sw, ph, pw, dh, dw):
    assume(h + 2 * ph >= dh * (kh - 1) + 1 and w + 2 * pw >= dw * (kw - 1) + 1)
    conv = nn.Conv2d(1, 1, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    expected = tuple(conv(torch.zeros(1, 1, h, w)).shape[2:])
    assert conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw)) == expected


@settings(max_examples=300, deadline=None)
@given(h=sizes, w=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_conv_output_shape_matches_torch_maxpool2d(h, w, k, s, p, d):
    effective = d * (k - 1) + 1
    assume(p <= k // 2 and h + 2 * p >= effective and w + 2 * p >= effective)
    pool = nn.MaxPool2d(k, stride=s, padding=p, dilation=d)
    expected = tuple(pool(torch.zeros(1, 1, h, w)).shape[2:])
    assert conv_output_shape((h, w), k, s, p, d) == expected


def window(k: int, s: int = 1, p: int = 0, d: int = 1) -> WindowConfig:
    return WindowConfig(kernel_size=k, stride=s, padding=p, dilation=d)


def test_the_notebook_plan_derives_the_linear_input_of_49():
    plan = plan_cnn(ModelConfig(), image_size=11)
    assert plan.flat_features == 49  # the notebook's hand-typed out_2*7*7
    assert [row.name for row in plan.layers] == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc"
    ]  # fmt: skip
    assert plan.layer("pool1").output_shape == (2, 9, 9)
    assert plan.n_params == 10 + 9 + 100


def test_plan_table_lists_each_layer_and_the_total():
    table = plan_cnn(ModelConfig(out_1=4), image_size=11).table()
    assert "conv1    Conv2d     1x11x11  4x10x10" in table
    assert table.splitlines()[-1].split() == [
        "total",
        str(plan_cnn(ModelConfig(out_1=4), 11).n_params),
    ]


def test_impossible_kernel_is_refused_naming_the_layer_and_the_sizes():
    model = ModelConfig(conv1=window(2, s=3), conv2=window(4))
    with pytest.raises(InfeasibleArchitecture) as info:
        plan_cnn(model, image_size=11)
    assert str(info.value).startswith("conv2: input 3x3 is smaller than the kernel 4x4;")
    assert "model.conv2.kernel_size" in str(info.value)


def test_dilated_and_padded_sizes_appear_in_the_message():
    model = ModelConfig(conv2=window(2, p=1, d=11))
    message = r"^conv2: input 9x9 \(padded 11x11\) is smaller than the dilated kernel 12x12"
    with pytest.raises(InfeasibleArchitecture, match=message):
        plan_cnn(model, image_size=11)


def test_pool_padding_over_half_the_window_is_refused_before_torch_does():
    with pytest.raises(InfeasibleArchitecture, match=r"^pool1: padding 2 is more than half"):
        plan_cnn(ModelConfig(pool1=window(3, p=2)), image_size=11)
    assert plan_cnn(ModelConfig(pool1=window(3, p=1)), image_size=11)


def test_a_pooling_window_that_covers_only_padding_is_refused():
    # conv2's output is 1x1; pool2 (kernel 2, padding 1, dilation 2) reads rows -1 and 1 of it,
    # both padding. torch returns -inf there and its backward writes outside the plane.
    model = ModelConfig(pool2=window(2, p=1, d=2))
    with pytest.raises(InfeasibleArchitecture, match=r"^pool2: a window sees only padding on its"):
        plan_cnn(model, image_size=4)
    out = torch_feature_stack(model)(torch.zeros(1, 1, 4, 4))
    assert torch.isinf(out).any()  # what the refusal spares the trainer
    assert plan_cnn(ModelConfig(pool2=window(2, p=1, d=1)), image_size=4)


model_configs = st.builds(
    ModelConfig,
    out_1=st.integers(1, 6),
    out_2=st.integers(1, 6),
    conv1=st.builds(window, kernels, strides, paddings, dilations),
    pool1=st.builds(window, kernels, strides, paddings, dilations),
    conv2=st.builds(window, kernels, strides, paddings, dilations),
    pool2=st.builds(window, kernels, strides, paddings, dilations),
)


def torch_feature_stack(model: ModelConfig) -> nn.Sequential:
    """The conv/pool layers built directly with torch, independently of linesweep's plan."""

    def args(w: WindowConfig) -> dict[str, int]:
        return {
            "kernel_size": w.kernel_size,
            "stride": w.stride,
            "padding": w.padding,
            "dilation": w.dilation,
        }

    return nn.Sequential(
        nn.Conv2d(1, model.out_1, **args(model.conv1)),
        nn.ReLU(),
        nn.MaxPool2d(**args(model.pool1)),
        nn.Conv2d(model.out_1, model.out_2, **args(model.conv2)),
        nn.ReLU(),
        nn.MaxPool2d(**args(model.pool2)),
    )


@settings(max_examples=150, deadline=None)
@given(model=model_configs, image_size=st.integers(2, 32))
def test_plan_agrees_with_a_real_forward_pass_or_refuses(model, image_size):
    """Either every planned shape and the parameter count match torch, or the plan refuses
    and torch, given the same stack, fails too (or yields an empty or -inf activation)."""
    try:
        plan = plan_cnn(model, image_size)
    except InfeasibleArchitecture:
        with pytest.raises(RuntimeError):
            out = torch_feature_stack(model)(torch.zeros(1, 1, image_size, image_size))
            if out.numel() == 0:
                raise RuntimeError("empty activation") from None
            if not torch.isfinite(out).all():  # a pooling window saw only padding: -inf
                raise RuntimeError("a window over padding alone") from None
        return
    check = check_plan(build_model(model, plan, seed=0), plan)
    assert check.agrees, check.mismatches()
