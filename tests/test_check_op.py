"""``check_op``: a user's op against a NumPy reference (forward) and central differences
(gradients, and second derivatives when asked), in one call, with messages that say where."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.testing import check_op, dtypes, shapes, tensors


class LogCosh(tn.Function):
    """log(cosh(x))  ->  grad_x = g * tanh(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(ctx.xp.cosh(x))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.xp.tanh(x)


def log_cosh(a):
    return np.logaddexp(a, -a) - np.log(2.0)  # the same function, written another way


@given(tensors(shape=shapes(max_side=3), non_contiguous=True))
def test_a_correct_op_passes_forward_gradients_and_second_order(x):
    check_op(LogCosh.apply, x, reference=log_cosh, second_order=True)


@given(data=st.data())
def test_a_correct_op_passes_in_both_dtypes_on_every_device(device, data):
    x = data.draw(tensors(shape=shapes(max_side=3), dtype=dtypes(), device=device))
    check_op(LogCosh.apply, x, reference=log_cosh, allow_float32=True)


def test_a_wrong_forward_fails_with_every_element_and_the_inputs_near_it():
    x = tn.tensor([[0.5, 1.0], [-2.0, 0.25]], dtype=tn.float64, requires_grad=True)
    with pytest.raises(AssertionError) as caught:
        check_op(LogCosh.apply, x, reference=lambda a: np.log(np.cosh(a)) * 1.01)
    message = str(caught.value)
    assert message.startswith("check_op: LogCosh.apply: out differs from the reference "
                              "`lambda a: np.log(np.cosh(a)) * 1.01` (test_check_op.py:")
    assert "at 4 of 4 elements (rtol=1e-07, atol=1e-09), worst first:" in message
    lines = message.splitlines()
    assert lines[1].startswith("  out[1, 0]: got ")  # the largest |error| first
    assert float(lines[1].split("expected ")[1]) == pytest.approx(np.log(np.cosh(2.0)) * 1.01)
    assert "x[1, 0] = -2.0; x[0:2, 0:2] is" in message


class LogCoshWrongGrad(LogCosh):
    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.xp.tanh(x) * 0.5


def test_a_right_forward_with_a_wrong_backward_fails_on_the_gradient():
    x = tn.tensor([0.5, 1.0], dtype=tn.float64, requires_grad=True)
    with pytest.raises(AssertionError, match=r"^gradcheck: LogCoshWrongGrad\.apply: the gradient "
                                             r"with respect to 'x'"):
        check_op(LogCoshWrongGrad.apply, x, reference=log_cosh)
    check_op(LogCoshWrongGrad.apply, x, reference=log_cosh, gradients=False)  # forward only


def test_dtype_shape_and_count_of_outputs_are_checked():
    x = tn.tensor([0.5, 1.0], dtype=tn.float32, requires_grad=True)
    with pytest.raises(AssertionError, match=r"out is float64 for float32 inputs"):
        check_op(lambda x: tn.cast(x, tn.float64), x, reference=lambda a: a, gradients=False)
    with pytest.raises(AssertionError, match=r"out has shape \(2,\), the reference .* gives \(\)"):
        check_op(lambda x: x * 2, x, reference=lambda a: (a * 2).sum(), gradients=False)
    with pytest.raises(AssertionError, match=r"returned 2 output\(s\), the reference .* 1"):
        check_op(lambda x: (x, x), x, reference=lambda a: a, gradients=False)


def test_non_tensor_arguments_reach_the_reference_unchanged():
    x = tn.tensor([[0.5, 1.0, -1.5]], dtype=tn.float64, requires_grad=True)
    check_op(lambda x, axis: x.softmax(axis=axis), x, -1,
             reference=lambda a, axis: np.exp(a) / np.exp(a).sum(axis=axis, keepdims=True),
             second_order=True)
