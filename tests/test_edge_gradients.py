"""Gradients at the edges of ops' domains, PyTorch's values as the reference.

Where a formula meets 0 * inf or 0 / 0 (``x ** 0`` at 0, ``0 ** x``, the std of a constant), a
NaN (``max`` of a slice holding NaN), a clamp (BCE at p = 0 or 1) or an empty axis (softmax over
length 0), tinynet gives PyTorch's value. Each test states the expected values from the math (or
PyTorch's documented choice) and, where torch is installed, runs the same program there too.
"""

import math

import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F

try:
    import torch
except ImportError:  # PyTorch is optional: the expected values are written from the math
    torch = None

NAN, INF = math.nan, math.inf


def _grads(lib, fn, *values, dtype="float64"):
    """``fn`` of leaves made from ``values`` in ``lib`` (tn or torch), summed and differentiated:
    (output, gradients), as NumPy arrays."""
    leaves = [lib.tensor(np.asarray(v, dtype=dtype), requires_grad=True) for v in values]
    out = fn(*leaves)
    out.sum().backward()
    return (out.detach().numpy(),) + tuple(leaf.grad.numpy() for leaf in leaves)


def check(fn, values, expected, torch_fn=None, dtype="float64"):
    """tinynet's output and gradients equal ``expected`` (NaN where NaN), and PyTorch's (with
    ``torch_fn``, or ``fn`` itself, when the spelling is the same) when torch is installed."""
    ours = _grads(tn, fn, *values, dtype=dtype)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    if torch is not None:
        theirs = _grads(torch, torch_fn or fn, *values, dtype=dtype)
        for got, want in zip(ours, theirs):
            np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


# --- pow -----------------------------------------------------------------------------------------


def test_x_to_the_zero_has_gradient_zero_everywhere_also_at_zero():
    """d(x^0)/dx = 0: not 0 * x^-1 = 0 * inf = NaN at x = 0."""
    check(lambda x: x**0, [[0.0, 1.0, -2.0]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    check(lambda x, e: x**e, [[0.0, 3.0], [0.0, 0.0]],
          [[1.0, 1.0], [0.0, 0.0], [0.0, math.log(3.0)]])


def test_zero_to_the_x_has_gradient_zero_for_x_at_least_zero():
    """0^x is constant (1 at x = 0, then 0) for x >= 0: the gradient is 0, not 0 * log(0) (a
    math domain error for a Python-number base); for x < 0, 0^x = inf and the gradient -inf."""
    x = [0.0, 1.0, 2.0, -1.0]
    check(lambda t: 0**t, [x], [[1.0, 0.0, 0.0, INF], [0.0, 0.0, 0.0, -INF]])
    check(lambda b, t: b**t, [0.0, x], [[1.0, 0.0, 0.0, INF], -INF, [0.0, 0.0, 0.0, -INF]])
    # a zero base with exponents 0.5, 2, 1: d/db b^x = x b^(x-1) = inf, 0, 1
    check(lambda b, t: b**t, [[0.0, 0.0, 0.0], [0.5, 2.0, 1.0]],
          [[0.0, 0.0, 0.0], [INF, 0.0, 1.0], [0.0, 0.0, 0.0]])


def test_a_negative_base_with_a_python_number_base_gives_nan_not_a_domain_error():
    out, grad = _grads(tn, lambda t: (-2.0) ** t, [2.0])
    assert out.tolist() == [4.0] and np.isnan(grad).all()


# --- var and std ---------------------------------------------------------------------------------


def test_std_of_a_constant_has_gradient_zero():
    """PyTorch's choice at the kink of sqrt(var): 0, not (x - mean) / 0 = NaN."""
    check(lambda x: x.std(), [[1.0, 1.0, 1.0]], [0.0, [0.0, 0.0, 0.0]])
    check(lambda x: x.std(dim=1), [[[2.0, 2.0], [1.0, 3.0]]],
          [[0.0, math.sqrt(2.0)], [[0.0, 0.0], [-1 / math.sqrt(2.0), 1 / math.sqrt(2.0)]]])
    check(lambda x: x.var(), [[1.0, 1.0, 1.0]], [0.0, [0.0, 0.0, 0.0]])


def test_var_and_std_with_correction_n_or_more_divide_by_zero_as_pytorch():
    """dof = max(n - correction, 0) = 0: the value is inf (NaN for a constant); the gradient is
    PyTorch's g * (inf, NaN where x is the mean) for var, NaN for std."""
    x = [1.0, 2.0, 4.0]
    for correction in (3, 4):
        check(lambda t, c=correction: t.var(correction=c), [x], [INF, [INF, INF, INF]])
        check(lambda t, c=correction: t.std(correction=c), [x], [INF, [NAN, NAN, NAN]])
    check(lambda t: t.var(correction=3), [[2.0, 2.0, 2.0]], [NAN, [NAN, NAN, NAN]])
    check(lambda t: t.var(correction=2), [x], [14 / 3, [-8 / 3, -2 / 3, 10 / 3]])


# --- NaN in extremes ------------------------------------------------------------------------------


def test_max_over_a_nan_sends_the_gradient_to_the_nan():
    check(lambda x: x.max(), [[1.0, NAN, 3.0]], [NAN, [0.0, 1.0, 0.0]])
    check(lambda x: x.max(dim=1).values, [[[1.0, NAN, 3.0], [1.0, 2.0, 3.0]]],
          [[NAN, 3.0], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    check(lambda x: x.min(), [[1.0, NAN, NAN]], [NAN, [0.0, 0.5, 0.5]])  # shared, as ties


def test_amax_over_a_nan_sends_the_gradient_to_the_nan():
    """A difference from PyTorch, whose amax(dim) spreads NaN over such a slice: tinynet keeps
    one rule for max, max(dim) and amax (the gradient always sums to g)."""
    out, grad = _grads(tn, lambda x: x.amax(dim=1), [[1.0, NAN, 3.0], [1.0, 2.0, 3.0]])
    assert np.isnan(out[0]) and out[1] == 3.0
    assert grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_maximum_and_minimum_send_the_gradient_to_the_nan_operand():
    """A difference from PyTorch, which sends g to both operands of a NaN pair: tinynet keeps
    its rule that the two gradients sum to g, the NaN that propagated being the winner."""
    a, b = [1.0, NAN, 3.0, NAN], [2.0, 1.0, NAN, NAN]
    for fn in (tn.maximum, tn.minimum):
        out, grad_a, grad_b = _grads(tn, fn, a, b)
        assert np.isnan(out[1:]).all()
        assert grad_a[1:].tolist() == [1.0, 0.0, 1.0] and grad_b[1:].tolist() == [0.0, 1.0, 0.0]


def test_max_pool_sends_the_gradient_to_the_nan_of_a_window():
    x = np.array([[[[1.0, NAN, 3.0, 4.0], [5.0, 6.0, NAN, 8.0],
                    [1.0, 2.0, 3.0, 4.0], [NAN, 0.0, 0.0, 1.0]]]])
    expected_grad = np.zeros_like(x)
    expected_grad[0, 0, 0, 1] = expected_grad[0, 0, 1, 2] = expected_grad[0, 0, 3, 0] = 1.0
    expected_grad[0, 0, 2, 3] = 1.0  # the last window has no NaN: its 4
    expected_out = [[[[NAN, NAN], [NAN, 4.0]]]]
    check(lambda t: F.max_pool2d(t, 2), [x], [expected_out, expected_grad],
          torch_fn=lambda t: torch.nn.functional.max_pool2d(t, 2))


# --- binary cross entropy at p = 0 and 1 --------------------------------------------------------


def test_binary_cross_entropy_at_zero_and_one_has_pytorchs_gradient():
    """Each log is clamped at -100 (loss 100) and the gradient is (p - y) / max(p (1 - p), 1e-12):
    +-1e12 for a confident wrong prediction, not the clamped logs' 0."""
    p, y = [0.0, 1.0, 0.0, 1.0, 0.3], [1.0, 0.0, 0.0, 1.0, 0.7]
    loss = [100.0, 100.0, 0.0, 0.0, -(0.7 * math.log(0.3) + 0.3 * math.log(0.7))]
    grad_p = [-1e12, 1e12, 0.0, 0.0, (0.3 - 0.7) / 0.21]
    with np.errstate(divide="ignore"):
        grad_y = [INF, -INF, INF, -INF, math.log(0.7) - math.log(0.3)]
    check(lambda p, y: F.binary_cross_entropy(p, y, reduction="none"), [p, y],
          [loss, grad_p, grad_y],
          torch_fn=lambda p, y: torch.nn.functional.binary_cross_entropy(p, y, reduction="none"))


def test_binary_cross_entropy_float32_at_the_clamp():
    out, grad = _grads(tn, lambda p: F.binary_cross_entropy(p, tn.tensor([1.0, 0.0]),
                                                            reduction="sum"),
                       [0.0, 1.0], dtype="float32")
    assert out.tolist() == 200.0 and grad.tolist() == pytest.approx([-1e12, 1e12], rel=1e-6)


# --- an empty axis ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_over_a_length_zero_axis_is_empty(name):
    fn = getattr(tn, name)
    check(lambda x: fn(x, 1), [np.zeros((2, 0))], [np.zeros((2, 0)), np.zeros((2, 0))],
          torch_fn=lambda x: getattr(torch, name)(x, 1))
    check(lambda x: fn(x, 0), [np.zeros((0, 3))], [np.zeros((0, 3)), np.zeros((0, 3))],
          torch_fn=lambda x: getattr(torch, name)(x, 0))


def test_logsumexp_over_a_length_zero_axis_is_minus_inf():
    check(lambda x: tn.logsumexp(x, 1), [np.zeros((2, 0))], [[-INF, -INF], np.zeros((2, 0))],
          torch_fn=lambda x: torch.logsumexp(x, 1))
    check(lambda x: tn.logsumexp(x, 1), [np.zeros((0, 3))], [np.zeros(0), np.zeros((0, 3))],
          torch_fn=lambda x: torch.logsumexp(x, 1))


def test_amax_over_a_length_zero_axis_names_the_problem():
    with pytest.raises(ValueError, match=r"^Amax: zero-size array"):
        tn.amax(tn.zeros(2, 0), 1)


# --- the same class elsewhere: other ops at their domain boundaries ---------------------------


BOUNDARIES = {  # name -> (fn, input, torch fn or None for the same spelling)
    "sqrt at 0": (lambda x: x.sqrt(), [0.0, 4.0], None),
    "log at 0": (lambda x: x.log(), [0.0, 1.0], None),
    "abs at 0": (lambda x: x.abs(), [0.0, -1.0], None),
    "relu at 0": (lambda x: x.relu(), [0.0, 1.0], None),
    "leaky_relu at 0": (lambda x: F.leaky_relu(x, 0.1), [0.0, -1.0],
                        lambda x: torch.nn.functional.leaky_relu(x, 0.1)),
    "clamp at its bounds": (lambda x: x.clamp(0.0, 1.0), [0.0, 1.0, 2.0], None),
    "maximum of a tie": (lambda x: tn.maximum(x, x * 1.0), [1.0, -1.0],
                         lambda x: torch.maximum(x, x * 1.0)),
    "division by 0": (lambda x: x / x.detach().clone().zero_(), [0.0, 1.0],
                      lambda x: x / x.detach().clone().zero_()),
    "x ** 2 at 0": (lambda x: x**2, [0.0], None),
    "x ** 0.5 at 0": (lambda x: x**0.5, [0.0], None),
    "sigmoid far out": (lambda x: x.sigmoid(), [-800.0, 800.0], None),
    "softplus far out": (lambda x: F.softplus(x), [-800.0, 800.0],
                         lambda x: torch.nn.functional.softplus(x)),
    "tanh far out": (lambda x: x.tanh(), [-800.0, 800.0], None),
    "mean over an empty axis": (lambda x: x.mean(1), np.zeros((2, 0)), None),
}


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", BOUNDARIES, ids=list(BOUNDARIES))
def test_gradients_at_domain_boundaries_match_pytorch(name):
    fn, value, torch_fn = BOUNDARIES[name]
    with np.errstate(all="ignore"):
        ours = _grads(tn, fn, value)
        theirs = _grads(torch, torch_fn or fn, value)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
