"""Higher-order gradients: ``create_graph=True`` records the backward pass itself.

Second derivatives of elementwise functions against their closed forms, full Hessians of
softmax-type functions and quadratic forms, Hessian-vector products of a small MLP loss against
finite differences of gradients and against the Hessian built by double backward, gradgradcheck
of composite functions, a third derivative, and the guarantee that first-order backward builds no
graph.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

HYP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large])


def arrays(shape=None, low=-2.0, high=2.0, max_side=4):
    """float64 arrays (1-2 dims, at most 16 elements unless ``shape`` is given) in [low, high]."""
    shapes = hnp.array_shapes(min_dims=1, max_dims=2, max_side=max_side) if shape is None else shape
    return hnp.arrays(np.float64, shapes, elements=st.floats(low, high, width=64))


def host(t: tn.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def leaf(values, device) -> tn.Tensor:
    return tn.tensor(values, dtype=tn.float64, device=device, requires_grad=True)


def hessian(fn, x: tn.Tensor) -> np.ndarray:
    """The full Hessian of scalar ``fn(x)`` by double backward: one row per element of ``x``."""
    (g,) = tn.grad(fn(x), x, create_graph=True)
    flat = g.reshape(-1)
    rows = []
    for i in range(x.numel()):
        (row,) = tn.grad(flat[i], x, retain_graph=True)
        rows.append(host(row).ravel())
    return np.stack(rows)


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _sig(x):
    return 1 / (1 + np.exp(-x))


# (name, tinynet function, closed-form second derivative, input range): ranges stay off kinks and
# poles (log and sqrt need x > 0, 1/x stays away from 0).
SECOND_DERIVATIVES = [
    ("cube", lambda x: x**3, lambda x: 6 * x, (-2, 2)),
    ("sin", tn.sin, lambda x: -np.sin(x), (-3, 3)),
    ("cos", tn.cos, lambda x: -np.cos(x), (-3, 3)),
    ("exp", tn.exp, np.exp, (-2, 2)),
    ("log", tn.log, lambda x: -1 / x**2, (0.2, 3)),
    ("sqrt", tn.sqrt, lambda x: -0.25 * x**-1.5, (0.2, 3)),
    ("reciprocal", lambda x: 1 / x, lambda x: 2 / x**3, (0.3, 3)),
    ("tanh", tn.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), (-3, 3)),
    ("sigmoid", tn.sigmoid, lambda x: _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x)), (-4, 4)),
    ("erf", tn.erf, lambda x: -4 * x / math.sqrt(math.pi) * np.exp(-x * x), (-2, 2)),
    ("softplus", tn.softplus, lambda x: _sig(x) * (1 - _sig(x)), (-4, 4)),
    ("gelu", tn.gelu, lambda x: _phi(x) * (2 - x * x), (-3, 3)),
    ("x_sin_x", lambda x: x * x.sin(), lambda x: 2 * np.cos(x) - x * np.sin(x), (-3, 3)),
]


@pytest.mark.parametrize("name,fn,second,domain", SECOND_DERIVATIVES,
                         ids=[case[0] for case in SECOND_DERIVATIVES])
@HYP
@given(data=st.data())
def test_second_derivative_matches_closed_form(device, name, fn, second, domain, data):
    x_host = data.draw(arrays(low=domain[0], high=domain[1]))
    x = leaf(x_host, device)
    (g,) = tn.grad(fn(x).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = tn.grad(g.sum(), x)  # elementwise: the Hessian is diagonal, this is its diagonal
    np.testing.assert_allclose(host(h), second(x_host), rtol=1e-9, atol=1e-12)


@HYP
@given(x_host=arrays(shape=st.integers(1, 5).map(lambda n: (n,))))
def test_logsumexp_hessian(device, x_host):
    s = np.exp(x_host - x_host.max())
    s /= s.sum()
    expected = np.diag(s) - np.outer(s, s)
    got = hessian(lambda t: tn.logsumexp(t, axis=0), leaf(x_host, device))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@HYP
@given(n=st.integers(1, 5), data=st.data())
def test_weighted_log_softmax_hessian(device, n, data):
    x_host = data.draw(arrays(shape=(n,)))
    w = data.draw(arrays(shape=(n,)))
    s = np.exp(x_host - x_host.max())
    s /= s.sum()
    expected = -w.sum() * (np.diag(s) - np.outer(s, s))  # log_softmax_i = x_i - logsumexp(x)
    w_t = tn.tensor(w, device=device)
    got = hessian(lambda t: (tn.log_softmax(t, axis=0) * w_t).sum(), leaf(x_host, device))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@HYP
@given(n=st.integers(1, 5), data=st.data())
def test_weighted_softmax_hessian(device, n, data):
    x_host = data.draw(arrays(shape=(n,)))
    w = data.draw(arrays(shape=(n,)))
    s = np.exp(x_host - x_host.max())
    s /= s.sum()
    eye = np.eye(n)
    # d2 s_i / dx_j dx_k = s_i [(d_ij - s_j)(d_ik - s_k) - s_j (d_jk - s_k)]
    d = eye - s[None, :]  # d[i, j] = d_ij - s_j
    per_i = s[:, None, None] * (d[:, :, None] * d[:, None, :]
                                - (s[:, None] * (eye - s[None, :]))[None, :, :])
    expected = np.tensordot(w, per_i, axes=1)
    w_t = tn.tensor(w, device=device)
    got = hessian(lambda t: (tn.softmax(t, axis=0) * w_t).sum(), leaf(x_host, device))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@HYP
@given(n=st.integers(1, 4), data=st.data())
def test_quadratic_form_hessian_is_a_plus_a_transpose(device, n, data):
    a = data.draw(arrays(shape=(n, n)))
    x_host = data.draw(arrays(shape=(n,)))
    a_t = tn.tensor(a, device=device)
    got = hessian(lambda t: t @ (a_t @ t), leaf(x_host, device))
    np.testing.assert_allclose(got, a + a.T, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Hessian-vector products of a small MLP loss
# --------------------------------------------------------------------------------------------

D_IN, D_HID, N_CLASSES, N = 3, 4, 2, 5
N_PARAMS = D_IN * D_HID + D_HID + D_HID * N_CLASSES + N_CLASSES


def mlp_loss(theta: tn.Tensor, x: tn.Tensor, labels: tn.Tensor) -> tn.Tensor:
    """Cross-entropy of a tanh MLP whose parameters are packed into one vector ``theta``."""
    sizes = [D_IN * D_HID, D_HID, D_HID * N_CLASSES, N_CLASSES]
    ends = np.cumsum(sizes)
    w1 = theta[0:ends[0]].reshape(D_IN, D_HID)
    b1 = theta[ends[0]:ends[1]]
    w2 = theta[ends[1]:ends[2]].reshape(D_HID, N_CLASSES)
    b2 = theta[ends[2]:ends[3]]
    hidden = (x @ w1 + b1).tanh()  # (N, D_HID)
    logp = tn.log_softmax(hidden @ w2 + b2, axis=-1)  # (N, N_CLASSES)
    rows = tn.arange(N, device=theta.device)
    return -logp[rows, labels].mean()


def _mlp_problem(device, seed: int):
    gen = tn.Generator(seed)
    theta = tn.randn(N_PARAMS, dtype=tn.float64, generator=gen, device=device, requires_grad=True)
    x = tn.randn(N, D_IN, dtype=tn.float64, generator=gen, device=device)
    labels = tn.randint(0, N_CLASSES, (N,), generator=gen, device=device)
    v = tn.randn(N_PARAMS, dtype=tn.float64, generator=gen, device=device)
    return theta, x, labels, v


def _hvp(theta, x, labels, v):
    (g,) = tn.grad(mlp_loss(theta, x, labels), theta, create_graph=True)
    (hv,) = tn.grad((g * v).sum(), theta)
    return host(hv)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_hvp_matches_finite_difference_of_gradients(device, seed):
    theta, x, labels, v = _mlp_problem(device, seed)
    eps = 1e-5

    def gradient_at(values):
        t = tn.tensor(values, device=device, requires_grad=True)
        (g,) = tn.grad(mlp_loss(t, x, labels), t)
        return host(g)

    fd = (gradient_at(host(theta) + eps * host(v)) - gradient_at(host(theta) - eps * host(v)))
    fd /= 2 * eps
    np.testing.assert_allclose(_hvp(theta, x, labels, v), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_hvp_matches_full_hessian_by_double_backward(device, seed):
    theta, x, labels, v = _mlp_problem(device, seed)
    h = hessian(lambda t: mlp_loss(t, x, labels), theta)
    np.testing.assert_allclose(h, h.T, rtol=1e-9, atol=1e-12)  # a Hessian is symmetric
    np.testing.assert_allclose(_hvp(theta, x, labels, v), h @ host(v), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# backward(create_graph=True), third derivatives, gradgradcheck
# --------------------------------------------------------------------------------------------


def test_backward_create_graph_makes_dot_grad_differentiable(device):
    x = leaf([0.5, -1.5, 2.0], device)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_allclose(host(g), 3 * host(x) ** 2)
    (h,) = tn.grad(g.sum(), x, retain_graph=True)
    np.testing.assert_allclose(host(h), 6 * host(x))
    x.grad = None
    g.sum().backward()  # the same through .backward(): accumulates f'' into a fresh .grad
    np.testing.assert_allclose(host(x.grad), 6 * host(x))


def test_third_derivative_of_x_to_the_fourth(device):
    x = leaf([-1.5, 0.5, 2.0], device)
    (d1,) = tn.grad((x**4).sum(), x, create_graph=True)
    (d2,) = tn.grad(d1.sum(), x, create_graph=True)
    (d3,) = tn.grad(d2.sum(), x)
    xs = host(x)
    np.testing.assert_allclose(host(d1), 4 * xs**3)
    np.testing.assert_allclose(host(d2), 12 * xs**2)
    np.testing.assert_allclose(host(d3), 24 * xs)


def test_mixed_second_derivative(device):
    # f = sum(x^2 y^3): d2f/dx dy = 6 x y^2
    x, y = leaf([1.0, -2.0], device), leaf([0.5, 3.0], device)
    (gx,) = tn.grad((x * x * y**3).sum(), x, create_graph=True)
    (gxy,) = tn.grad(gx.sum(), y)
    np.testing.assert_allclose(host(gxy), 6 * host(x) * host(y) ** 2)


COMPOSITES = {
    "tanh_times_sin": lambda x: (x.tanh() * x.sin()).sum(axis=-1),
    "log_softmax_times_x": lambda x: tn.log_softmax(x * 2, axis=-1) * x,
    "rational_log_exp": lambda x: (x * x + 1).log() / (x.exp() + 1),
    "normalise": lambda x: (x - x.mean()) / ((x * x).mean() + 1).sqrt(),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
@HYP
@given(x_host=arrays(max_side=3))
def test_gradgradcheck_composites(device, name, x_host):
    assert tn.gradgradcheck(COMPOSITES[name], (leaf(x_host, device),))


@HYP
@given(m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3), data=st.data())
def test_gradgradcheck_sigmoid_of_matmul(device, m, k, n, data):
    a = leaf(data.draw(arrays(shape=(m, k))), device)
    b = leaf(data.draw(arrays(shape=(k, n))), device)
    assert tn.gradgradcheck(lambda p, q: (p @ q).sigmoid(), (a, b))


def test_gradgradcheck_catches_a_wrong_second_derivative(device):
    class BadSquare(tn.Function):
        """x^2, with a backward that is right in value but not differentiable correctly"""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            # 2x from a detached copy of x: first order is right, but the gradient of this
            # gradient misses its dependence on x.
            const = x.detach() if isinstance(x, tn.Tensor) else x
            return grad_out * 2 * const

    x = leaf([0.5, 1.5], device)
    assert tn.gradcheck(BadSquare.apply, (x,))
    with pytest.raises(tn.GradcheckError):
        tn.gradgradcheck(BadSquare.apply, (x,))


# --------------------------------------------------------------------------------------------
# First order builds no graph
# --------------------------------------------------------------------------------------------


def test_first_order_grad_builds_no_graph(device):
    x = leaf([0.5, 1.0], device)
    (g,) = tn.grad((x.sin() * x).sum(), x)
    assert not g.requires_grad and g.grad_fn is None


def test_first_order_backward_builds_no_graph(device):
    x = leaf([0.5, 1.0], device)
    h = x.exp()
    h.retain_grad()
    (h * x).sum().backward()
    for g in (x.grad, h.grad):
        assert not g.requires_grad and g.grad_fn is None


def test_grad_of_a_first_order_gradient_raises(device):
    x = leaf([0.5, 1.0], device)
    (g,) = tn.grad((x**3).sum(), x)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tn.grad(g.sum(), x)
