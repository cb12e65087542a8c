"""``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm`` and their functional forms.

Forward outputs and running statistics are checked step by step against a NumPy reimplementation of
PyTorch's rules written here channel by channel (batch statistics with the biased variance for
normalising, the unbiased one folded into ``running_var``; ``momentum=None`` as a cumulative
average); eval mode against the same running statistics. Gradients by float64 central differences
on hypothesis-chosen shapes (training mode, with respect to input, weight and bias). Then state
dicts, errors, and agreement with PyTorch when it is installed.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.nn.functional as F
from tinynet import nn
from tinynet.testing import arrays, check_gradients

FEWER = settings(max_examples=max(5, settings().max_examples * 2 // 5))


def host(t):
    return t.detach().cpu().numpy()


def t64(a, device, requires_grad=True):
    return tn.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=requires_grad)


# --- NumPy reference (PyTorch's documented rules, one channel at a time) -------------------------
class NumpyBatchNorm:
    def __init__(self, channels, momentum, eps, weight, bias):
        self.momentum, self.eps, self.weight, self.bias = momentum, eps, weight, bias
        self.running_mean = np.zeros(channels)
        self.running_var = np.ones(channels)
        self.num_batches_tracked = 0

    def train_step(self, x):
        self.num_batches_tracked += 1
        factor = 1 / self.num_batches_tracked if self.momentum is None else self.momentum
        out = np.empty_like(x)
        for c in range(x.shape[1]):
            values = x[:, c]
            n = values.size
            mean = values.sum() / n
            biased = ((values - mean) ** 2).sum() / n
            unbiased = ((values - mean) ** 2).sum() / (n - 1)
            out[:, c] = (values - mean) / np.sqrt(biased + self.eps) * self.weight[c] + self.bias[c]
            self.running_mean[c] = (1 - factor) * self.running_mean[c] + factor * mean
            self.running_var[c] = (1 - factor) * self.running_var[c] + factor * unbiased
        return out

    def eval_step(self, x):
        out = np.empty_like(x)
        for c in range(x.shape[1]):
            out[:, c] = ((x[:, c] - self.running_mean[c]) / np.sqrt(self.running_var[c] + self.eps)
                         * self.weight[c] + self.bias[c])
        return out


# input shapes by layer: (N, C), (N, C, L) for BatchNorm1d, (N, C, H, W) for BatchNorm2d
@st.composite
def bn_cases(draw, max_elements=24):
    kind = draw(st.sampled_from(["1d", "1d-seq", "2d"]))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    spatial = {"1d": (), "1d-seq": (draw(st.integers(1, 3)),),
               "2d": (draw(st.integers(1, 2)), draw(st.integers(1, 3)))}[kind]
    if n * int(np.prod(spatial)) < 2:  # at least two values per channel in training
        n = 2
    shape = (n, c) + spatial
    if np.prod(shape) > max_elements:
        shape = (2, c) + spatial
    return kind, shape


def make_bn(kind, channels, device, **kwargs):
    cls = nn.BatchNorm2d if kind == "2d" else nn.BatchNorm1d
    return cls(channels, device=device, dtype=tn.float64, **kwargs)


@FEWER
@given(data=st.data(), case=bn_cases(), momentum=st.sampled_from([0.1, 0.35, None]),
       steps=st.integers(1, 3), eps=st.sampled_from([1e-5, 1e-2]))
def test_batchnorm_steps_match_numpy(device, data, case, momentum, steps, eps):
    kind, shape = case
    channels = shape[1]
    bn = make_bn(kind, channels, device, momentum=momentum, eps=eps)
    weight = data.draw(arrays((channels,), domain="positive"), label="weight")
    bias = data.draw(arrays((channels,)), label="bias")
    bn.load_state_dict({"weight": weight, "bias": bias}, strict=False)
    ref = NumpyBatchNorm(channels, momentum, eps, weight, bias)
    for step in range(steps):
        # distinct values per channel: the batch variance is never 0
        x = data.draw(arrays(shape, domain="distinct"), label=f"batch {step}")
        np.testing.assert_allclose(host(bn(tn.tensor(x, device=device))), ref.train_step(x),
                                   rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(host(bn.running_mean), ref.running_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(bn.running_var), ref.running_var, rtol=1e-12, atol=1e-14)
    assert bn.num_batches_tracked.item() == steps and bn.num_batches_tracked.dtype == tn.int64

    bn.eval()
    stats = [host(b).copy() for b in bn.buffers()]
    x = data.draw(arrays(shape), label="eval batch")
    np.testing.assert_allclose(host(bn(tn.tensor(x, device=device))), ref.eval_step(x),
                               rtol=1e-9, atol=1e-10)
    for before, after in zip(stats, bn.buffers()):  # eval never updates the running statistics
        np.testing.assert_array_equal(host(after), before)


def test_batchnorm_defaults_and_state_dict_keys(device):
    bn = nn.BatchNorm2d(4, device=device)
    assert repr(bn) == ("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, "
                        "track_running_stats=True)")
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(host(bn.weight), 1)
    np.testing.assert_array_equal(host(bn.bias), 0)
    np.testing.assert_array_equal(host(bn.running_mean), 0)
    np.testing.assert_array_equal(host(bn.running_var), 1)
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.item() == 0
    bn.to(tn.float64)  # floating buffers are cast, the counter stays an integer
    assert bn.running_mean.dtype == tn.float64 and bn.num_batches_tracked.dtype == tn.int64


def test_batchnorm_without_affine_or_running_stats(device):
    plain = nn.BatchNorm1d(3, affine=False, device=device)
    assert list(plain.parameters()) == [] and plain.weight is None
    assert list(plain.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    free = nn.BatchNorm1d(3, track_running_stats=False, device=device, dtype=tn.float64)
    assert list(free.state_dict()) == ["weight", "bias"] and free.running_mean is None
    x = np.random.default_rng(0).standard_normal((5, 3))
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    for mode in (free.train(), free.eval()):  # batch statistics in both modes
        np.testing.assert_allclose(host(mode(tn.tensor(x, device=device))), expected, rtol=1e-10)


@FEWER
@given(data=st.data(), case=bn_cases(max_elements=18))
def test_batchnorm_training_gradcheck(device, data, case):
    kind, shape = case
    channels = shape[1]
    x = t64(data.draw(arrays(shape, domain="distinct"), label="x"), device)
    w = t64(data.draw(arrays((channels,)), label="weight"), device)
    b = t64(data.draw(arrays((channels,)), label="bias"), device)
    check_gradients(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    # Through the module, whose parameters are the leaves (running stats update along the way).
    bn = make_bn(kind, channels, device)
    check_gradients(lambda x, w, b: bn(x), x, bn.weight, bn.bias)


def test_batchnorm_second_order(device):
    x = t64(np.array([[0.3, -1.2], [1.1, 0.4], [-0.7, 2.0]]), device)
    w = t64([0.5, 1.5], device)
    b = t64([0.1, -0.2], device)
    check_gradients(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b,
                    second_order=True)


@FEWER
@given(data=st.data(), case=bn_cases())
def test_batchnorm_eval_gradcheck(device, data, case):
    _, shape = case
    channels = shape[1]
    mean = t64(data.draw(arrays((channels,)), label="running_mean"), device, requires_grad=False)
    var = t64(data.draw(arrays((channels,), domain="positive"), label="running_var"), device,
              requires_grad=False)
    x = t64(data.draw(arrays(shape), label="x"), device)
    w = t64(data.draw(arrays((channels,)), label="weight"), device)
    b = t64(data.draw(arrays((channels,)), label="bias"), device)
    check_gradients(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), x, w, b)


def test_batchnorm_errors(device):
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4D input, got 3D"):
        nn.BatchNorm2d(3, device=device)(tn.zeros(2, 3, 4, device=device))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 2D or 3D input, got 4D"):
        nn.BatchNorm1d(3, device=device)(tn.zeros(2, 3, 4, 4, device=device))
    with pytest.raises(ValueError, match="expected 3 channels"):
        nn.BatchNorm1d(3, device=device)(tn.zeros(2, 4, device=device))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3, device=device)(tn.zeros(1, 3, device=device))
    nn.BatchNorm1d(3, device=device).eval()(tn.zeros(1, 3, device=device))  # fine in eval mode
    with pytest.raises(ValueError, match="running_mean has shape"):
        F.batch_norm(tn.zeros(2, 3), tn.zeros(4), tn.ones(4), training=True)


def test_batchnorm_state_dict_round_trip(device):
    tn.manual_seed(0)
    a = nn.BatchNorm2d(3, device=device)
    for _ in range(3):
        a(tn.randn(4, 3, 2, 2, device=device) * 2 + 1)
    b = nn.BatchNorm2d(3, device=device)
    b.load_state_dict(a.state_dict())
    assert b.num_batches_tracked.item() == 3
    x = tn.randn(2, 3, 2, 2, device=device)
    np.testing.assert_array_equal(host(a.eval()(x)), host(b.eval()(x)))


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 2, 4)])
def test_batchnorm_matches_pytorch(device, momentum, shape):
    torch = pytest.importorskip("torch")
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d"}[len(shape)]
    ref = getattr(torch.nn, cls)(3, momentum=momentum).double()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.uniform(0.5, 2, 3)))
        ref.bias.copy_(torch.tensor(rng.standard_normal(3)))
    ours = getattr(nn, cls)(3, momentum=momentum, device=device, dtype=tn.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for _ in range(4):
        x = rng.standard_normal(shape) * 3 + 1
        xt = torch.tensor(x, requires_grad=True)
        ours_x = tn.tensor(x, device=device, requires_grad=True)
        g = rng.standard_normal(shape)
        expected = ref(xt)
        expected.backward(torch.tensor(g))
        y = ours(ours_x)
        y.backward(tn.tensor(g, device=device))
        np.testing.assert_allclose(host(y), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(host(ours_x.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(host(ours.state_dict()[key]), value.numpy(), rtol=1e-12,
                                   err_msg=key)
    np.testing.assert_allclose(host(ours.weight.grad), ref.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(host(ours.bias.grad), ref.bias.grad.numpy(), rtol=1e-9)
    ours.eval()
    ref.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(host(ours(tn.tensor(x, device=device))),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


# --- LayerNorm -----------------------------------------------------------------------------------
@FEWER
@given(data=st.data(), shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
       k=st.integers(1, 3), eps=st.sampled_from([1e-5, 1e-1]))
def test_layer_norm_forward_and_gradients(device, data, shape, k, eps):
    k = min(k, len(shape))
    normalized = shape[len(shape) - k:]
    x = data.draw(arrays(shape, domain="distinct"), label="x")
    w = data.draw(arrays(normalized), label="weight")
    b = data.draw(arrays(normalized), label="bias")
    axes = tuple(range(len(shape) - k, len(shape)))
    mean = x.mean(axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    expected = (x - mean) / np.sqrt(var + eps) * w + b
    ln = nn.LayerNorm(normalized, eps=eps, device=device, dtype=tn.float64)
    ln.load_state_dict({"weight": w, "bias": b})
    xt = t64(x, device)
    np.testing.assert_allclose(host(ln(xt)), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(host(ln.eval()(xt)), expected, rtol=1e-9, atol=1e-10)  # same
    check_gradients(lambda x, w, b: F.layer_norm(x, normalized, w, b, eps), xt, t64(w, device),
                    t64(b, device))


def test_layer_norm_second_order(device):
    x = t64([[0.3, -1.2, 0.8], [1.1, 0.4, -0.5]], device)
    check_gradients(lambda x, w, b: F.layer_norm(x, 3, w, b), x, t64([0.5, 1.5, -1.0], device),
                    t64([0.1, -0.2, 0.3], device), second_order=True)


def test_layer_norm_module_options_and_errors(device):
    ln = nn.LayerNorm(4, device=device)
    assert ln.normalized_shape == (4,) and list(ln.state_dict()) == ["weight", "bias"]
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
    np.testing.assert_array_equal(host(ln.weight), 1)
    np.testing.assert_array_equal(host(ln.bias), 0)
    assert list(nn.LayerNorm(4, elementwise_affine=False).parameters()) == []
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    with pytest.raises(ValueError, match=r"normalized_shape \(2, 4\) must match"):
        nn.LayerNorm((2, 4), device=device)(tn.zeros(3, 4, device=device))
    with pytest.raises(ValueError, match="must match"):
        F.layer_norm(tn.zeros(4), (1, 4))


def test_layer_norm_matches_pytorch(device):
    torch = pytest.importorskip("torch")
    ref = torch.nn.LayerNorm((3, 4)).double()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal((3, 4))))
        ref.bias.copy_(torch.tensor(rng.standard_normal((3, 4))))
    ours = nn.LayerNorm((3, 4), device=device, dtype=tn.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((2, 3, 4))
    g = rng.standard_normal((2, 3, 4))
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).backward(torch.tensor(g))
    ox = tn.tensor(x, device=device, requires_grad=True)
    y = ours(ox)
    y.backward(tn.tensor(g, device=device))
    np.testing.assert_allclose(host(y), ref(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(host(ox.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(host(ours.weight.grad), ref.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(host(ours.bias.grad), ref.bias.grad.numpy(), rtol=1e-9)


def test_float32_stays_float32(device):
    x = tn.randn(4, 3, 2, device=device)
    bn = nn.BatchNorm1d(3, device=device)
    for module in (bn, bn.eval(), nn.LayerNorm(2, device=device)):
        y = module(x)
        assert y.dtype == tn.float32 and y.device == tn.device(device), repr(module)
    assert bn.running_mean.dtype == tn.float32 and bn.running_var.dtype == tn.float32


def test_docs_normalization_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Normalization\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/nn.md has no '## Normalization' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/nn.md (Normalization)", "exec"), {})
