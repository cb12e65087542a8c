"""User-defined ops: subclassing ``tn.Function`` (static forward/backward) and calling ``apply``.

Checked on every device: what ``forward`` receives (raw arrays, ``ctx.xp``), saved values,
``needs_input_grad``, non-tensor arguments, gradcheck and gradgradcheck of a user op written
against ``ctx.xp`` (so it is twice differentiable without extra code), and the errors a faulty
backward gets.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

HYP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large])


def small_arrays(max_side: int = 4):
    """float64 arrays of 1 or 2 dimensions (at most 16 elements), values in [-2, 2]."""
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=max_side),
                      elements=st.floats(-2, 2, allow_nan=False, width=64))


def host(t: tn.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class ScaledSin(tn.Function):
    """scale * sin(x)  ->  grad_x = g * scale * cos(x)   (written against ctx.xp only)"""

    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * ctx.xp.sin(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.scale * ctx.xp.cos(x), None


class MulAdd(tn.Function):
    """a * b + c  ->  grad_a = g * b,  grad_b = g * a,  grad_c = g"""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        return a * b + c

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        need_a, need_b, need_c = ctx.needs_input_grad
        return (grad_out * b if need_a else None, grad_out * a if need_b else None,
                grad_out if need_c else None)


def leaf(values, device, dtype=tn.float64) -> tn.Tensor:
    return tn.tensor(values, dtype=dtype, device=device, requires_grad=True)


# --------------------------------------------------------------------------------------------
# What forward and backward see
# --------------------------------------------------------------------------------------------


def test_forward_receives_raw_arrays_and_the_device_namespace(device):
    seen = {}

    class Probe(tn.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            seen.update(x=type(x), y=type(y), k=k, xp=ctx.xp)
            return x * y * k

        @staticmethod
        def backward(ctx, grad_out):
            seen["g"] = type(grad_out)
            seen["backward_xp"] = ctx.xp
            return grad_out, grad_out, None

    dev = tn.Device(device)
    x = leaf([1.0, 2.0], device)
    y = leaf([3.0, 4.0], device)
    out = Probe.apply(x, y, 2.0)
    assert isinstance(out, tn.Tensor) and out.device == dev and out.grad_fn is not None
    assert seen["x"] is dev.array_type and seen["y"] is dev.array_type
    assert seen["k"] == 2.0
    assert seen["xp"] is dev.xp
    out.sum().backward()
    assert seen["g"] is dev.array_type  # first order: raw arrays, no graph built
    assert seen["backward_xp"] is dev.xp


def test_user_op_forward_value_and_gradient(device):
    x = leaf([0.1, 1.0, -2.0], device)
    y = ScaledSin.apply(x, 3.0)
    np.testing.assert_allclose(host(y), 3.0 * np.sin(host(x)), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), 3.0 * np.cos(host(x)), rtol=1e-12)


def test_saved_tensors_are_what_forward_saved(device):
    got = []

    class Save(tn.Function):
        @staticmethod
        def forward(ctx, x):
            doubled = x * 2
            ctx.save_for_backward(x, doubled)
            return doubled + 1

        @staticmethod
        def backward(ctx, grad_out):
            x, doubled = ctx.saved_tensors
            got.append((x.tolist(), doubled.tolist()))
            return grad_out * 2

    x = leaf([1.0, 5.0], device)
    Save.apply(x).sum().backward()
    assert got == [([1.0, 5.0], [2.0, 10.0])]


def test_saved_tensors_freed_after_backward_raise_naming_the_op(device):
    x = leaf([1.0, 2.0], device)
    y = ScaledSin.apply(x, 2.0)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="ScaledSin.*retain_graph"):
        y.grad_fn.saved_tensors  # noqa: B018


def test_ctx_attributes_survive_to_backward(device):
    # A keyword parameter, read back as ctx.scale; backward's trailing None (the gradient for a
    # positional scale) is accepted in both call styles.
    for call in (lambda t: ScaledSin.apply(t, scale=-4.0), lambda t: ScaledSin.apply(t, -4.0)):
        x = leaf([0.5], device)
        call(x).sum().backward()
        np.testing.assert_allclose(host(x.grad), -4.0 * np.cos(host(x)), rtol=1e-12)


@pytest.mark.parametrize("requires", [(True, False, True), (False, True, False), (True,) * 3])
def test_needs_input_grad_follows_requires_grad(device, requires):
    seen = []

    class Needs(tn.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            seen.append(ctx.needs_input_grad)
            return a * b + c

        @staticmethod
        def backward(ctx, grad_out):
            seen.append(ctx.needs_input_grad)
            return tuple(grad_out if need else None for need in ctx.needs_input_grad)

    args = [tn.tensor([1.0, 2.0], dtype=tn.float64, device=device, requires_grad=r)
            for r in requires]
    Needs.apply(*args).sum().backward()
    assert seen == [requires, requires]
    for arg, r in zip(args, requires):
        assert (arg.grad is not None) == r


def test_needs_input_grad_is_false_under_no_grad(device):
    seen = []

    class Needs(tn.Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(ctx.needs_input_grad)
            return x + 1

        @staticmethod
        def backward(ctx, grad_out):
            return grad_out

    with tn.no_grad():
        out = Needs.apply(leaf([1.0], device))
    assert seen == [(False,)]
    assert not out.requires_grad and out.grad_fn is None


def test_non_tensor_arguments_get_no_gradient(device):
    a, c = leaf([1.0, 2.0], device), leaf([0.5, 0.5], device)
    out = MulAdd.apply(a, 3.0, c)  # a plain number in the middle
    np.testing.assert_allclose(host(out), [3.5, 6.5])
    out.sum().backward()
    np.testing.assert_allclose(host(a.grad), [3.0, 3.0])
    np.testing.assert_allclose(host(c.grad), [1.0, 1.0])


def test_only_inputs_that_require_grad_receive_gradients(device):
    a = leaf([1.0, 2.0], device)
    b = tn.tensor([3.0, 4.0], dtype=tn.float64, device=device)
    c = leaf([0.0, 0.0], device)
    MulAdd.apply(a, b, c).sum().backward()
    np.testing.assert_allclose(host(a.grad), [3.0, 4.0])
    assert b.grad is None


def test_apply_without_tensors_raises_naming_the_op():
    with pytest.raises(TypeError, match="ScaledSin"):
        ScaledSin.apply(1.0)


def test_apply_on_mixed_devices_raises():
    a = tn.tensor([1.0], device="cpu")
    b = tn.tensor([1.0], device="standin")
    with pytest.raises(RuntimeError, match="MulAdd.*same device"):
        MulAdd.apply(a, b, a)


def test_forward_errors_name_the_op_and_input_shapes(device):
    class Bad(tn.Function):
        @staticmethod
        def forward(ctx, a, b):
            return ctx.xp.matmul(a, b)

    with pytest.raises(ValueError, match=r"Bad.*\(2, 3\).*\(2, 3\)"):
        Bad.apply(tn.ones(2, 3, device=device), tn.ones(2, 3, device=device))


def test_integer_output_that_needs_a_gradient_raises(device):
    class Floor(tn.Function):
        @staticmethod
        def forward(ctx, x):
            return x.astype("int64")

    with pytest.raises(TypeError, match="Floor.*differentiable = False"):
        Floor.apply(leaf([1.5], device))


def test_an_integer_output_of_a_multi_output_function_raises(device):
    class SplitFloor(tn.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x.astype("int64")

    with pytest.raises(TypeError, match="SplitFloor.*int64.*differentiable = False"):
        SplitFloor.apply(leaf([1.5], device))


def test_non_differentiable_function_output_does_not_require_grad(device):
    class ArgMax(tn.Function):
        differentiable = False

        @staticmethod
        def forward(ctx, x):
            return ctx.xp.argmax(x)

    out = ArgMax.apply(leaf([1.0, 3.0, 2.0], device))
    assert out.item() == 1 and not out.requires_grad and out.grad_fn is None


# --------------------------------------------------------------------------------------------
# Gradient checks of user ops (twice differentiable through ctx.xp)
# --------------------------------------------------------------------------------------------


@HYP
@given(x=small_arrays())
def test_user_op_gradcheck(device, x):
    t = leaf(x, device)
    assert tn.gradcheck(lambda s: ScaledSin.apply(s, 1.5), (t,))


@HYP
@given(x=small_arrays())
def test_user_op_gradgradcheck(device, x):
    t = leaf(x, device)
    assert tn.gradgradcheck(lambda s: ScaledSin.apply(s, 1.5), (t,))


@HYP
@given(shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), data=st.data())
def test_three_input_user_op_gradcheck_and_gradgradcheck(device, shape, data):
    values = hnp.arrays(np.float64, shape, elements=st.floats(-2, 2, width=64))
    a, b, c = (leaf(data.draw(values), device) for _ in range(3))
    assert tn.gradcheck(MulAdd.apply, (a, b, c))
    assert tn.gradgradcheck(MulAdd.apply, (a, b, c))


def test_user_op_second_derivative_closed_form(device):
    x = leaf([0.3, -1.1], device)
    (g,) = tn.grad(ScaledSin.apply(x, 2.0).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = tn.grad(g.sum(), x)
    np.testing.assert_allclose(host(h), -2.0 * np.sin(host(x)), rtol=1e-12)


def test_wrong_backward_is_caught_by_gradcheck(device):
    class WrongSin(tn.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return ctx.xp.sin(x)

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * ctx.xp.sin(x)  # should be cos

    x = leaf([0.2, 0.7], device)
    with pytest.raises(tn.GradcheckError, match="input 0"):
        tn.gradcheck(WrongSin.apply, (x,))


# --------------------------------------------------------------------------------------------
# A faulty backward gets an error naming the op
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_backward_returning_the_wrong_number_of_gradients_raises(device, count):
    class Miscount(tn.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad_out):
            return (grad_out,) * count

    a, b = leaf([1.0], device), leaf([2.0], device)
    with pytest.raises(RuntimeError, match=f"Miscount.backward returned {count} gradient"):
        Miscount.apply(a, b).sum().backward()


@pytest.mark.parametrize("bad_shape", [(5,), (2,), (3, 2)])
def test_backward_returning_a_wrong_shape_raises(device, bad_shape):
    class Misshape(tn.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_out):
            return ctx.xp.ones(bad_shape, dtype=grad_out.dtype)

    x = leaf([1.0, 2.0, 3.0], device)
    with pytest.raises(RuntimeError, match=r"Misshape\.backward.*\(3,\)"):
        Misshape.apply(x).sum().backward()


def test_backward_returning_a_wrong_dtype_raises(device):
    class Widen(tn.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_out):
            return grad_out.astype("float64") * 2

    x = tn.tensor([1.0], device=device, requires_grad=True)  # float32
    with pytest.raises(RuntimeError, match="Widen.backward.*float64.*float32"):
        Widen.apply(x).sum().backward()


def test_backward_gradient_in_broadcast_shape_is_summed_to_the_input(device):
    class AddRow(tn.Function):
        """a + b (b broadcast)  ->  grad_a = g, grad_b = g   (the engine sums grad_b down)"""

        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad_out):
            return grad_out, grad_out

    a = leaf(np.ones((3, 2)), device)
    b = leaf([1.0, 2.0], device)
    AddRow.apply(a, b).sum().backward()
    np.testing.assert_allclose(host(b.grad), [3.0, 3.0])


def test_user_op_runs_on_the_standin_device_unchanged():
    x_cpu = leaf([0.4, -0.9], "cpu")
    x_dev = leaf([0.4, -0.9], "standin")
    y_cpu, y_dev = ScaledSin.apply(x_cpu, 2.0), ScaledSin.apply(x_dev, 2.0)
    assert y_dev.device == "standin"
    y_cpu.sum().backward()
    y_dev.sum().backward()
    np.testing.assert_array_equal(host(y_dev), host(y_cpu))
    np.testing.assert_array_equal(host(x_dev.grad), host(x_cpu.grad))


# --------------------------------------------------------------------------------------------
# Saving by intent: save_inputs / save_output / save_constant, and save_for_backward sorted once
# --------------------------------------------------------------------------------------------


class Probe(tn.Function):
    """a * b * c, all saved  ->  grad_a = g b c, grad_b = g a c   (records what backward saw)"""

    seen: list = []

    @staticmethod
    def forward(ctx, a, b, c):
        out = a * b * c
        ctx.save_inputs(1, 0)
        ctx.save_output()
        ctx.save_constant(b * c)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_inputs[1], ctx.saved_inputs[0]
        Probe.seen.append((ctx.create_graph, ctx.saved_inputs, ctx.saved_output,
                           ctx.saved_constants))
        return grad_out * b * 3.0, grad_out * a * 3.0, None


def test_saved_inputs_output_and_constants_first_order(device):
    Probe.seen.clear()
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    out = Probe.apply(a, b, 3.0)
    out.sum().backward()
    ((create_graph, inputs, output, constants),) = Probe.seen
    assert not create_graph
    assert inputs[0] is b.data and inputs[1] is a.data  # in the order asked for, raw arrays
    assert output is out.data
    assert constants[0].tolist() == [9.0, 12.0] and not isinstance(constants[0], tn.Tensor)


def test_under_create_graph_saved_inputs_and_output_are_tensors_in_the_graph(device):
    Probe.seen.clear()
    a = leaf([1.0, 2.0], device)
    h = a * 2.0  # a non-leaf input: its saved value must lead back to h's node
    b = tn.tensor([3.0, 4.0], dtype=tn.float64, device=device)  # needs no grad: stays a constant
    out = Probe.apply(h, b, 3.0)
    tn.grad(out.sum(), a, create_graph=True)
    ((create_graph, inputs, output, constants),) = Probe.seen
    assert create_graph
    saved_b, saved_h = inputs
    assert not isinstance(saved_b, tn.Tensor)
    assert isinstance(saved_h, tn.Tensor) and saved_h.grad_fn is h.grad_fn
    assert isinstance(output, tn.Tensor) and output.grad_fn is out.grad_fn
    assert not isinstance(constants[0], tn.Tensor)
    assert not out.grad_fn.create_graph  # only while backward runs


def test_save_for_backward_sorts_each_array_into_input_output_or_constant(device):
    seen = []

    class Sorted(tn.Function):
        @staticmethod
        def forward(ctx, x, y):
            out = x * y
            ctx.save_for_backward(y, out, x + 1, x)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            seen.append(ctx.saved_tensors)
            y, _, _, x = ctx.saved_tensors
            return grad_out * y, grad_out * x

    x, y = leaf([1.0, 2.0], device), leaf([3.0, 5.0], device)
    out = Sorted.apply(x, y)
    assert out.grad_fn.saved_as == ("input 1", "output", "constant", "input 0")
    tn.grad(out.sum(), [x, y], create_graph=True)
    saved_y, saved_out, derived, saved_x = seen[0]
    assert saved_y is y and saved_x is x  # leaves come back as themselves
    assert isinstance(saved_out, tn.Tensor) and saved_out.grad_fn is out.grad_fn
    assert not isinstance(derived, tn.Tensor) and derived.tolist() == [2.0, 3.0]


def test_a_saved_derived_array_is_right_first_order_and_reported_for_second(device):
    class SiLUSavingS(tn.Function):
        @staticmethod
        def forward(ctx, x):
            s = ctx.xp.sigmoid(x)
            ctx.save_for_backward(x, s)
            return x * s

        @staticmethod
        def backward(ctx, grad_out):
            x, s = ctx.saved_tensors  # x first: a raw device array + a Tensor is not a Tensor op
            return grad_out * (x * s * (1 - s) + s)

    x = leaf([-1.0, 0.5, 2.0], device)
    assert tn.gradcheck(SiLUSavingS.apply, (x,))
    assert not tn.gradgradcheck(SiLUSavingS.apply, (x,), raise_exception=False)
    assert SiLUSavingS.apply(x).grad_fn.saved_as == ("input 0", "constant")


@pytest.mark.parametrize("accessor", ["saved_inputs", "saved_output", "saved_constants",
                                      "saved_tensors"])
def test_every_saved_accessor_raises_after_the_graph_is_freed(device, accessor):
    out = Probe.apply(leaf([1.0], device), leaf([2.0], device), 3.0)
    out.sum().backward()
    with pytest.raises(RuntimeError, match="Probe: trying to backward through the graph a second"):
        getattr(out.grad_fn, accessor)

