"""Every op of the op table through the same generic checks, on every device.

For each entry of ``tinynet.testing.OP_TABLE`` (test ids name the op, e.g. ``sum[axis=0]-cpu``):
forward against the NumPy reference in float64 and float32, full-Jacobian gradcheck (float64),
gradgradcheck for smooth ops, gradient shape/dtype/device equal to the input's, float32 kept in
float32, and for broadcasting ops the gradient summed back to each input's shape. Shapes and values
are drawn by hypothesis (0-d and size-1 axes included where the op allows them, strided inputs too).

Then the numerical-stability cases (logits of +-1e4) and the documented tie semantics of max/min.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.testing import (
    OP_TABLE, Domain, arrays, check_gradients, grad_outputs, shapes, to_tensor,
)


def _params(select):
    return [pytest.param(case, id=case.id) for case in OP_TABLE if select(case)]


DIFFERENTIABLE = _params(lambda c: c.differentiable)
SMOOTH = _params(lambda c: c.differentiable and c.smooth)
BROADCASTING = _params(lambda c: c.differentiable and c.broadcast)
NO_GRADIENT = _params(lambda c: not c.differentiable)
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]

# The expensive checks draw fewer examples than the profile's default (ci: 25, dev: 100).
FEWER = settings(max_examples=max(5, settings().max_examples * 2 // 5))


def draw_hosts(data, case, max_side=3):
    """Host float64 arrays for the case's inputs: its shapes, its domains, and in about half the
    examples non-contiguous (transposed or strided views, which ``make_tensors`` keeps)."""
    input_shapes = data.draw(case.shapes(max_side), label="shapes")
    strided = data.draw(st.booleans(), label="non_contiguous")
    return [data.draw(arrays(shape, np.float64, domain, non_contiguous=strided), label=f"input {i}")
            for i, (shape, domain) in enumerate(zip(input_shapes, case.inputs))]


def make_tensors(hosts, device, dtype, requires_grad=True):
    """Tensors keeping the hosts' memory layout (a strided host array gives a strided tensor)."""
    tensors = [to_tensor(h, dtype, device, requires_grad) for h in hosts]
    for h, t in zip(hosts, tensors):  # the ops really meet the drawn layout, on every device
        assert t.data.flags.c_contiguous == h.flags.c_contiguous
    return tensors


def as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def host(t):
    return t.detach().cpu().numpy()


def upstream(data, outputs):
    """Random upstream gradients, one per output, in the output's dtype and device."""
    return list(data.draw(grad_outputs(outputs), label="grad_out"))


# --- forward ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", DIFFERENTIABLE)
@given(data=st.data())
def test_forward_matches_numpy_reference(case, device, data):
    hosts = draw_hosts(data, case)
    for dtype, (rtol, atol) in ((np.float64, (1e-9, 1e-12)), (np.float32, case.f32_tol)):
        # The reference sees the values the tensors hold: rounded to dtype, then float64.
        expected = as_list(case.reference(*[h.astype(dtype).astype(np.float64) for h in hosts]))
        got = as_list(case.call(*make_tensors(hosts, device, dtype)))
        assert len(got) == len(expected)
        for out, ref in zip(got, expected):
            assert out.device == device
            assert out.dtype == dtype, f"{case.id}: {dtype.__name__} inputs gave {out.dtype}"
            assert out.shape == np.shape(ref)
            np.testing.assert_allclose(host(out), ref, rtol=rtol, atol=atol,
                                       err_msg=f"{case.id} forward in {dtype.__name__}")


@pytest.mark.parametrize("case", NO_GRADIENT)
@given(data=st.data())
def test_no_gradient_ops_forward_and_record_nothing(case, device, data):
    hosts = draw_hosts(data, case)
    for dtype in (np.float64, np.float32):
        out = case.call(*make_tensors(hosts, device, dtype, requires_grad=True))
        expected = np.asarray(case.reference(*[h.astype(dtype).astype(np.float64)
                                               for h in hosts]))
        assert not out.requires_grad and out.grad_fn is None
        assert out.device == device and out.dtype.kind == expected.dtype.kind
        np.testing.assert_array_equal(host(out), expected, err_msg=case.id)


# --- gradients ----------------------------------------------------------------------------------


@contextlib.contextmanager
def naming_backwards(case, inputs):
    """On a failure, add a note with the file:line of every backward the case records."""
    try:
        yield
    except AssertionError as exc:
        exc.add_note("backward formulas involved: " + "; ".join(case.backwards(*inputs)))
        raise


@pytest.mark.parametrize("case", DIFFERENTIABLE)
@given(data=st.data())
def test_gradcheck(case, device, data):
    inputs = make_tensors(draw_hosts(data, case), device, np.float64)
    with naming_backwards(case, inputs):
        check_gradients(case.call, *inputs, **case.gradcheck)


@pytest.mark.parametrize("case", SMOOTH)
@FEWER
@given(data=st.data())
def test_gradgradcheck(case, device, data):
    inputs = make_tensors(draw_hosts(data, case, max_side=2), device, np.float64)
    with naming_backwards(case, inputs):
        tn.gradgradcheck(case.call, inputs, **case.gradcheck)


def test_a_gradient_failure_names_the_backward_to_read(device):
    case = next(c for c in OP_TABLE if c.id == "mul")
    inputs = make_tensors([np.ones(2), np.ones(2)], device, np.float64)
    with pytest.raises(AssertionError) as info, naming_backwards(case, inputs):
        raise AssertionError("gradcheck failed")
    (note,) = info.value.__notes__
    assert note.startswith("backward formulas involved: MulOp at tinynet/ops/elementwise.py:")


@pytest.mark.parametrize("case", DIFFERENTIABLE)
@FEWER
@given(data=st.data())
def test_gradient_matches_input_shape_dtype_device(case, device, data):
    hosts = draw_hosts(data, case)
    for dtype in (np.float64, np.float32):  # float32 stays float32, through backward too
        inputs = make_tensors(hosts, device, dtype)
        outputs = as_list(case.call(*inputs))
        assert all(o.dtype == dtype and o.requires_grad for o in outputs)
        tn.backward(outputs, upstream(data, outputs))
        for i, x in enumerate(inputs):
            assert x.grad is not None, f"{case.id}: input {i} got no gradient"
            meta = (x.grad.shape, x.grad.dtype, x.grad.device)
            assert meta == (x.shape, x.dtype, x.device), f"{case.id}: input {i} got {meta}"
            assert np.isfinite(host(x.grad)).all()


def sum_to_shape(grad, shape):
    """NumPy's own undoing of broadcasting (independent of the engine's sum_to)."""
    lead = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


@pytest.mark.parametrize("case", BROADCASTING)
@FEWER
@given(data=st.data())
def test_broadcast_gradient_sums_back_to_each_input(case, device, data):
    hosts = draw_hosts(data, case)
    full_shape = np.broadcast_shapes(*[h.shape for h in hosts])
    inputs = make_tensors(hosts, device, np.float64)
    out = case.call(*inputs)
    assert out.shape == full_shape
    (g,) = upstream(data, [out])
    grads = tn.grad(out, inputs, g)
    # The same op on inputs already expanded to the full shape: no broadcasting inside the op.
    expanded = make_tensors([np.broadcast_to(h, full_shape).copy() for h in hosts], device,
                            np.float64)
    full_grads = tn.grad(case.call(*expanded), expanded, g)
    for h, small, full in zip(hosts, grads, full_grads):
        assert small.shape == h.shape
        np.testing.assert_allclose(host(small), sum_to_shape(host(full), h.shape), rtol=1e-12,
                                   atol=1e-12, err_msg=case.id)


# --- numerical stability ------------------------------------------------------------------------

EXTREME = st.one_of(st.sampled_from([-1e4, 1e4, 0.0]), st.floats(-1e4, 1e4, width=32))


def stable_logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m


STABLE = {
    "softmax": (lambda x: tn.softmax(x, axis=-1),
                lambda a: np.exp(a - stable_logsumexp(a, -1))),
    "log_softmax": (lambda x: tn.log_softmax(x, axis=-1),
                    lambda a: a - stable_logsumexp(a, -1)),
    "logsumexp": (lambda x: tn.logsumexp(x, axis=-1),
                  lambda a: stable_logsumexp(a, -1)[..., 0]),
    "sigmoid": (tn.sigmoid, lambda a: np.exp(-np.logaddexp(0.0, -a))),
    "softplus": (tn.softplus, lambda a: np.logaddexp(0.0, a)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(STABLE))
@FEWER
@given(data=st.data())
def test_extreme_inputs_give_finite_correct_values(name, dtype, device, data):
    fn, ref = STABLE[name]
    shape = data.draw(shapes(min_dims=1, max_side=4), label="shape")
    a = data.draw(hnp.arrays(dtype, shape, elements=EXTREME), label="logits")
    x = tn.tensor(a, device=device, requires_grad=True)
    out = fn(x)
    expected = ref(a.astype(np.float64))
    assert out.dtype == dtype
    # float32 holds 1e4 to ~1e-3; values near 0 are compared absolutely.
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(host(out), expected, **tol, err_msg=name)
    (g,) = upstream(data, [out])
    out.backward(g)
    assert np.isfinite(host(x.grad)).all(), f"{name}: non-finite gradient at {a}"


# --- tie semantics (documented in ops/reduce.py and ops/elementwise.py) ---------------------------

TIED = Domain(0.0, 2.0, grid=1.0)  # three values only: ties are the rule, not the exception


@pytest.mark.parametrize("op", ["amax", "amin", "max", "min"])
@pytest.mark.parametrize("axis", [None, 0, -1])
@given(data=st.data())
def test_extreme_reductions_share_the_gradient_equally_among_ties(op, axis, device, data):
    a = data.draw(arrays(shapes(min_dims=1 if axis is not None else 0, max_side=4), np.float64,
                         TIED))
    x = tn.tensor(a, device=device, requires_grad=True)
    out = getattr(tn, op)(x, axis=axis)
    if op in ("max", "min") and axis is not None:
        out = out.values  # max(x, dim) is (values, indices), as in PyTorch
    op = op.removeprefix("a")
    (g,) = upstream(data, [out])
    out.backward(g)
    extreme = getattr(np, op)(a, axis=axis, keepdims=True)
    hit = a == extreme
    share = np.expand_dims(host(g), axis) if axis is not None else host(g)
    expected = np.where(hit, share / hit.sum(axis=axis, keepdims=True), 0.0)
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_minimum_ties_split_the_gradient_in_half(op, device, data):
    shape = data.draw(shapes(max_side=4))
    a, b = (data.draw(arrays(shape, np.float64, TIED)) for _ in range(2))
    xa, xb = (tn.tensor(v, device=device, requires_grad=True) for v in (a, b))
    out = getattr(tn, op)(xa, xb)
    (g,) = upstream(data, [out])
    out.backward(g)
    g = host(g)
    a_wins = a > b if op == "maximum" else a < b
    tie = a == b
    np.testing.assert_allclose(host(xa.grad), np.where(tie, g / 2, np.where(a_wins, g, 0.0)))
    np.testing.assert_allclose(host(xb.grad), np.where(tie, g / 2, np.where(a_wins, 0.0, g)))


def test_minus_infinity_logits_follow_pytorch(device):
    """A masked logit (-inf) gets probability 0; a slice that is all -inf has no distribution:
    softmax/log_softmax give NaN there, logsumexp gives -inf (PyTorch's behaviour)."""
    inf = float("inf")
    x = tn.tensor([[-inf, 0.0, 0.0], [-inf, -inf, -inf]], device=device)
    p = x.softmax(axis=1).cpu().numpy()
    np.testing.assert_allclose(p[0], [0.0, 0.5, 0.5])
    assert np.isnan(p[1]).all()
    lp = x.log_softmax(axis=1).cpu().numpy()
    np.testing.assert_allclose(lp[0], [-inf, np.log(0.5), np.log(0.5)])
    assert np.isnan(lp[1]).all()
    np.testing.assert_allclose(x.logsumexp(axis=1).cpu().numpy(), [np.log(2.0), -inf])
