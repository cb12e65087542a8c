"""Planted in-place and aliasing bugs fail gradcheck with a message that says what happened.

Each bug here gives the right numbers to a plain numerical check (the first test shows the
classic one corrupting a bigger expression); gradcheck must name the op and what it wrote to.
Also: the watch leaves no trace (every ``.grad`` restored), and ``check_inplace=False`` turns it
off. The last test pins an engine rule the aliasing check once tripped over: a 0-d gradient is a
0-d array.
"""

import numpy as np
import pytest
from hypothesis import given

import tinynet as tn
from tinynet.testing import check_gradients, shapes, tensors

from planted import ClampSavedInput, TripleInPlace


def test_an_in_place_backward_gives_right_numbers_alone_and_wrong_ones_in_an_expression():
    a = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    (TripleInPlace.apply(a) + a).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 6.0])  # d(3a + a)/da is 4
    assert tn.gradcheck(TripleInPlace.apply, (a,), check_inplace=False)  # numbers alone: fine


@given(tensors(shape=shapes(min_dims=1, max_side=3), non_contiguous=True))
def test_a_backward_writing_to_its_upstream_gradient_fails_saying_so(x):
    with pytest.raises(AssertionError, match=r"^gradcheck: TripleInPlace.apply: TripleInPlace"
                                             r"\.backward modified its upstream gradient in place: "
                                             r"grad_out\[0(, 0)*\] was .*, is "):
        check_gradients(TripleInPlace.apply, x)


def test_an_in_place_backward_is_found_deep_inside_an_expression():
    a = tn.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.GradcheckError, match=r"TripleInPlace\.backward modified its upstream") \
            as failure:
        tn.gradcheck(lambda a: (TripleInPlace.apply(a.tanh()) + a).sum(axis=0), (a,))
    assert failure.value.kind == "inplace"
    assert "numeric" not in str(failure.value)


class DoubleInputInPlace(tn.Function):
    """2x computed by doubling the input array itself."""

    @staticmethod
    def forward(ctx, x):
        x *= 2
        return x.copy()

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * 2


@given(tensors(shape=shapes(max_side=3), domain="positive"))
def test_a_forward_writing_to_its_input_fails_saying_so_not_with_a_numeric_error(x):
    before = x.detach().cpu().numpy().copy()
    with pytest.raises(AssertionError) as failure:
        check_gradients(lambda t: DoubleInputInPlace.apply(t).sum(), x)
    message = str(failure.value)
    assert "DoubleInputInPlace.forward modified 't' (input 0" in message
    assert "in place:" in message and "numeric" not in message
    assert not np.array_equal(x.detach().cpu().numpy(), before)  # it really did write


def test_a_backward_writing_to_a_saved_input_fails_naming_the_op():
    x = tn.tensor([0.1, 1.0, 2.0], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.GradcheckError, match=r"ClampSavedInput\.backward modified 'x' "
                                                r"\(input 0, shape \(3,\), float64\) in place: "
                                                r"x\[0\] was 0\.1, is 0\.5 \(1 of 3 elements"):
        tn.gradcheck(ClampSavedInput.apply, (x,))


def test_a_write_outside_any_op_is_reported_as_such():
    def sneaky(x):
        y = x * 2
        x.data[0] = 7.0  # fn writes to its input directly
        return y

    x = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.GradcheckError, match=r"outside any tinynet op.*modified 'x'"):
        tn.gradcheck(sneaky, (x,))


class LeakyIdentity(tn.Function):
    """x * y, whose backward returns the *saved* arrays as the gradients (right numbers only
    because the test's upstream is ones, and an alias of each input)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        return grad_out * y, x  # x itself: an alias of input x, handed to y.grad


class SharedGrad(tn.Function):
    """x + y whose backward returns one fresh array for both inputs."""

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad_out):
        g = grad_out.copy()
        return g, g


@pytest.fixture
def trusted(monkeypatch):
    """Make the engine trust these Functions as it trusts built-in ops (``fresh_grads``): their
    fresh-looking gradients are stored in .grad without a copy (the case where an aliasing bug
    bites)."""
    for fn in (LeakyIdentity, SharedGrad):
        monkeypatch.setattr(fn, "fresh_grads", True)


def test_a_grad_aliasing_an_input_fails_saying_so(trusted):
    x = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    y = tn.tensor([3.0, 4.0], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.GradcheckError, match=r"the gradient backward stored in y\.grad shares "
                                                r"memory with 'x' \(input 0\)"):
        tn.gradcheck(lambda x, y: LeakyIdentity.apply(x, y).sum(), (x, y))


def test_two_grads_sharing_memory_fail_saying_so(trusted):
    x = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    y = tn.tensor([3.0, 4.0], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.GradcheckError, match=r"stored in y\.grad shares memory with x\.grad"):
        tn.gradcheck(SharedGrad.apply, (x, y))


def test_the_watch_leaves_every_grad_as_it_was():
    w = tn.tensor([0.5, -1.0], dtype=tn.float64, requires_grad=True)  # a leaf fn closes over
    x = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    x.grad = tn.tensor([10.0, 20.0], dtype=tn.float64)
    assert tn.gradcheck(lambda x: (x * w).tanh(), (x,))
    assert w.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 20.0])


def test_builtin_ops_pass_the_watch_on_every_device(device):
    """Identity-like built-ins hand the upstream array on (add, reshape): that is allowed."""
    a = tn.randn(2, 3, dtype=tn.float64, device=device, requires_grad=True)
    b = tn.randn(3, dtype=tn.float64, device=device, requires_grad=True)
    assert tn.gradcheck(lambda a, b: ((a + b).reshape(3, 2) * 2).T + b[:2].reshape(2, 1), (a, b))


def _is_0d_array(t) -> bool:
    return isinstance(t.data, np.ndarray) and t.data.shape == ()


def test_the_grad_of_a_0d_leaf_is_a_0d_array():
    """Every gradient the engine hands out is an array, never a NumPy scalar (NumPy returns
    scalars for 0-d arithmetic): fresh, accumulated over two uses, summed over two roots, kept by
    retain_grad, seen by a hook, returned by tn.grad, and accumulated across backward calls."""
    x = tn.tensor(3.0, dtype=tn.float64, requires_grad=True)
    (x * x).backward()
    assert _is_0d_array(x.grad)
    x.grad.zero_()
    assert x.grad.item() == 0.0

    seen = []
    x.register_hook(lambda g: seen.append(g))
    h = x * 2.0
    h.retain_grad()
    (h * x + h.sin()).backward(retain_graph=True)  # two paths to x: 0-d gradients summed
    (h * x).backward()  # accumulates into an existing 0-d .grad
    assert _is_0d_array(x.grad) and _is_0d_array(h.grad)
    assert all(_is_0d_array(g) for g in seen)
    (gx,) = tn.grad([x * x, x * 3.0], [x])  # two roots that are both 0-d
    assert _is_0d_array(gx) and gx.item() == 9.0
