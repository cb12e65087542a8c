"""``tn.nn.init``: PyTorch's formulas (gains, fans, bounds, standard deviations), seeding and
devices.

Distribution checks use large tensors (10^5 elements or more), where the sample standard deviation
of a correct draw is within a fraction of a percent of the formula; the tolerances (2-3 %) are many
standard errors wide, and a wrong formula (a missing sqrt(3), the wrong fan, the wrong gain) is
off by far more than that.
"""

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.nn import init


def host(t):
    return t.detach().cpu().numpy()


def big(device, shape=(384, 128, 3), dtype=tn.float64):
    return tn.empty(*shape, dtype=dtype, device=device)


# --- gains and fans ------------------------------------------------------------------------------
def test_calculate_gain_formulas():
    for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid"):
        assert init.calculate_gain(name) == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", 0) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


def test_calculate_gain_matches_pytorch():
    torch = pytest.importorskip("torch")
    cases = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
             ("relu", None), ("selu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
             ("leaky_relu", math.sqrt(5)), ("leaky_relu", 3)]
    for name, param in cases:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-12), (name, param)


@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=5).map(tuple))
def test_fans_of_linear_and_conv_weights(shape):
    receptive = math.prod(shape[2:])
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(tn.empty(*shape))
    assert (fan_in, fan_out) == (shape[1] * receptive, shape[0] * receptive)


def test_fans_known_values_and_pytorch():
    assert init._calculate_fan_in_and_fan_out(tn.empty(8, 4)) == (4, 8)
    assert init._calculate_fan_in_and_fan_out(tn.empty(16, 3, 5, 5)) == (75, 400)
    torch = pytest.importorskip("torch")
    for shape in [(8, 4), (16, 3, 5, 5), (6, 2, 3), (4, 2, 1, 2, 3)]:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert init._calculate_fan_in_and_fan_out(tn.empty(*shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(tn.empty(5))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_uniform_(tn.empty(5))


# --- distributions ------------------------------------------------------------------------------
def check_uniform(values, bound):
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.999 * bound and values.max() > 0.999 * bound  # fills the interval
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert abs(values.mean()) < 0.02 * bound


def check_normal(values, std, mean=0.0):
    assert values.std() == pytest.approx(std, rel=0.02)
    assert abs(values.mean() - mean) < 0.02 * std
    # Normal, not uniform: about 4.55 % of the samples lie beyond two standard deviations.
    assert np.mean(np.abs(values - mean) > 2 * std) == pytest.approx(0.0455, abs=0.005)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("leaky_relu", 0), ("leaky_relu", math.sqrt(5)),
                                            ("relu", 0), ("tanh", 0)])
def test_kaiming_uniform_bounds(device, mode, nonlinearity, a):
    tn.manual_seed(0)
    w = big(device)
    out = init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    assert out is w
    fan = 128 * 3 if mode == "fan_in" else 384 * 3
    gain = init.calculate_gain(nonlinearity, a)
    check_uniform(host(w), gain * math.sqrt(3 / fan))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal_std(device, mode):
    tn.manual_seed(1)
    w = big(device)
    assert init.kaiming_normal_(w, mode=mode, nonlinearity="relu") is w
    fan = 128 * 3 if mode == "fan_in" else 384 * 3
    check_normal(host(w), math.sqrt(2) / math.sqrt(fan))


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier(device, gain):
    tn.manual_seed(2)
    fan_in, fan_out = 128 * 3, 384 * 3
    w = big(device)
    assert init.xavier_uniform_(w, gain=gain) is w
    check_uniform(host(w), gain * math.sqrt(6 / (fan_in + fan_out)))
    assert init.xavier_normal_(w, gain=gain) is w
    check_normal(host(w), gain * math.sqrt(2 / (fan_in + fan_out)))


def test_uniform_normal_constant(device):
    tn.manual_seed(3)
    w = tn.empty(200_000, device=device)  # float32: bounds still hold after rounding
    init.uniform_(w, -0.5, 2.5)
    values = host(w)
    assert values.dtype == np.float32
    assert values.min() >= -0.5 and values.max() <= 2.5
    assert values.mean() == pytest.approx(1.0, abs=0.02)
    assert values.std() == pytest.approx(3 / math.sqrt(12), rel=0.02)
    init.normal_(w, mean=3.0, std=0.5)
    check_normal(host(w).astype(np.float64), 0.5, mean=3.0)
    assert np.all(host(init.constant_(w, 0.25)) == 0.25)
    assert np.all(host(init.zeros_(w)) == 0)
    assert np.all(host(init.ones_(w)) == 1)


def test_default_uniform_is_unit_interval():
    tn.manual_seed(4)
    values = host(init.uniform_(tn.empty(100_000, dtype=tn.float64)))
    assert values.min() >= 0 and values.max() < 1
    assert values.mean() == pytest.approx(0.5, abs=0.01)


def test_in_place_and_seen_through_state_dict():
    fc = tn.nn.Linear(6, 3)
    before = fc.state_dict()["weight"]  # a detached tensor sharing the parameter's memory
    init.ones_(fc.weight)
    assert np.all(host(before) == 1)
    assert fc.weight.requires_grad and fc.weight.grad_fn is None  # still a trainable leaf


def test_integer_tensors_refused_for_random_init():
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(tn.zeros(3, dtype=tn.int64))


def test_invalid_mode():
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_uniform_(tn.empty(3, 4), mode="fan_avg")


def test_zero_element_tensor_warns_and_is_untouched():
    w = tn.empty(0, 4)
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(w) is w


# --- seeding ------------------------------------------------------------------------------------
ALL_RANDOM = [
    lambda w, **kw: init.kaiming_uniform_(w, a=math.sqrt(5), **kw),
    lambda w, **kw: init.kaiming_normal_(w, **kw),
    lambda w, **kw: init.xavier_uniform_(w, **kw),
    lambda w, **kw: init.xavier_normal_(w, **kw),
    lambda w, **kw: init.uniform_(w, -1, 1, **kw),
    lambda w, **kw: init.normal_(w, 0, 2, **kw),
]


@pytest.mark.parametrize("fill", ALL_RANDOM)
def test_reproducible_from_manual_seed_and_same_on_every_device(device, fill):
    tn.manual_seed(123)
    a = host(fill(tn.empty(5, 7, device=device)))
    b_next = host(fill(tn.empty(5, 7, device=device)))  # the stream moved on
    tn.manual_seed(123)
    c = host(fill(tn.empty(5, 7)))  # on the CPU
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b_next)


@pytest.mark.parametrize("fill", ALL_RANDOM)
def test_reproducible_from_generator_and_independent_of_default(device, fill):
    a = host(fill(tn.empty(4, 6, device=device), generator=tn.Generator(7)))
    tn.manual_seed(0)
    tn.randn(10)  # moving the default stream does not change a private generator's draws
    b = host(fill(tn.empty(4, 6, device=device), generator=tn.Generator(7)))
    c = host(fill(tn.empty(4, 6, device=device), generator=tn.Generator(8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generator_does_not_touch_default_stream():
    tn.manual_seed(5)
    expected = host(tn.randn(3))
    tn.manual_seed(5)
    init.normal_(tn.empty(10, 10), generator=tn.Generator(1))
    np.testing.assert_array_equal(host(tn.randn(3)), expected)


def test_no_numpy_global_rng_use():
    np.random.seed(0)
    expected = np.random.rand(3)
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.kaiming_uniform_(tn.empty(8, 8))
        init.normal_(tn.empty(8, 8))
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_docs_initialisation_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Initialisation\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/nn.md has no '## Initialisation' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/nn.md (Initialisation)", "exec"), {})
