"""The tensor namespace (``ctx.xp`` under ``create_graph=True``): every function it offers works in
a user Function's backward, twice differentiably, and the public registration API adds more.

Each differentiable name is used by the backward of a small user ``Function`` whose forward is an
antiderivative of that backward (so gradcheck checks the first order), and gradgradcheck checks the
second derivative through the recorded backward. ``CASES`` covers every name :func:`names` lists,
which ``test_every_namespace_function_has_a_case`` keeps true.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.ops import namespace
from tinynet.ops.namespace import names, register, register_constant, tensor_namespace, unregister
from tinynet.testing import Domain, tensors

SQRT_PI = math.sqrt(math.pi)
REAL = Domain(-1.5, 1.5)


class Case:
    """A user Function: ``forward(xp, x)`` on raw arrays, ``backward(xp, x, g)`` using ``uses``."""

    def __init__(self, uses, forward, backward, domain=None, shape=(3,)):
        self.uses, self.domain, self.shape = uses, domain or REAL, shape

        class UserFunction(tn.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_inputs(0)
                return forward(ctx.xp, x)

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_inputs
                return backward(ctx.xp, x, g)

        UserFunction.name = UserFunction.__name__ = UserFunction.__qualname__ = \
            "Uses_" + "_".join(uses)
        self.fn = UserFunction


OFF_ZERO = Domain(-1.5, 1.5, avoid=(0.0,), margin=0.1)
POSITIVE = Domain(0.3, 2.5)
DISTINCT = Domain(-2, 2, grid=1 / 8, unique=True)  # no ties: max/min and std are smooth
A = np.array([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0], [0.0, 0.75, 1.5]])  # a constant matrix


def _a(xp):
    return xp.asarray(A.tolist())  # a list: allowed on every device (a host array is not)


def _clip_antiderivative(xp, x, lo=-0.5, hi=0.5):
    return xp.where(x < lo, lo * x - lo * lo / 2, xp.where(x > hi, hi * x - hi * hi / 2, x * x / 2))


CASES = [
    # the functions the issue names
    Case(("expm1",), lambda xp, x: xp.expm1(x) - x, lambda xp, x, g: g * xp.expm1(x)),
    Case(("log1p",), lambda xp, x: (1 + x) * xp.log1p(x) - x, lambda xp, x, g: g * xp.log1p(x),
         Domain(-0.5, 2)),
    Case(("square",), lambda xp, x: x ** 3 / 3, lambda xp, x, g: g * xp.square(x)),
    Case(("clip",), _clip_antiderivative, lambda xp, x, g: g * xp.clip(x, -0.5, 0.5),
         Domain(-1.5, 1.5, avoid=(-0.5, 0.5), margin=0.05)),
    Case(("zeros", "greater", "where"), lambda xp, x: xp.maximum(x, 0) ** 2 / 2,
         lambda xp, x, g: xp.where(xp.greater(x, 0), g * x, xp.zeros(x.shape, dtype=x.dtype)),
         OFF_ZERO),
    Case(("ones",), lambda xp, x: x * x / 2 + x,
         lambda xp, x, g: g * (x + xp.ones(x.shape, dtype=x.dtype))),
    Case(("zeros_like", "less"), lambda xp, x: xp.minimum(x, 0) ** 2 / 2,
         lambda xp, x, g: xp.where(xp.less(x, 0), g * x, xp.zeros_like(x)), OFF_ZERO),
    Case(("ones_like", "full_like"), lambda xp, x: x * x / 2 + 3 * x,
         lambda xp, x, g: g * (x + xp.ones_like(x) + xp.full_like(x, 2.0))),
    Case(("full",), lambda xp, x: x * x / 2 - 2 * x,
         lambda xp, x, g: g * (x + xp.full(x.shape, -2.0, dtype=x.dtype))),
    Case(("eye", "matmul"), lambda xp, x: x * x / 2,
         lambda xp, x, g: g * xp.matmul(xp.eye(x.shape[0], dtype=x.dtype), x)),
    Case(("arange",), lambda xp, x: x * x / 2 + x * xp.arange(x.shape[0], dtype=x.dtype),
         lambda xp, x, g: g * (x + xp.arange(x.shape[0], dtype=x.dtype))),
    Case(("asarray",), lambda xp, x: x * x / 2 + 0.5 * x,
         lambda xp, x, g: g * (xp.asarray(x) + xp.asarray(0.5 * xp.ones(x.shape, x.dtype)))),
    # arithmetic
    Case(("add", "multiply", "power"), lambda xp, x: x ** 3 / 3 + x * x / 2,
         lambda xp, x, g: xp.add(xp.multiply(g, xp.power(x, 2)), xp.multiply(g, x))),
    Case(("subtract", "negative", "positive"), lambda xp, x: -(x ** 3) / 3 - x,
         lambda xp, x, g: xp.positive(xp.negative(xp.add(xp.multiply(g, x * x), g)))),
    Case(("divide",), lambda xp, x: xp.log(x), lambda xp, x, g: xp.divide(g, x), POSITIVE),
    Case(("true_divide",), lambda xp, x: xp.log(x), lambda xp, x, g: xp.true_divide(g, x),
         POSITIVE),
    Case(("reciprocal",), lambda xp, x: xp.log(x), lambda xp, x, g: g * xp.reciprocal(x),
         POSITIVE),
    Case(("absolute", "sign"), lambda xp, x: x * xp.abs(x) / 2,
         lambda xp, x, g: g * xp.absolute(x) * xp.sign(x) * xp.sign(x), OFF_ZERO),
    # exponentials, logarithms, trigonometric and hyperbolic functions
    Case(("exp",), lambda xp, x: xp.exp(x), lambda xp, x, g: g * xp.exp(x)),
    Case(("exp2",), lambda xp, x: xp.exp2(x) / math.log(2), lambda xp, x, g: g * xp.exp2(x)),
    Case(("log",), lambda xp, x: x * xp.log(x) - x, lambda xp, x, g: g * xp.log(x), POSITIVE),
    Case(("log2",), lambda xp, x: x * xp.log2(x) - x / math.log(2),
         lambda xp, x, g: g * xp.log2(x), POSITIVE),
    Case(("log10",), lambda xp, x: x * xp.log10(x) - x / math.log(10),
         lambda xp, x, g: g * xp.log10(x), POSITIVE),
    Case(("sqrt",), lambda xp, x: 2 / 3 * x ** 1.5, lambda xp, x, g: g * xp.sqrt(x), POSITIVE),
    Case(("abs",), lambda xp, x: x * xp.abs(x) / 2, lambda xp, x, g: g * xp.abs(x), OFF_ZERO),
    Case(("sin",), lambda xp, x: -xp.cos(x), lambda xp, x, g: g * xp.sin(x)),
    Case(("cos",), lambda xp, x: xp.sin(x), lambda xp, x, g: g * xp.cos(x)),
    Case(("tan",), lambda xp, x: -xp.log(xp.cos(x)), lambda xp, x, g: g * xp.tan(x), Domain(-1, 1)),
    Case(("tanh",), lambda xp, x: xp.log(xp.cosh(x)), lambda xp, x, g: g * xp.tanh(x)),
    Case(("sinh",), lambda xp, x: xp.cosh(x), lambda xp, x, g: g * xp.sinh(x)),
    Case(("cosh",), lambda xp, x: xp.sinh(x), lambda xp, x, g: g * xp.cosh(x)),
    Case(("arctan",), lambda xp, x: x * xp.arctan(x) - xp.log1p(x * x) / 2,
         lambda xp, x, g: g * xp.arctan(x)),
    Case(("arcsin",), lambda xp, x: x * xp.arcsin(x) + xp.sqrt(1 - x * x),
         lambda xp, x, g: g * xp.arcsin(x), Domain(-0.8, 0.8)),
    Case(("arccos",), lambda xp, x: x * xp.arccos(x) - xp.sqrt(1 - x * x),
         lambda xp, x, g: g * xp.arccos(x), Domain(-0.8, 0.8)),
    Case(("arcsinh",), lambda xp, x: x * xp.arcsinh(x) - xp.sqrt(x * x + 1),
         lambda xp, x, g: g * xp.arcsinh(x)),
    Case(("arctanh",), lambda xp, x: x * xp.arctanh(x) + xp.log1p(-x * x) / 2,
         lambda xp, x, g: g * xp.arctanh(x), Domain(-0.8, 0.8)),
    Case(("sigmoid",), lambda xp, x: xp.log1p(xp.exp(x)), lambda xp, x, g: g * xp.sigmoid(x)),
    Case(("erf",), lambda xp, x: x * xp.erf(x) + xp.exp(-x * x) / SQRT_PI,
         lambda xp, x, g: g * xp.erf(x)),
    Case(("maximum",), lambda xp, x: xp.maximum(x, 0) ** 2 / 2,
         lambda xp, x, g: g * xp.maximum(x, 0), OFF_ZERO),
    Case(("minimum",), lambda xp, x: xp.minimum(x, 0) ** 2 / 2,
         lambda xp, x, g: g * xp.minimum(x, 0), OFF_ZERO),
    # reductions (rows of a (2, 3) input reduce to a (2,) output)
    Case(("sum", "expand_dims"), lambda xp, x: x.sum(axis=1) ** 2 / 2,
         lambda xp, x, g: xp.broadcast_to(xp.expand_dims(g, 1) * xp.sum(x, axis=1, keepdims=True),
                                           x.shape), shape=(2, 3)),
    Case(("mean", "reshape"), lambda xp, x: 1.5 * x.mean(axis=1) ** 2,
         lambda xp, x, g: xp.broadcast_to(xp.reshape(g, (2, 1)) * xp.mean(x, axis=1, keepdims=True),
                                           x.shape), shape=(2, 3)),
    Case(("amax", "max", "equal"), lambda xp, x: x.max(axis=1) ** 2 / 2,
         lambda xp, x, g: g[:, None] * xp.amax(x, axis=1, keepdims=True)
         * xp.equal(x, xp.max(x, axis=1, keepdims=True)), DISTINCT, (2, 3)),
    Case(("amin", "min", "not_equal"), lambda xp, x: x.min(axis=1) ** 2 / 2,
         lambda xp, x, g: g[:, None] * xp.amin(x, axis=1, keepdims=True)
         * (1 - xp.not_equal(x, xp.min(x, axis=1, keepdims=True))), DISTINCT, (2, 3)),
    Case(("var",), lambda xp, x: x.var(axis=1) ** 2 / 2,
         lambda xp, x, g: g[:, None] * xp.var(x, axis=1, keepdims=True) * 2
         * (x - x.mean(axis=1, keepdims=True)) / 3, DISTINCT, (2, 3)),
    Case(("std",), lambda xp, x: x.std(axis=1) ** 3 / 3,
         lambda xp, x, g: g[:, None] * xp.std(x, axis=1, keepdims=True)
         * (x - x.mean(axis=1, keepdims=True)) / 3, DISTINCT, (2, 3)),
    # shapes and products
    Case(("ravel",), lambda xp, x: x * x / 2,
         lambda xp, x, g: (xp.ravel(g) * xp.ravel(x)).reshape(x.shape), shape=(2, 3)),
    Case(("squeeze",), lambda xp, x: x * x / 2,
         lambda xp, x, g: xp.expand_dims(xp.squeeze(g, axis=1) * xp.squeeze(x, axis=1), 1),
         shape=(3, 1)),
    Case(("concatenate",), lambda xp, x: x * x / 2,
         lambda xp, x, g: xp.concatenate([g[:1] * x[:1], g[1:] * x[1:]], axis=0)),
    Case(("stack",), lambda xp, x: x * x / 2,
         lambda xp, x, g: xp.stack([g[0] * x[0], g[1] * x[1]], axis=0), shape=(2, 3)),
    Case(("copy",), lambda xp, x: x * x / 2, lambda xp, x, g: xp.copy(g) * x),
    Case(("outer", "dot"), lambda xp, x: (x * x).sum() ** 2 / 4,
         lambda xp, x, g: g * xp.dot(xp.outer(x, x), x)),
    Case(("transpose", "swapaxes"), lambda xp, x: ((x @ _a(xp)) ** 2).sum() / 2,
         lambda xp, x, g: g * xp.transpose(xp.matmul(xp.matmul(x, _a(xp)),
                                                     xp.swapaxes(_a(xp), 0, 1)), (0, 1)),
         shape=(2, 3)),
    Case(("broadcast_to",), lambda xp, x: x * x / 2,
         lambda xp, x, g: (xp.broadcast_to(g * x, (4, 3)) / 4).sum(axis=0)),
    Case(("index_add",), lambda xp, x: (x[[0, 0, 2]] ** 2).sum() / 2,
         lambda xp, x, g: g * xp.index_add(x.shape, xp.asarray([0, 0, 2]), x[[0, 0, 2]])),
    Case(("floor", "ceil"), lambda xp, x: x * x / 2,
         lambda xp, x, g: g * x * (xp.ceil(x) - xp.floor(x)), OFF_ZERO),
]

CONSTANT_UNARY = ("sign", "signbit", "floor", "ceil", "rint", "round", "trunc", "isnan", "isinf",
                  "isfinite", "logical_not", "argmax", "argmin", "argsort")
CONSTANT_BINARY = ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
                   "logical_and", "logical_or", "logical_xor", "heaviside")
CREATION = {"zeros": ((2, 3),), "ones": ((2, 3),), "full": ((2, 3), 1.5), "eye": (3,),
            "arange": (4,)}
CREATION_LIKE = {"zeros_like": (), "ones_like": (), "full_like": (2.5,)}


def library_names(kind=None) -> set:
    """The namespace's own functions (other tests and docs register functions of their own)."""
    return {n for n in names(kind)
            if getattr(namespace.TensorNamespace, n).__module__.startswith("tinynet.")}


def test_every_namespace_function_has_a_case():
    covered = {name for case in CASES for name in case.uses}
    differentiable = library_names("differentiable")
    assert differentiable <= covered, sorted(differentiable - covered)
    constants = library_names("constant")
    assert constants == set(CONSTANT_UNARY) | set(CONSTANT_BINARY) | set(CREATION) \
        | set(CREATION_LIKE)
    assert covered <= set(names())  # no case names a function the namespace lacks


@pytest.mark.parametrize("case", CASES, ids=["-".join(c.uses) for c in CASES])
@settings(max_examples=4)
@given(data=st.data())
def test_user_function_using_it_in_backward_is_twice_differentiable(device, case, data):
    x = data.draw(tensors(shape=case.shape, domain=case.domain, device=device))
    assert tn.gradcheck(case.fn.apply, (x,))
    assert tn.gradgradcheck(case.fn.apply, (x,))


def test_the_issue_functions_fail_without_the_namespace(monkeypatch):
    """Without the namespace's expm1 the same user Function fails under create_graph."""
    case = CASES[0]
    x = tn.tensor([0.3, -0.2], dtype=tn.float64, requires_grad=True)
    monkeypatch.delattr(namespace.TensorNamespace, "expm1")
    with pytest.raises(AttributeError, match="register"):
        tn.gradgradcheck(case.fn.apply, (x,))


def test_constants_match_the_device_functions_and_need_no_gradient(device):
    xp = tensor_namespace.on(tn.Device(device))
    host = np.array([[-1.5, 0.0, 2.25], [0.5, -0.25, 3.0]])
    x = tn.tensor(host, dtype=tn.float64, device=device, requires_grad=True)
    y = tn.tensor(host[::-1].copy(), dtype=tn.float64, device=device, requires_grad=True)
    for name in CONSTANT_UNARY + CONSTANT_BINARY:
        args = (x,) if name in CONSTANT_UNARY else (x, y)
        out = getattr(xp, name)(*args)
        hosts = [host] if name in CONSTANT_UNARY else [host, host[::-1]]
        expected = getattr(np, name)(*hosts)
        assert isinstance(out, tn.Tensor) and not out.requires_grad, name
        assert out.device == device
        np.testing.assert_array_equal(out.cpu().numpy(), expected, err_msg=name)
    for name, args in CREATION.items():
        out = getattr(xp, name)(*args)
        assert out.device == device and not out.requires_grad
        np.testing.assert_array_equal(out.cpu().numpy(), getattr(np, name)(*args), err_msg=name)
        assert out.dtype == np.float64 or name == "arange"  # NumPy's default dtype
    for name, args in CREATION_LIKE.items():
        out = getattr(xp, name)(x, *args)
        np.testing.assert_array_equal(out.cpu().numpy(), getattr(np, name)(host, *args),
                                      err_msg=name)
        assert out.device == device and not out.requires_grad


def test_values_are_numpys_exactly_where_a_composition_would_round(device):
    """expm1 and log1p keep full precision near 0 (exp(x) - 1 would return 0 at x = 1e-18)."""
    x = tn.tensor([1e-18, -3e-12, 0.5], dtype=tn.float64, device=device, requires_grad=True)
    xp = tensor_namespace.on(x.device)
    for name in ("expm1", "log1p", "sinh", "arcsinh", "arctan", "tan"):
        got = getattr(xp, name)(x)
        assert got.requires_grad and got.grad_fn is not None, name
        np.testing.assert_array_equal(got.detach().cpu().numpy(),
                                      getattr(np, name)(x.detach().cpu().numpy()), err_msg=name)


def test_dtypes_and_numbers_pass_through():
    xp = tensor_namespace
    assert xp.float64 is np.float64 and xp.float32 is np.float32
    assert xp.pi == math.pi and xp.newaxis is None and math.isinf(xp.inf)


def test_unknown_name_says_how_to_register_and_suggests_close_names():
    with pytest.raises(AttributeError) as info:
        tensor_namespace.expm2  # noqa: B018
    msg = str(info.value)
    assert "'expm2' is not available to backward formulas under create_graph=True" in msg
    assert "'expm1'" in msg and "register(fn, name='expm2')" in msg
    assert "register_constant('expm2')" in msg and "names()" in msg
    assert "edit" not in msg
    written = r"writes into it \(out\[i\] = \.\.\.\) are not recorded"
    with pytest.raises(AttributeError, match=written):
        tensor_namespace.empty  # noqa: B018 - left out on purpose: it is filled in place


def test_transpose_takes_numpys_optional_axes(device):
    x = tn.tensor(np.arange(6.0).reshape(2, 3), dtype=tn.float64, device=device,
                  requires_grad=True)
    xp = tensor_namespace.on(x.device)
    assert xp.transpose(x).shape == (3, 2) and xp.transpose(x, (1, 0)).shape == (3, 2)
    (g,) = tn.grad((xp.transpose(x) * xp.transpose(x)).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().cpu().numpy(), 2 * np.arange(6.0).reshape(2, 3))


# --- the public registration API -------------------------------------------------------------


class LogCoshUsingSoftsign(tn.Function):
    """A user Function whose backward calls a function the namespace does not have."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_inputs(0)
        return ctx.xp.abs(x) - ctx.xp.log1p(ctx.xp.abs(x))  # the antiderivative of softsign

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * ctx.xp.user_softsign(x)


def _softsign_host(x):
    return x / (1 + np.abs(x))


@pytest.fixture
def softsign_first_order():
    """softsign on raw arrays: what the first-order backward calls (NumPy has none)."""
    from tinynet.backend.namespace import ArrayNamespace

    ArrayNamespace.user_softsign = lambda self, x: x / (1 + self._module.abs(x))
    yield
    del ArrayNamespace.user_softsign


def test_register_makes_a_user_function_available_under_create_graph(softsign_first_order):
    x = tn.tensor([0.5, -1.25, 2.0], dtype=tn.float64, requires_grad=True)
    assert tn.gradcheck(LogCoshUsingSoftsign.apply, (x,))  # first order: NumPy-side softsign
    with pytest.raises(AttributeError, match="user_softsign"):
        tn.gradgradcheck(LogCoshUsingSoftsign.apply, (x,))

    @register(name="user_softsign")
    def softsign(t):
        return t / (1 + abs(t))

    try:
        assert "user_softsign" in names("differentiable")
        assert tn.gradgradcheck(LogCoshUsingSoftsign.apply, (x,))
        (g,) = tn.grad(LogCoshUsingSoftsign.apply(x).sum(), x, create_graph=True)
        np.testing.assert_allclose(g.detach().numpy(), _softsign_host(x.detach().numpy()))
        (h,) = tn.grad(g.sum(), x)
        np.testing.assert_allclose(h.numpy(), 1 / (1 + np.abs(x.detach().numpy())) ** 2)
        with pytest.raises(ValueError, match="already available"):
            register(softsign, name="user_softsign")
        register(softsign, name="user_softsign", replace=True)  # allowed on purpose
    finally:
        unregister("user_softsign")
    assert "user_softsign" not in names()
    with pytest.raises(KeyError):
        unregister("user_softsign")


def test_register_refuses_bad_names_and_non_callables():
    with pytest.raises(ValueError, match="already available"):
        register(lambda x: x, name="exp")
    with pytest.raises(ValueError, match="identifier"):
        register(lambda x: x, name="not a name")
    with pytest.raises(ValueError, match="dtype or number"):
        register(lambda x: x, name="float64")
    with pytest.raises(TypeError, match="callable"):
        register(3.0, name="three")


def test_register_constant_runs_the_device_function_on_raw_data(device):
    class StepTimesX(tn.Function):
        """x^2/2 where x > 0.5, else 0  ->  grad_x = g * x * [x > 0.5]   (the mask,
        fix(x + 0.5) != 0, is a constant of the derivative)"""

        @staticmethod
        def forward(ctx, x):
            ctx.save_inputs(0)
            return ctx.xp.where(x > 0.5, x * x / 2, 0.0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_inputs
            return g * x * ctx.xp.fix(x + 0.5).astype(bool)

    x = tn.tensor([1.25, -0.75, 0.25, 2.0], dtype=tn.float64, device=device, requires_grad=True)
    with pytest.raises(AttributeError, match="fix"):
        tn.gradgradcheck(StepTimesX.apply, (x,))
    register_constant("fix")
    try:
        assert "fix" in names("constant")
        assert tn.gradgradcheck(StepTimesX.apply, (x,))
        fixed = tensor_namespace.on(x.device).fix(x)
        assert not fixed.requires_grad
        np.testing.assert_array_equal(fixed.cpu().numpy(), [1.0, -0.0, 0.0, 2.0])
    finally:
        unregister("fix")


def test_docs_list_exactly_the_namespace():
    """docs/autograd.md, section 11: the table of what a backward may call is complete."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "autograd.md").read_text()
    table = doc.split("### What a backward may call under `create_graph`")[1].split("```")[0]
    rows = {line.split("|")[1].strip(): set(re.findall(r"`(\w+)`", line.split("|")[2]))
            for line in table.splitlines() if line.startswith("| ") and "`" in line}
    listed = set().union(*[names for kind, names in rows.items() if "dtypes" not in kind])
    assert listed == library_names()
    assert rows["differentiable"] == library_names("differentiable")
