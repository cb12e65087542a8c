"""``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm`` and their functional forms.

Forward outputs and running statistics are checked step by step against a NumPy reimplementation of
PyTorch's rules written here channel by channel (batch statistics with the biased variance for
normalising, the unbiased one folded into ``running_var``; ``momentum=None`` as a cumulative
average); eval mode against the same running statistics. Gradients by float64 central differences
on hypothesis-chosen shapes (training mode, with respect to input, weight and bias). Then state
dicts, errors, and agreement with PyTorch when it is installed.

The layers run primitives with a written-out backward (``tinynet/ops/normalization.py``); the
compositions they replaced (``tinynet/testing/norm_reference.py``) are the reference they must
match: values, running statistics, gradients and second derivatives on hypothesis shapes, float64,
every device; and PyTorch's ``F.batch_norm`` / ``F.layer_norm`` to second order.
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
from tinynet.testing.norm_reference import composed_batch_norm, composed_layer_norm
from tinynet.testing.op_table import recorded_ops

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


# --- the primitives against the composed versions they replaced -------------------------------
# tinynet/testing/norm_reference.py keeps the functions built from mean/sub/mul/pow: the
# primitives (LayerNorm, BatchNorm, BatchNormEval, backward written by hand) must give the same
# values, running statistics, gradients and second derivatives, on hypothesis shapes, float64.


def _grads_two_orders(fn, inputs, g, u):
    """y = fn(*inputs); first order: the vector-Jacobian product with g; second order: the
    gradient of <first-order gradients, u> (a Hessian-vector product of <y, g>)."""
    y = fn(*inputs)
    first = tn.grad(y, inputs, g, create_graph=True)
    total = sum((a * b).sum() for a, b in zip(first, u))
    if not total.requires_grad:  # y linear in the inputs (eval mode, x alone): no second order
        return y, first, [tn.zeros_like(t) for t in inputs]
    second = tn.grad(total, inputs, allow_unused=True, materialize_grads=True)
    return y, first, second


def _assert_same(got, expected, what, rtol=1e-9, atol=1e-11):
    for i, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(host(a), host(b), rtol=rtol, atol=atol,
                                   err_msg=f"{what}, input {i}")


def _compare(device, primitive, composed, inputs, data, rtol=1e-9, atol=1e-11):
    """Values, first- and second-order gradients of ``primitive`` equal ``composed``'s (each
    called once: the output has the input's shape)."""
    g = t64(data.draw(arrays(tuple(inputs[0].shape)), label="g"), device, requires_grad=False)
    u = [t64(data.draw(arrays(tuple(t.shape)), label=f"u{i}"), device, requires_grad=False)
         for i, t in enumerate(inputs)]
    y_p, first_p, second_p = _grads_two_orders(primitive, inputs, g, u)
    y_c, first_c, second_c = _grads_two_orders(composed, inputs, g, u)
    np.testing.assert_allclose(host(y_p), host(y_c), rtol=rtol, atol=atol, err_msg="values")
    _assert_same(first_p, first_c, "first-order gradient", rtol, atol)
    _assert_same(second_p, second_c, "second-order gradient", rtol * 10, atol * 10)
    return y_p


def _recorded(y) -> set:
    return {op.__name__ for op in recorded_ops([y])}


@FEWER
@given(data=st.data(), case=bn_cases(max_elements=30), affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5]), eps=st.sampled_from([1e-5, 1e-1]))
def test_batch_norm_train_primitive_matches_composed(device, data, case, affine, momentum, eps):
    _, shape = case
    c = shape[1]
    x = t64(data.draw(arrays(shape, domain="distinct"), label="x"), device)
    params = [t64(data.draw(arrays((c,)), label=name), device) for name in ("w", "b")] \
        if affine else []
    stats = {impl: (t64(np.zeros(c), device, False), t64(np.ones(c), device, False))
             for impl in ("primitive", "composed")}

    def run(fn, impl):
        def call(x, *wb):
            return fn(x, *stats[impl], *(wb or (None, None)), training=True, momentum=momentum,
                      eps=eps)
        return call

    y = _compare(device, run(F.batch_norm, "primitive"), run(composed_batch_norm, "composed"),
                 [x, *params], data)
    assert _recorded(y) == {"BatchNormOp"}  # one node: the derivative is written in one place
    for got, expected in zip(stats["primitive"], stats["composed"]):  # running mean, var
        np.testing.assert_allclose(host(got), host(expected), rtol=1e-12, atol=1e-14)


@FEWER
@given(data=st.data(), case=bn_cases(max_elements=30), affine=st.booleans(),
       stats_need_grad=st.booleans())
def test_batch_norm_eval_primitive_matches_composed(device, data, case, affine, stats_need_grad):
    """Eval mode; with ``stats_need_grad`` the statistics are graph inputs, as SyncBatchNorm's
    global batch statistics are: their gradients (and second derivatives) must match too."""
    _, shape = case
    c = shape[1]
    x = t64(data.draw(arrays(shape), label="x"), device)
    mean = t64(data.draw(arrays((c,)), label="mean"), device, stats_need_grad)
    var = t64(data.draw(arrays((c,), domain="positive"), label="var"), device, stats_need_grad)
    params = [t64(data.draw(arrays((c,)), label=name), device) for name in ("w", "b")] \
        if affine else []
    inputs = [x, mean, var, *params] if stats_need_grad else [x, *params]

    def run(fn):
        def call(*ts):
            x, m, v, rest = (ts[0], ts[1], ts[2], ts[3:]) if stats_need_grad \
                else (ts[0], mean, var, ts[1:])
            return fn(x, m, v, *(rest or (None, None)), training=False, eps=1e-5)
        return call

    y = _compare(device, run(F.batch_norm), run(composed_batch_norm), inputs, data)
    assert _recorded(y) == {"BatchNormEvalOp"}


@FEWER
@given(data=st.data(), shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
       k=st.integers(1, 3), affine=st.sampled_from(["both", "weight", "bias", "none"]),
       eps=st.sampled_from([1e-5, 1e-1]))
def test_layer_norm_primitive_matches_composed(device, data, shape, k, affine, eps):
    k = min(k, len(shape))
    normalized = shape[len(shape) - k:]
    x = t64(data.draw(arrays(shape, domain="distinct"), label="x"), device)
    w = t64(data.draw(arrays(normalized), label="w"), device) if affine in ("both", "weight") \
        else None
    b = t64(data.draw(arrays(normalized), label="b"), device) if affine in ("both", "bias") \
        else None
    params = [t for t in (w, b) if t is not None]

    def run(fn):
        def call(x, *ps):
            it = iter(ps)
            return fn(x, normalized, next(it) if w is not None else None,
                      next(it) if b is not None else None, eps)
        return call

    y = _compare(device, run(F.layer_norm), run(composed_layer_norm), [x, *params], data)
    assert _recorded(y) == {"LayerNormOp"}


@FEWER
@given(data=st.data(), case=bn_cases(max_elements=18))
def test_batchnorm_training_second_order_on_hypothesis_shapes(device, data, case):
    _, shape = case
    c = shape[1]
    x = t64(data.draw(arrays(shape, domain="distinct"), label="x"), device)
    w = t64(data.draw(arrays((c,)), label="weight"), device)
    b = t64(data.draw(arrays((c,)), label="bias"), device)
    check_gradients(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b,
                    second_order=True)


def test_layers_record_one_readable_node(device):
    """A BatchNorm or LayerNorm layer is one node in a graph and a trace, named after it."""
    x = tn.randn(4, 3, 2, device=device, requires_grad=True)
    bn = nn.BatchNorm1d(3, device=device)
    assert repr(bn(x).grad_fn) == "<BatchNormBackward>"
    assert repr(bn.eval()(x).grad_fn) == "<BatchNormEvalBackward>"
    ln = nn.LayerNorm(2, device=device)
    with tn.trace() as t:
        ln(x).sum().backward()
    table = t.table()
    assert "LayerNorm#1" in table and "grad_x = r (gh - mean(gh)" in table
    assert "Mean" not in table and "Pow" not in table  # not the composition


def test_saved_input_written_in_place_is_caught(device):
    x = tn.randn(4, 3, device=device)
    w = tn.ones(3, device=device, requires_grad=True)
    y = F.batch_norm(x, None, None, w, training=True)
    x += 1  # x was saved: the backward must not silently use the new values
    with pytest.raises(RuntimeError, match=r"BatchNorm.backward: .*modified by an inplace"):
        y.sum().backward()


def test_norm_argument_errors_name_the_function():
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(3,\), expected "
                                         r"normalized_shape \(4,\)"):
        F.layer_norm(tn.zeros(2, 4), 4, tn.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: bias has shape \(2,\), expected \(3,\)"):
        F.batch_norm(tn.zeros(2, 3), None, None, tn.ones(3), tn.ones(2), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_var has shape \(4,\)"):
        F.batch_norm(tn.zeros(2, 3), tn.zeros(3), tn.ones(4), training=False)
    with pytest.raises(ValueError, match="needs a channel dimension"):
        F.batch_norm(tn.zeros(3), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are needed"):
        F.batch_norm(tn.zeros(2, 3), None, None, training=False)


def test_batch_norm_train_returns_the_batch_statistics(device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 3))
    y, mean, var = tn.ops.batch_norm_train(t64(x, device), return_stats=True)
    assert y.requires_grad and not mean.requires_grad and not var.requires_grad
    np.testing.assert_allclose(host(mean), x.mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(host(var), x.var((0, 2)), rtol=1e-12)  # biased


# --- PyTorch's functional forms, second order included -----------------------------------------
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 2, 4)])
def test_functional_batch_norm_matches_pytorch_to_second_order(device, shape, training):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, g, u = (rng.standard_normal(shape) * 2 + 0.5 for _ in range(3))
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training, 0.3, 1e-3)
    tfirst = torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(g), create_graph=True)
    tsecond = torch.autograd.grad((tfirst[0] * torch.tensor(u)).sum(), (tx, tw),
                                  allow_unused=True, materialize_grads=True)
    ox, ow, ob = (t64(a, device) for a in (x, w, b))
    orm, orv = t64(rm, device, False), t64(rv, device, False)
    oy = F.batch_norm(ox, orm, orv, ow, ob, training, 0.3, 1e-3)
    ofirst = tn.grad(oy, (ox, ow, ob), t64(g, device, False), create_graph=True)
    osecond = tn.grad((ofirst[0] * t64(u, device, False)).sum(), (ox, ow), allow_unused=True,
                      materialize_grads=True)
    np.testing.assert_allclose(host(oy), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(ofirst + osecond, tfirst + tsecond):
        np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(host(orm), trm.numpy(), rtol=1e-12)  # running stats, updated
    np.testing.assert_allclose(host(orv), trv.numpy(), rtol=1e-12)  # in training only


@pytest.mark.parametrize("normalized, affine", [((4,), True), ((3, 4), True), ((4,), False)])
def test_functional_layer_norm_matches_pytorch_to_second_order(device, normalized, affine):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    shape = (2, 3, 4)
    x, g, u = (rng.standard_normal(shape) for _ in range(3))
    w, b = rng.standard_normal(normalized), rng.standard_normal(normalized)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    targs = (tw, tb) if affine else (None, None)
    ty = torch.nn.functional.layer_norm(tx, normalized, *targs, eps=1e-4)
    tin = (tx, tw, tb) if affine else (tx,)
    tfirst = torch.autograd.grad(ty, tin, torch.tensor(g), create_graph=True)
    tsecond = torch.autograd.grad((tfirst[0] * torch.tensor(u)).sum(), tin, allow_unused=True,
                                  materialize_grads=True)
    ox, ow, ob = (t64(a, device) for a in (x, w, b))
    oin = (ox, ow, ob) if affine else (ox,)
    oy = F.layer_norm(ox, normalized, *((ow, ob) if affine else (None, None)), eps=1e-4)
    ofirst = tn.grad(oy, oin, t64(g, device, False), create_graph=True)
    osecond = tn.grad((ofirst[0] * t64(u, device, False)).sum(), oin, allow_unused=True,
                      materialize_grads=True)
    np.testing.assert_allclose(host(oy), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(ofirst + osecond, tfirst + tsecond):
        np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["batch_train", "batch_eval", "layer"])
def test_mixed_dtypes_promote_as_the_composition_did(device, kind):
    """float32 input through a float64 layer: a float64 result, and each gradient in its own
    input's dtype (the primitive sees one dtype: the function casts, a recorded op)."""
    rng = np.random.default_rng(2)
    x = tn.tensor(rng.standard_normal((4, 3)).astype(np.float32), device=device,
                  requires_grad=True)
    w, b = t64(rng.uniform(0.5, 2, 3), device), t64(rng.standard_normal(3), device)
    m, v = t64(rng.standard_normal(3), device, False), t64(rng.uniform(0.5, 2, 3), device, False)
    calls = {"batch_train": (lambda f: f(x, None, None, w, b, True), F.batch_norm,
                             composed_batch_norm),
             "batch_eval": (lambda f: f(x, m, v, w, b, False), F.batch_norm, composed_batch_norm),
             "layer": (lambda f: f(x, 3, w, b), F.layer_norm, composed_layer_norm)}
    call, primitive, composed = calls[kind]
    results = []
    for fn in (primitive, composed):
        y = call(fn)
        grads = tn.grad(y, (x, w, b), tn.ones_like(y))
        results.append((y, *grads))
    for got, expected in zip(*results):  # the composition standardised in float32: its rounding
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(host(got), host(expected), rtol=1e-5, atol=1e-6)
    assert results[0][0].dtype == tn.float64 and results[0][1].dtype == tn.float32
