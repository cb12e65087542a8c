"""What a failing gradient check says: names, elements, neighbourhoods, Jacobians, hints.

The function by name (a Function's class, a lambda's source text), each argument by its parameter
name, the output multi-index of every failing entry (worst first, capped with a count), the input
values around the worst one, both Jacobians when small, and for a second-order failure a hint
about saved values that become constants. Also the float32 tolerances of ``allow_float32``.
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.gradcheck import TOLERANCES
from tinynet.gradcheck_report import MAX_JACOBIAN, MAX_LISTED
from tinynet.testing import check_gradients, shapes, tensors

from planted import WrongSquare

ENTRY = re.compile(r"^  d (\S+(?:\[[^\]]*\])?) / d (\S+(?:\[[^\]]*\])?): analytic", re.M)


class ScaledPow(tn.Function):
    """base ** exponent, with the exponent's gradient off by a factor 2."""

    @staticmethod
    def forward(ctx, base, exponent):
        out = base**exponent
        ctx.save_for_backward(base, exponent, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        base, exponent, out = ctx.saved_tensors
        xp = ctx.xp
        return grad_out * exponent * base ** (exponent - 1), 2 * grad_out * out * xp.log(base)


def failure(fn, *inputs, check=tn.gradcheck, **kw) -> str:
    with pytest.raises(tn.GradcheckError) as caught:
        check(fn, inputs, **kw)
    return str(caught.value)


def test_the_function_and_argument_are_named_from_the_signature():
    base = tn.tensor([[1.5, 2.0]], dtype=tn.float64, requires_grad=True)
    exponent = tn.tensor([[0.5, 3.0]], dtype=tn.float64, requires_grad=True)
    message = failure(ScaledPow.apply, base, exponent)
    assert message.startswith("gradcheck: ScaledPow.apply: the gradient with respect to "
                              "'exponent' (input 1, shape (1, 2), float64)")
    assert "input 1" not in message.split("\n", 1)[1]  # entries use the name: d out[0, 1] / ...
    assert ENTRY.findall(message)[0] == ("out[0, 1]", "exponent[0, 1]")


def test_a_lambda_is_named_by_its_source_text_and_line():
    a = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    message = failure(lambda a, b: WrongSquare.apply(a) * b, a, tn.tensor(2.0, dtype=tn.float64))
    line = test_a_lambda_is_named_by_its_source_text_and_line.__code__.co_firstlineno + 2
    assert message.startswith(f"gradcheck: `lambda a, b: WrongSquare.apply(a) * b` "
                              f"(test_gradcheck_report.py:{line}): the gradient with respect to "
                              f"'a' (input 0")


@settings(max_examples=10)
@given(tensors(shape=shapes(min_dims=1, max_side=4), domain="positive"))
def test_every_failing_entry_is_listed_worst_first_up_to_a_cap(x):
    message = failure(WrongSquare.apply, x)
    n = x.numel()
    entries = ENTRY.findall(message)
    assert len(entries) == min(n, MAX_LISTED)
    if n > MAX_LISTED:
        assert f"  ... and {n - MAX_LISTED} more" in message
    values = x.detach().numpy()
    worst = np.unravel_index(np.argmax(values), values.shape)  # error x grows with x
    index = ", ".join(str(int(i)) for i in worst)
    assert entries[0] == (f"out[{index}]", f"x[{index}]")
    # every listed entry is on the diagonal: d out[i] / d x[i]
    assert all(o[3:] == i[1:] for o, i in entries)
    assert f"of {n * n} Jacobian entries" in message and f"differences at {n} of" in message


def test_the_input_values_near_the_worst_entry_are_shown():
    x = tn.tensor(np.arange(1.0, 21.0).reshape(4, 5), dtype=tn.float64, requires_grad=True)
    message = failure(WrongSquare.apply, x)  # the worst entry is at the largest value, x[3, 4]
    assert "x[3, 4] = 20.0; x[1:4, 2:5] is\n" in message
    window = message.split("x[1:4, 2:5] is\n")[1].split("\n")[:3]
    assert [float(v) for v in re.findall(r"\d+\.", window[0])] == [8.0, 9.0, 10.0]
    assert [float(v) for v in re.findall(r"\d+\.", window[2])] == [18.0, 19.0, 20.0]


def test_small_jacobians_are_printed_in_full_and_large_ones_are_not():
    small = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    message = failure(WrongSquare.apply, small)
    analytic, numeric = message.split("  analytic\n")[1].split("  numeric\n")
    np.testing.assert_allclose(np.array(eval(",".join(analytic.split()).replace("[,", "["))),
                               np.diag([3.0, 6.0]))
    np.testing.assert_allclose(np.array(eval(",".join(numeric.split()).replace("[,", "["))),
                               np.diag([2.0, 4.0]), rtol=1e-6)
    side = int(MAX_JACOBIAN**0.5) + 1  # side * side outputs and inputs: over the limit
    large = tn.tensor(np.linspace(0.5, 2.0, side), dtype=tn.float64, requires_grad=True)
    assert "Jacobian d out" not in failure(WrongSquare.apply, large)


def test_several_outputs_are_named_out0_out1():
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=tn.float64, requires_grad=True)
    message = failure(lambda x: (x.tanh(), WrongSquare.apply(x)), x)
    assert ENTRY.findall(message)[0] == ("out1[1, 1]", "x[1, 1]")
    assert "Jacobian d (out0, out1) / d x" in message


def test_fast_mode_names_the_argument():
    base = tn.tensor([1.5, 2.0], dtype=tn.float64, requires_grad=True)
    exponent = tn.tensor([0.5, 3.0], dtype=tn.float64, requires_grad=True)
    message = failure(ScaledPow.apply, base, exponent, fast_mode=True)
    assert message.startswith("gradcheck: ScaledPow.apply (fast mode): the directional derivative "
                              "v . J u for 'exponent' (input 1, shape (2,), float64)")


class CubeSavingSquare(tn.Function):
    """x^3, saving the derived x^2 for backward: right first derivative, and a second one that
    misses the x^2 term because the saved x^2 is a constant under create_graph."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x * x)
        return x**3

    @staticmethod
    def backward(ctx, grad_out):
        (square,) = ctx.saved_tensors
        return 3 * square * grad_out


def test_a_second_order_failure_hints_at_saved_derived_values():
    x = tn.tensor([0.5, 1.5], dtype=tn.float64, requires_grad=True)
    assert tn.gradcheck(CubeSavingSquare.apply, (x,))
    message = failure(lambda x: CubeSavingSquare.apply(x).sum() * 2, x, check=tn.gradgradcheck)
    first_line = message.split("\n")[0]
    assert first_line.startswith("gradgradcheck: `lambda x: CubeSavingSquare.apply(x).sum() * 2`")
    assert "the second derivative (the derivative of the first derivatives grad_x" in first_line
    assert "with respect to 'x' (input 0" in first_line
    assert ENTRY.findall(message)[0][0].startswith("grad_x[")
    assert "Hint: under create_graph=True" in message
    assert "neither an input nor the output" in message
    assert message.rstrip().endswith("Functions in this graph that tinynet does not define: "
                                     "CubeSavingSquare.")
    # a first-order failure carries no such hint
    assert "Hint" not in failure(WrongSquare.apply, x)


# --- float32 ------------------------------------------------------------------------------------

F32_OPS = {
    "tanh": lambda x: x.tanh(),
    "cube_sum": lambda x: (x**3).sum(axis=-1),
    "softmax": lambda x: x.softmax(axis=-1),
    "gram": lambda x: (x @ x.T).sigmoid() * 10,
}


@settings(max_examples=10)
@given(data=st.data(), name=st.sampled_from(sorted(F32_OPS)))
def test_float32_checks_pass_correct_ops_with_float32_tolerances(name, data):
    x = data.draw(tensors(shape=shapes(min_dims=2, max_dims=2, max_side=4), dtype=np.float32,
                          non_contiguous=True))
    check_gradients(F32_OPS[name], x, allow_float32=True, second_order=name != "gram")


def test_float32_checks_still_catch_a_wrong_backward():
    x = tn.tensor([[0.5, -1.0, 1.5]], dtype=tn.float32, requires_grad=True)
    with pytest.raises(AssertionError, match=r"'x' \(input 0, shape \(1, 3\), float32\)"):
        check_gradients(WrongSquare.apply, x, allow_float32=True)


def test_float32_needs_its_own_tolerances_and_asking_for_them():
    x = tn.tensor([[0.3, -1.7, 1.9, 1.1]], dtype=tn.float32, requires_grad=True)
    fn = F32_OPS["cube_sum"]
    with pytest.raises(ValueError, match=r"float32.*allow_float32=True"):
        check_gradients(fn, x)
    float64_tolerances = TOLERANCES["float64"]
    with pytest.raises(AssertionError):  # a 1e-6 step is below float32 resolution
        check_gradients(fn, x, allow_float32=True, **float64_tolerances)
    check_gradients(fn, x, allow_float32=True)  # the defaults for float32 pass it
