"""Core layers (``Linear``, ``Flatten``, ``Identity``, ``Dropout``, ``Embedding``) and the
activation modules: forward against NumPy closed forms, float64 gradient checks on
hypothesis-chosen shapes, train/eval behaviour, default initialisation, state dicts, reprs, PyTorch
agreement (when torch is installed), on every device.
"""

import math
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


# --- Linear --------------------------------------------------------------------------------------
@FEWER
@given(data=st.data(), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple),
       d_in=st.integers(1, 4), d_out=st.integers(1, 3), bias=st.booleans())
def test_linear_forward_and_gradients(device, data, lead, d_in, d_out, bias):
    x = data.draw(arrays(lead + (d_in,)), label="x")
    w = data.draw(arrays((d_out, d_in)), label="w")
    b = data.draw(arrays((d_out,)), label="b") if bias else None
    xt, wt = t64(x, device), t64(w, device)
    bt = t64(b, device) if bias else None
    expected = x @ w.T + (b if bias else 0)
    np.testing.assert_allclose(host(F.linear(xt, wt, bt)), expected, rtol=1e-12, atol=1e-12)
    if bias:
        check_gradients(F.linear, xt, wt, bt)
    else:
        check_gradients(F.linear, xt, wt)


def test_linear_module_init_shapes_repr(device):
    tn.manual_seed(0)
    fc = nn.Linear(400, 300, device=device)
    assert fc.weight.shape == (300, 400) and fc.bias.shape == (300,)
    assert fc.weight.device == tn.device(device) and fc.weight.dtype == tn.float32
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    w, b = host(fc.weight), host(fc.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(b).max() <= bound and b.std() == pytest.approx(bound / math.sqrt(3), rel=0.15)
    assert repr(nn.Linear(4, 2)) == "Linear(in_features=4, out_features=2, bias=True)"
    no_bias = nn.Linear(4, 2, bias=False, dtype=tn.float64)
    assert repr(no_bias) == "Linear(in_features=4, out_features=2, bias=False)"
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    assert no_bias.weight.dtype == tn.float64
    assert [n for n, _ in fc.named_parameters()] == ["weight", "bias"]


def test_linear_init_is_seeded_and_device_independent(device):
    tn.manual_seed(11)
    a = nn.Linear(5, 3, device=device)
    tn.manual_seed(11)
    b = nn.Linear(5, 3)
    np.testing.assert_array_equal(host(a.weight), host(b.weight))
    np.testing.assert_array_equal(host(a.bias), host(b.bias))


def test_linear_module_trains_its_parameters(device):
    fc = nn.Linear(3, 2, device=device, dtype=tn.float64)
    x = tn.randn(4, 3, dtype=tn.float64, device=device)
    fc(x).sum().backward()
    np.testing.assert_allclose(host(fc.weight.grad), np.tile(host(x).sum(0), (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(host(fc.bias.grad), [4.0, 4.0])


def test_linear_state_dict_round_trip(device):
    a, b = nn.Linear(3, 2, device=device), nn.Linear(3, 2, device=device)
    b.load_state_dict(a.state_dict())
    x = tn.randn(5, 3, device=device)
    np.testing.assert_array_equal(host(a(x)), host(b(x)))


def test_linear_matches_pytorch(device):
    torch = pytest.importorskip("torch")
    ref = torch.nn.Linear(4, 3).double()
    ours = nn.Linear(4, 3, device=device, dtype=tn.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    np.testing.assert_allclose(host(ours(tn.tensor(x, device=device))),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-12)


# --- Flatten, Identity ---------------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple), data=st.data())
def test_flatten(device, shape, data):
    start = data.draw(st.integers(-len(shape), len(shape) - 1), label="start_dim")
    s = start % len(shape)
    end = data.draw(st.integers(s, len(shape) - 1), label="end_dim") - len(shape) * data.draw(
        st.booleans(), label="negative end")
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    e = end % len(shape)
    expected = x.reshape(shape[:s] + (-1,) + shape[e + 1:])
    layer = nn.Flatten(start, end)
    xt = t64(x, device)
    np.testing.assert_array_equal(host(layer(xt)), expected)
    check_gradients(layer, xt)


def test_flatten_default_and_repr():
    assert nn.Flatten()(tn.zeros(2, 3, 4, 5)).shape == (2, 60)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_identity(device):
    x = tn.randn(2, 3, device=device)
    layer = nn.Identity(54, unused="argument")
    assert layer(x) is x and repr(layer) == "Identity()" and list(layer.parameters()) == []


# --- Dropout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_train_mask_scale_and_keep_rate(device, p):
    tn.manual_seed(0)
    x_host = np.random.default_rng(1).uniform(0.5, 1.5, size=(200, 500))
    x = tn.tensor(x_host, device=device, requires_grad=True)
    y = nn.Dropout(p)(x)
    ratio = host(y) / x_host
    kept = ratio != 0
    np.testing.assert_allclose(ratio[kept], 1 / (1 - p), rtol=1e-12)  # inverted: kept scaled up
    assert kept.mean() == pytest.approx(1 - p, abs=0.01)  # 10^5 draws: sd of the rate < 0.0016
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), ratio, rtol=1e-12)  # gradient = the same mask


def test_dropout_eval_is_identity_and_train_flag(device):
    x = tn.randn(3, 4, device=device)
    drop = nn.Dropout(0.5)
    assert drop.eval()(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert drop.train()(x) is not x


def test_dropout_edge_probabilities(device):
    x = tn.randn(6, 7, device=device, requires_grad=True)
    assert nn.Dropout(0.0)(x) is x
    y = nn.Dropout(1.0)(x)
    assert np.all(host(y) == 0)
    y.sum().backward()
    assert np.all(host(x.grad) == 0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, bad)


def test_dropout_seeding(device):
    """A seed reproduces the masks on each device (the CPU draws them on the host, a GPU and the
    stand-in on the device, from the generator's counter stream: docs/devices.md)."""
    x = tn.ones(8, 8, device=device)
    tn.manual_seed(3)
    a = host(F.dropout(x, 0.5))
    b = host(F.dropout(x, 0.5))
    tn.manual_seed(3)
    c = host(F.dropout(tn.ones(8, 8, device=device), 0.5))  # same device, same seed: same mask
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}
    d1 = host(nn.Dropout(0.5, generator=tn.Generator(9))(x))
    tn.manual_seed(100)
    d2 = host(nn.Dropout(0.5, generator=tn.Generator(9))(x))
    np.testing.assert_array_equal(d1, d2)
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"


@FEWER
@given(data=st.data(), p=st.sampled_from([0.2, 0.5]))
def test_dropout_gradcheck(device, data, p):
    x = t64(data.draw(arrays((3, 4)), label="x"), device)
    # A fresh generator with a fixed seed per call: the same mask at every perturbation.
    check_gradients(lambda x: F.dropout(x, p, generator=tn.Generator(0)), x, second_order=True)


# --- Embedding -----------------------------------------------------------------------------------
@FEWER
@given(data=st.data(), rows=st.integers(1, 5), dim=st.integers(1, 3),
       idx_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple))
def test_embedding_forward_and_gradient(device, data, rows, dim, idx_shape):
    w = data.draw(arrays((rows, dim)), label="weight")
    idx = np.asarray(data.draw(st.lists(st.integers(0, rows - 1), min_size=math.prod(idx_shape),
                                        max_size=math.prod(idx_shape)), label="idx"))
    idx = idx.reshape(idx_shape)
    wt = t64(w, device)
    it = tn.tensor(idx, device=device)
    out = F.embedding(it, wt)
    np.testing.assert_array_equal(host(out), w[idx])
    g = data.draw(arrays(idx_shape + (dim,)), label="grad_out")
    out.backward(tn.tensor(g, device=device))
    expected = np.zeros_like(w)
    np.add.at(expected, idx, g)  # repeated indices accumulate
    np.testing.assert_allclose(host(wt.grad), expected, rtol=1e-12, atol=1e-15)
    check_gradients(lambda w: F.embedding(it, w), t64(w, device))


def test_embedding_padding_idx(device):
    tn.manual_seed(0)
    emb = nn.Embedding(6, 3, padding_idx=2, device=device, dtype=tn.float64)
    assert np.all(host(emb.weight)[2] == 0) and np.all(host(emb.weight)[[0, 1, 3, 4, 5]] != 0)
    with tn.no_grad():
        emb.weight[2] = 7.0  # the padding row is still looked up as stored ...
    idx = tn.tensor([[2, 1, 2], [0, 2, 5]], device=device)
    out = emb(idx)
    np.testing.assert_array_equal(host(out)[0, 0], [7.0, 7.0, 7.0])
    out.sum().backward()
    grad = host(emb.weight.grad)
    np.testing.assert_array_equal(grad[2], 0)  # ... but receives no gradient
    np.testing.assert_array_equal(grad[[0, 1, 5]], 1)
    np.testing.assert_array_equal(grad[[3, 4]], 0)
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4
    assert repr(nn.Embedding(5, 2, padding_idx=0)) == "Embedding(5, 2, padding_idx=0)"
    assert repr(nn.Embedding(5, 2)) == "Embedding(5, 2)"


def test_embedding_init_is_standard_normal():
    tn.manual_seed(1)
    w = host(nn.Embedding(1000, 100).weight)
    assert w.mean() == pytest.approx(0, abs=0.01) and w.std() == pytest.approx(1, rel=0.02)


def test_embedding_errors(device):
    """An index out of range raises IndexError: at the call on the CPU, at the next read of a
    value on a GPU (and the stand-in, which wraps the index as CuPy would)."""
    emb = nn.Embedding(4, 2, device=device)
    with pytest.raises(IndexError, match="index 4 is out of range .* 4 rows"):
        emb(tn.tensor([0, 4], device=device)).sum().item()
    with pytest.raises(IndexError, match="index -1 is out of range"):
        emb(tn.tensor([-1, 2], device=device)).sum().item()
    assert emb(tn.tensor([3, 0], device=device)).shape == (2, 2)  # told once, then clean
    emb(tn.tensor([3, 0], device=device)).sum().item()
    with pytest.raises(TypeError, match="integer tensor"):
        emb(tn.tensor([0.0, 1.0], device=device))
    with pytest.raises(ValueError, match="padding_idx 4"):
        nn.Embedding(4, 2, padding_idx=4)


def test_embedding_from_pretrained(device):
    table = tn.randn(5, 3, device=device)
    tn.manual_seed(0)
    emb = nn.Embedding.from_pretrained(table, padding_idx=1)
    np.testing.assert_array_equal(host(emb.weight), host(table))  # padding row kept as given
    assert emb.weight.device == tn.device(device) and not emb.weight.requires_grad
    assert emb.weight.data is not table.data  # a copy
    after = host(tn.randn(3))
    tn.manual_seed(0)
    np.testing.assert_array_equal(after, host(tn.randn(3)))  # no random draw was spent
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_embedding_matches_pytorch(device):
    torch = pytest.importorskip("torch")
    ref = torch.nn.Embedding(7, 3, padding_idx=1).double()
    ours = nn.Embedding(7, 3, padding_idx=1, device=device, dtype=tn.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    idx = np.array([[1, 3, 3], [6, 1, 0]])
    g = np.random.default_rng(0).standard_normal((2, 3, 3))
    ref(torch.tensor(idx)).backward(torch.tensor(g))
    out = ours(tn.tensor(idx, device=device))
    out.backward(tn.tensor(g, device=device))
    np.testing.assert_array_equal(host(out), ref.weight.detach().numpy()[idx])
    np.testing.assert_allclose(host(ours.weight.grad), ref.weight.grad.numpy(), rtol=1e-12)


# --- activation modules --------------------------------------------------------------------------
def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _softplus(x, beta, threshold):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


ACTIVATIONS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0), "ReLU()"),
    (nn.LeakyReLU(0.2), lambda x: np.where(x >= 0, x, 0.2 * x), "LeakyReLU(negative_slope=0.2)"),
    (nn.LeakyReLU(), lambda x: np.where(x >= 0, x, 0.01 * x), "LeakyReLU(negative_slope=0.01)"),
    (nn.GELU(), _gelu, "GELU(approximate='none')"),
    (nn.GELU("tanh"), _gelu_tanh, "GELU(approximate='tanh')"),
    (nn.Tanh(), np.tanh, "Tanh()"),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), "Sigmoid()"),
    (nn.Softplus(), lambda x: _softplus(x, 1.0, 20.0), "Softplus(beta=1.0, threshold=20.0)"),
    (nn.Softplus(2.0, 1.0), lambda x: _softplus(x, 2.0, 1.0), "Softplus(beta=2.0, threshold=1.0)"),
    (nn.Softmax(dim=1), lambda x: _softmax(x, 1), "Softmax(dim=1)"),
    (nn.Softmax(dim=0), lambda x: _softmax(x, 0), "Softmax(dim=0)"),
    (nn.LogSoftmax(dim=1), lambda x: np.log(_softmax(x, 1)), "LogSoftmax(dim=1)"),
]


@pytest.mark.parametrize("module,reference,text", ACTIVATIONS, ids=[a[2] for a in ACTIVATIONS])
@FEWER
@given(data=st.data(), shape=st.tuples(st.integers(1, 3), st.integers(1, 4)))
def test_activation_modules(device, module, reference, text, data, shape):
    # |x| >= 0.05 keeps the kinks of relu/leaky_relu, and beta*x off Softplus's threshold 1.0
    x = data.draw(arrays(shape, domain="real", margin=0.05, avoid=(0.0, 0.5)), label="x")
    xt = t64(x, device)
    np.testing.assert_allclose(host(module(xt)), reference(x), rtol=1e-10, atol=1e-12)
    check_gradients(module, xt)
    assert repr(module) == text
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_inplace_flag_accepted_and_input_unchanged():
    x = tn.tensor([-1.0, 2.0])
    for module, text in [(nn.ReLU(inplace=True), "ReLU(inplace=True)"),
                         (nn.LeakyReLU(0.1, inplace=True),
                          "LeakyReLU(negative_slope=0.1, inplace=True)")]:
        assert repr(module) == text
        assert module(x).tolist()[0] <= 0 and x.tolist() == [-1.0, 2.0]


def test_softmax_implicit_dim_warns_like_pytorch():
    x = tn.randn(2, 3)
    with pytest.warns(UserWarning, match="implicit dimension"):
        y = nn.Softmax()(x)
    np.testing.assert_allclose(host(y).sum(1), 1, rtol=1e-6)  # 2-D input: dim 1, as PyTorch
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


def test_activations_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((3, 5)) * 3
    pairs = [(nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)),
             (nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
             (nn.Tanh(), torch.nn.Tanh()), (nn.Sigmoid(), torch.nn.Sigmoid()),
             (nn.Softplus(0.5, 2.0), torch.nn.Softplus(0.5, 2.0)),
             (nn.Softmax(0), torch.nn.Softmax(0)), (nn.LogSoftmax(1), torch.nn.LogSoftmax(1))]
    for ours, ref in pairs:
        np.testing.assert_allclose(host(ours(tn.tensor(x))), ref(torch.tensor(x)).numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=repr(ours))
        assert repr(ours) == repr(ref)


def test_float32_stays_float32(device):
    x = tn.randn(4, 3, device=device)
    for module in (nn.Linear(3, 2, device=device), nn.Dropout(0.3), nn.Flatten(0), nn.GELU(),
                   nn.Softmax(1)):
        y = module(x)
        assert y.dtype == tn.float32 and y.device == tn.device(device), repr(module)
    emb = nn.Embedding(5, 2, padding_idx=0, device=device)
    assert emb(tn.tensor([0, 3], device=device)).dtype == tn.float32


def test_docs_layers_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Layers\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/nn.md has no '## Layers' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/nn.md (Layers)", "exec"), {})
