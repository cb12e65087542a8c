"""A user's own op, property-tested with ``tinynet.testing`` (the example of docs/testing.md), and
proof that ``check_gradients`` catches a wrong backward with a message that says where: the
argument by name, every failing element, worst first.
"""

import re

import numpy as np
import pytest
from hypothesis import given

import tinynet as tn
from tinynet.gradcheck_report import MAX_LISTED, element
from tinynet.testing import Domain, check_gradients, shapes, tensors

# --- the example from docs/testing.md ------------------------------------------------------------


class SoftSign(tn.Function):
    """x / (1 + |x|)  ->  grad_x = g / (1 + |x|)^2"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + ctx.xp.abs(x))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / (1 + ctx.xp.abs(x)) ** 2


# The second derivative jumps at 0 (|x| has a kink there): keep |x| >= 0.01.
@given(tensors(shape=shapes(max_side=3), margin=0.01, non_contiguous=True))
def test_softsign_gradients(x):
    check_gradients(SoftSign.apply, x, second_order=True)


# --- a wrong backward must fail, naming the input and its worst element --------------------------


class WrongCube(tn.Function):
    """x^3 with a deliberately wrong backward: 2 x^2 instead of 3 x^2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * 2 * x**2


# Distinct positive values: the error x^2 is largest at the largest x, a unique element.
DISTINCT_POSITIVE = Domain(0.25, 3.0, grid=1 / 16, unique=True)


# One failing entry of the message: "d out[i, j] / d x[k, l]: analytic A, numeric N, ...".
ENTRY = re.compile(r"d (out(?:\[[^\]]*\])?) / d (\w+(?:\[[^\]]*\])?): analytic (\S+), "
                   r"numeric (\S+),")


@given(tensors(shape=shapes(max_side=3), domain=DISTINCT_POSITIVE))
def test_check_gradients_names_argument_and_lists_the_worst_element_first(x):
    a = x.detach().numpy()
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(a), a.shape))
    with pytest.raises(AssertionError) as failure:
        check_gradients(WrongCube.apply, x)
    message = str(failure.value)
    assert "WrongCube.apply" in message and "'x' (input 0" in message
    entries = ENTRY.findall(message)
    # every diagonal entry is wrong: all are counted, the worst MAX_LISTED listed one per line
    assert f"at {a.size} of {a.size ** 2} Jacobian entries" in message
    assert len(entries) == min(a.size, MAX_LISTED)
    assert (f"... and {a.size - MAX_LISTED} more" in message) == (a.size > MAX_LISTED)
    errors = [abs(float(n) - float(g)) for _, _, g, n in entries]
    assert errors == sorted(errors, reverse=True)  # worst first
    out_name, x_name, analytic, numeric = entries[0]
    assert x_name == element("x", worst) and out_name == element("out", worst)
    assert float(analytic) == pytest.approx(2 * a[worst] ** 2)
    assert float(numeric) == pytest.approx(3 * a[worst] ** 2, rel=1e-6)


@given(tensors(shape=shapes(max_side=3), domain="positive"))
def test_check_gradients_fast_mode_catches_a_wrong_backward(x):
    with pytest.raises(AssertionError, match=r"WrongCube.*fast mode.*input 0"):
        check_gradients(WrongCube.apply, x, fast_mode=True)


def test_check_gradients_passes_a_second_input_and_names_it_when_wrong():
    class WrongMul(tn.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad_out):
            _, b = ctx.saved_tensors
            return grad_out * b, grad_out * b  # grad_b should be grad_out * a

    a = tn.tensor([[1.0, 2.0]], dtype=tn.float64, requires_grad=True)
    b = tn.tensor([[3.0, 5.0]], dtype=tn.float64, requires_grad=True)
    with pytest.raises(AssertionError, match=r"'b' \(input 1, shape \(1, 2\), float64\)"
                                             r"(.|\n)*worst first:\n  d out\[0, 1\] / d b\[0, 1\]"):
        check_gradients(WrongMul.apply, a, b)
