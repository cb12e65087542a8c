"""The op table: one entry per differentiable op and composite function of tinynet's public API.

Each :class:`OpCase` says how to call tinynet, how to compute the same thing independently with
NumPy in float64, which values each input may take (and why, where it is restricted), which shapes
to draw, and whether second derivatives apply. ``tests/test_ops.py`` runs every entry through the
same generic checks (forward against NumPy in float64 and float32, full-Jacobian gradcheck,
gradgradcheck, gradient shape/dtype/device, broadcasting) on every device, and a failure names the
file:line of each backward involved (:meth:`OpCase.backwards`);
``tests/test_op_table.py`` fails when an op of ``tinynet.ops`` has no entry here.

Adding an op: add its entry below, next to its kind. Restrict a domain only with a reason written
in ``why`` (minitorch and Chainer do the same: stay off kinks on purpose, and say so). The module
is long because it is one table, read as a whole: every op of the library with its reference, in
the order of ``tinynet/ops/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import tinynet as tn
from tinynet.autograd import Node
from tinynet.ops.reference import backward_location

from .strategies import (
    DOMAINS, Domain, broadcastable_shapes, conv_output_size, matmul_shapes, shapes,
)
from .strategies import conv_shapes as _conv_shapes
from .strategies import pool_shapes as _pool_shapes_of

ShapeStrategy = Callable[[int], st.SearchStrategy]  # max_side -> strategy of a tuple of shapes


@dataclass(frozen=True)
class OpCase:
    """One entry of the op table.

    Attributes:
        name: the case's name; ``id`` adds the params (``sum[axis=-1,keepdims=True]``).
        fn: the tinynet call, ``fn(*tensors, **params)``; may return a tuple of Tensors.
        ref: the NumPy float64 forward, ``ref(*arrays, **params)``, written independently.
        inputs: one :class:`Domain` per tensor input.
        shapes: ``max_side -> strategy`` of a tuple of input shapes.
        api: the ``tinynet.ops`` function this case exercises.
        why: the reason for any domain restriction.
        smooth: twice differentiable on the sampled domain, so gradgradcheck applies.
        broadcast: the inputs are mutually broadcastable (the gradient must sum back).
        differentiable: False for ops with no gradient (comparisons, argmax): forward only, and
            the output must not require grad.
        params: keyword arguments passed to both ``fn`` and ``ref``.
        gradcheck: overrides of gradcheck's ``eps``/``atol``/``rtol``.
        f32_tol: ``(rtol, atol)`` of the float32 forward against the float64 reference.
    """

    name: str
    fn: Callable
    ref: Callable
    inputs: tuple[Domain, ...]
    shapes: ShapeStrategy
    api: str
    why: str = ""
    smooth: bool = True
    broadcast: bool = False
    differentiable: bool = True
    params: Mapping = field(default_factory=dict)
    gradcheck: Mapping = field(default_factory=dict)
    f32_tol: tuple[float, float] = (1e-4, 1e-5)

    @property
    def id(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.params.items())}]"

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def call(self, *tensors):
        return self.fn(*tensors, **self.params)

    def reference(self, *arrays):
        return self.ref(*arrays, **self.params)

    def backwards(self, *tensors) -> list[str]:
        """Where the backward of every op this case records is written: ``["MulOp at
        tinynet/ops/elementwise.py:82", ...]`` (for failure messages: the line to read)."""
        result = self.call(*tensors)
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        ops = sorted(recorded_ops(outputs), key=lambda op: op.__name__)
        return [f"{op.__name__} at {backward_location(op)}" for op in ops]


def recorded_ops(outputs) -> set:
    """The op classes in the graph behind ``outputs`` (an iterative walk over grad_fn.parents)."""
    found, seen = set(), set()
    stack = [o.grad_fn for o in outputs if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.add(node.fn)
        stack.extend(p for p in node.parents if isinstance(p, Node))
    return found


# --- domains ------------------------------------------------------------------------------------

REAL, POSITIVE, NONZERO, DISTINCT = (DOMAINS[k] for k in ("real", "positive", "nonzero",
                                                          "distinct"))
OFF_ZERO = REAL.replace(avoid=(0.0,), margin=0.05)
# maximum/minimum/clip-by-tensor: inputs on interleaved grids never tie (a == b is the kink).
GRID = [Domain(-2.0, 2.0, grid=1 / 8, phase=p) for p in (0.0, 0.25, 0.5)]
PROBABILITY = Domain(0.1, 0.9)
# comparisons: a coarse grid, so that == and <= meet equal values often.
COARSE = Domain(-1.0, 1.0, grid=0.5)

# --- shape strategies ---------------------------------------------------------------------------


def _at_least(shape: tuple, sizes: Mapping[int, int]) -> tuple:
    out = list(shape)
    for axis, size in sizes.items():
        out[axis] = max(out[axis], size)
    return tuple(out)


def same(n: int = 1, min_dims: int = 0, max_dims: int = 3, sizes: Mapping[int, int] | None = None,
         side: int | None = None) -> ShapeStrategy:
    """``n`` inputs of one shape; ``sizes`` forces minimum sizes on some axes; ``side`` caps the
    side length (e.g. 2 for squeeze, so that size-1 axes are common)."""
    def make(max_side):
        s = shapes(min_dims, max_dims, max_side=min(max_side, side or max_side))
        if sizes:
            s = s.map(lambda shape: _at_least(shape, sizes))
        return s.map(lambda shape: (shape,) * n)
    return make


def bcast(n: int = 2) -> ShapeStrategy:
    return lambda max_side: broadcastable_shapes(n, max_side=max_side)


def along(n: int, axis: int, min_dims: int = 1) -> ShapeStrategy:
    """``n`` shapes equal except along ``axis`` (for cat)."""
    def make(max_side):
        def build(drawn):
            base, sizes = drawn
            return tuple(base[:axis % len(base)] + (k,) + base[axis % len(base) + 1:]
                         for k in sizes)
        sizes = st.lists(st.integers(1, max_side), min_size=n, max_size=n)
        return st.tuples(shapes(min_dims, 3, max_side=max_side), sizes).map(build)
    return make


def prefixed(prefix: tuple, max_dims: int = 2) -> ShapeStrategy:
    """One shape starting with ``prefix`` (index_add's values, squeeze's leading 1)."""
    return lambda max_side: shapes(0, max_dims, max_side=max_side).map(lambda s: (prefix + s,))


def linear_shapes(lead: int = 1, bias: bool = True) -> ShapeStrategy:
    """Shapes for linear: x ``(*lead, in)``, w ``(out, in)`` and, with ``bias``, b ``(out,)``."""
    def make(max_side):
        def build(d):
            batch, n_in, n_out = d
            return ((*batch, n_in), (n_out, n_in)) + (((n_out,),) if bias else ())
        sides = st.integers(1, max_side)
        return st.tuples(st.lists(sides, min_size=lead, max_size=lead), sides, sides).map(build)
    return make


def _ce_labels(m: int, c: int) -> np.ndarray:
    """softmax_cross_entropy's fixed targets for an (m, c) input: every class in turn."""
    return np.arange(m) % c


def _ce_weights(m: int) -> np.ndarray:
    """Fixed row weights 0.5, 1, 1.5, 0.5, ...; a zero (an ignored row) when there are 4+ rows."""
    w = 0.5 * (1 + np.arange(m) % 3)
    if m >= 4:
        w[3] = 0.0
    return w


def _softmax_ce(x, weighted=False, reduction="mean"):
    m, c = x.shape
    labels = tn.tensor(_ce_labels(m, c), device=x.device)
    w = tn.tensor(_ce_weights(m), device=x.device) if weighted else None
    return tn.ops.softmax_cross_entropy(x, labels, w, reduction)


def _softmax_ce_ref(a, weighted=False, reduction="mean"):
    m, c = a.shape
    logp = a - _logsumexp(a, 1, True)
    w = _ce_weights(m) if weighted else np.ones(m)
    loss = -w * logp[np.arange(m), _ce_labels(m, c)]
    if reduction == "none":
        return loss
    return loss.sum() / (w.sum() if reduction == "mean" else 1.0)


def matrices(kind: str) -> ShapeStrategy:
    """matmul operand shapes (see ``strategies.matmul_shapes``)."""
    return lambda max_side: matmul_shapes(kind, max_side)


# --- NumPy references and index helpers ---------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(a, approximate="none"):
    if approximate == "tanh":
        return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    return 0.5 * a * (1 + _erf(a / math.sqrt(2)))


def _softplus(a, beta=1.0, threshold=20.0):
    return np.where(beta * a > threshold, a, np.logaddexp(0.0, beta * a) / beta)


def _logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(a, axis=-1):
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _pattern(shape) -> np.ndarray:
    """A fixed boolean pattern (every third element False): a mask that ignores the values."""
    return np.arange(math.prod(shape)).reshape(shape) % 3 != 1


def _mask(x: tn.Tensor, shape=None) -> tn.Tensor:
    return tn.tensor(_pattern(x.shape if shape is None else shape), device=x.device)


def _repeats(n: int) -> list[int]:
    """Integer indices into an axis of length n, with repeats (gradients must accumulate)."""
    return [0, n - 1, 0]


def _idx(x: tn.Tensor, values) -> tn.Tensor:
    return tn.tensor(values, device=x.device)


def _index_add_ref(a):
    out = np.zeros((2,) + a.shape[1:])
    np.add.at(out, [0, 1, 0], a)
    return out


def _setitem(x):
    y = x.detach().clone()
    y[_mask(x)] = 0.5
    return y


def _setitem_ref(a):
    out = a.copy()
    out[_pattern(a.shape)] = 0.5
    return out


def _setitem_row(x, v):
    y = tn.clone(x)
    y[0] = v  # recorded (v requires grad): PyTorch's CopySlices
    return y


def _setitem_row_ref(a, b):
    out = a.copy()
    out[0] = b
    return out


def _setitem_masked(x, v):
    y = tn.clone(x)
    y[_mask(x)] = v  # a 0-d v broadcast over the selected elements: its gradient is their sum
    return y


def _setitem_masked_ref(a, b):
    out = a.copy()
    out[_pattern(a.shape)] = b
    return out


def _row_of(max_side):
    """(x, v) shapes for ``x[0] = v``: v is a row of x."""
    return shapes(1, 3, max_side=max_side).map(lambda s: (s, s[1:]))


def _bce_ref(p, y):
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped at -100 as PyTorch does
        return -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))


def _roundtrip_cast(x):
    other = tn.float32 if x.dtype == tn.float64 else tn.float64
    return tn.cast(tn.cast(x, other), x.dtype)


def _roundtrip_device(x):
    other = "standin" if x.device == "cpu" else "cpu"
    return tn.ops.to_device(tn.ops.to_device(x, other), x.device)


def _sections(x_len: int) -> list[int]:
    return [1, x_len - 1]


def _split_points(n: int, step: int) -> list[int]:
    return list(range(step, n, step))


def _chunks_ref(a):
    """torch.chunk(a, 2, -1): pieces of ceil(n / 2) along the last dim."""
    step = -(-a.shape[-1] // 2)
    return tuple(a[..., i:i + step] for i in range(0, a.shape[-1], step))


# --- the table ----------------------------------------------------------------------------------


def _unary(name, fn, ref, domain=REAL, why="", api=None, shape=None, **kw) -> OpCase:
    return OpCase(name, fn, ref, (domain,), shape or same(), api or name, why, **kw)


def _binary(name, fn, ref, domains=(REAL, REAL), why="", api=None, **kw) -> OpCase:
    return OpCase(name, fn, ref, tuple(domains), bcast(2), api or name, why, broadcast=True, **kw)


KINK = "kink at 0: keep |x| >= 0.05 so central differences never straddle it"
TIES = "the gradient jumps where values tie; ties are tested on their own (tie semantics)"

OP_TABLE: tuple[OpCase, ...] = (
    # --- arithmetic (broadcasting) ---
    _binary("add", tn.add, np.add),
    _binary("sub", tn.sub, np.subtract),
    _binary("mul", tn.mul, np.multiply),
    _binary("div", tn.div, np.divide, (REAL, NONZERO),
            why="a / b has a pole at b = 0: keep |b| >= 0.25"),
    _binary("pow", tn.pow, np.power, (POSITIVE, REAL),
            why="a ** b for real b needs a > 0, and d/db = out * log(a) needs log a"),
    _binary("add_operator", lambda a, b: a + b, np.add, api="add"),
    _unary("pow_scalar_exponent", lambda x: x**2.5, lambda a: a**2.5, POSITIVE, api="pow",
           why="a ** 2.5 is real only for a >= 0, and its second derivative blows up at 0"),
    _unary("pow_int_exponent", lambda x: tn.pow(x, 3), lambda a: a**3, api="pow"),
    _unary("pow_scalar_base", lambda x: 2.0**x, lambda a: 2.0**a, api="pow"),
    _unary("rsub_scalar", lambda x: 1.5 - x, lambda a: 1.5 - a, api="sub"),
    _unary("rdiv_scalar", lambda x: 2.0 / x, lambda a: 2.0 / a, NONZERO, api="div",
           why="2 / x has a pole at x = 0"),
    _unary("neg", tn.neg, np.negative),
    # --- math functions ---
    _unary("exp", tn.exp, np.exp),
    _unary("log", tn.log, np.log, POSITIVE,
           why="log needs x > 0; its derivative 1/x blows up at 0"),
    _unary("sqrt", tn.sqrt, np.sqrt, POSITIVE,
           why="d sqrt(x) = 1 / (2 sqrt(x)) is infinite at 0"),
    _unary("abs", tn.abs, np.abs, OFF_ZERO, why=KINK),
    _unary("sin", tn.sin, np.sin),
    _unary("cos", tn.cos, np.cos),
    _unary("tanh", tn.tanh, np.tanh),
    _unary("erf", tn.erf, _erf),
    # --- activations ---
    _unary("sigmoid", tn.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    _unary("relu", tn.relu, lambda a: np.maximum(a, 0), OFF_ZERO, why=KINK),
    _unary("leaky_relu", tn.leaky_relu, lambda a, negative_slope: np.where(a > 0, a,
                                                                             negative_slope * a),
           OFF_ZERO, why=KINK, params={"negative_slope": 0.1}),
    _unary("gelu", tn.gelu, _gelu, params={"approximate": "none"}),
    _unary("gelu", tn.gelu, _gelu, params={"approximate": "tanh"}),
    _unary("softplus", tn.softplus, _softplus),
    _unary("softplus", tn.softplus, _softplus, REAL.replace(avoid=(0.5,), margin=0.05),
           params={"beta": 2.0, "threshold": 1.0},
           why="at beta * x = threshold softplus switches to x, with a jump: keep off x = 0.5"),
    _unary("clip", tn.clip, np.clip, REAL.replace(avoid=(-0.5, 0.75), margin=0.05),
           params={"min": -0.5, "max": 0.75}, why="kinks at both bounds"),
    _unary("clamp", tn.clamp, lambda a, min: np.maximum(a, min),
           REAL.replace(avoid=(0.3,), margin=0.05), params={"min": 0.3}, api="clip",
           why="kink at the bound"),
    OpCase("clip_tensor_bounds", tn.clip, np.clip, tuple(GRID), bcast(3), "clip", TIES,
           broadcast=True),
    _binary("maximum", tn.maximum, np.maximum, GRID[:2], why=TIES),
    _binary("minimum", tn.minimum, np.minimum, GRID[:2], why=TIES),
    _binary("where", lambda a, b: tn.where(_mask(a, np.broadcast_shapes(a.shape, b.shape)), a, b),
            lambda a, b: np.where(_pattern(np.broadcast_shapes(a.shape, b.shape)), a, b)),
    _unary("where_scalar", lambda x: tn.where(_mask(x), x, 0.0),
           lambda a: np.where(_pattern(a.shape), a, 0.0), api="where"),
    # --- reductions ---
    _unary("sum", tn.sum, np.sum),
    _unary("sum", tn.sum, np.sum, shape=same(min_dims=1), params={"axis": 0}),
    _unary("sum", tn.sum, np.sum, shape=same(min_dims=2), params={"axis": (0, -1),
                                                                   "keepdims": True}),
    _unary("sum_dim_keepdim", lambda x: tn.sum(x, dim=-1, keepdim=True),
           lambda a: np.sum(a, axis=-1, keepdims=True), shape=same(min_dims=1), api="sum"),
    _unary("mean", tn.mean, np.mean),
    _unary("mean", tn.mean, np.mean, shape=same(min_dims=1), params={"axis": -1,
                                                                      "keepdims": True}),
    _unary("var", tn.var, lambda a: np.var(a, ddof=1), shape=same(min_dims=1, sizes={0: 2})),
    _unary("var", tn.var, lambda a, axis, correction: np.var(a, axis=axis, ddof=correction),
           shape=same(min_dims=1), params={"axis": -1, "correction": 0}),
    _unary("std", tn.std, lambda a: np.std(a, ddof=1), DISTINCT,
           shape=same(min_dims=1, sizes={0: 2}),
           why="d std = (x - mean) / (n-1) std is infinite at zero variance: values distinct"),
    _unary("std", tn.std, lambda a, axis, keepdims: np.std(a, axis=axis, ddof=1,
                                                           keepdims=keepdims), DISTINCT,
           shape=same(min_dims=1, sizes={0: 2}), params={"axis": 0, "keepdims": True},
           why="d std is infinite at zero variance: values distinct"),
    _unary("amax", tn.amax, np.max, DISTINCT, why=TIES),
    _unary("amax", tn.amax, lambda a, dim, keepdim: np.max(a, axis=dim, keepdims=keepdim),
           DISTINCT, why=TIES, shape=same(min_dims=2), params={"dim": (0, -1), "keepdim": True}),
    _unary("amin", tn.amin, np.min, DISTINCT, why=TIES, shape=same(min_dims=1),
           params={"axis": -1}),
    _unary("max", tn.max, np.max, DISTINCT, why=TIES),
    _unary("max_dim_values", lambda x: x.max(dim=-1).values, lambda a: np.max(a, axis=-1),
           DISTINCT, why=TIES, shape=same(min_dims=1), api="max"),
    _unary("max_axis_keepdims_values", lambda x: tn.max(x, axis=0, keepdims=True)[0],
           lambda a: np.max(a, axis=0, keepdims=True), DISTINCT, why=TIES,
           shape=same(min_dims=2), api="max"),
    _unary("min", tn.min, np.min, DISTINCT, why=TIES),
    _unary("min_dim_keepdim_values", lambda x: x.min(-1, keepdim=True).values,
           lambda a: np.min(a, axis=-1, keepdims=True), DISTINCT, why=TIES,
           shape=same(min_dims=1), api="min"),
    _unary("logsumexp", tn.logsumexp, _logsumexp),
    _unary("logsumexp", tn.logsumexp, _logsumexp, shape=same(min_dims=1), params={"axis": -1}),
    _unary("logsumexp", tn.logsumexp, _logsumexp, shape=same(min_dims=2),
           params={"axis": (0, -1), "keepdims": True}),
    _unary("softmax", tn.softmax, _softmax, shape=same(min_dims=1), params={"axis": -1}),
    _unary("softmax", tn.softmax, _softmax, shape=same(min_dims=2), params={"axis": 0}),
    _unary("softmax_all_dims", lambda x: tn.softmax(x, dim=None), lambda a: _softmax(a, None),
           api="softmax"),
    *(_unary("softmax_cross_entropy", _softmax_ce, _softmax_ce_ref,
             shape=same(min_dims=2, max_dims=2, sizes={0: 4}),
             params={"weighted": weighted, "reduction": reduction})
      for weighted, reduction in ((False, "mean"), (True, "mean"), (True, "sum"),
                                  (False, "none"))),
    _unary("log_softmax", tn.log_softmax, lambda a, axis: a - _logsumexp(a, axis, True),
           shape=same(min_dims=1), params={"axis": -1}),
    OpCase("binary_cross_entropy", tn.ops.binary_cross_entropy, _bce_ref, (PROBABILITY,) * 2,
           same(2), "binary_cross_entropy",
           why="probabilities in (0, 1), away from 0 and 1 where the logs are clamped at -100"),
    _unary("log_softmax", tn.log_softmax, lambda a, axis: a - _logsumexp(a, axis, True),
           shape=same(min_dims=2), params={"axis": 0}),
    # --- shape ---
    _unary("reshape_flat", lambda x: tn.reshape(x, -1), lambda a: a.reshape(-1), api="reshape"),
    _unary("reshape_reversed", lambda x: x.reshape(x.shape[::-1]),
           lambda a: a.reshape(a.shape[::-1]), api="reshape"),
    _unary("permute", lambda x: x.permute(1, 2, 0), lambda a: np.transpose(a, (1, 2, 0)),
           shape=same(min_dims=3)),
    _unary("transpose", lambda x: tn.transpose(x, 0, -1), lambda a: np.swapaxes(a, 0, -1),
           shape=same(min_dims=1)),
    _unary("T", lambda x: x.T, lambda a: a.T, api="permute"),
    _unary("transpose_method", lambda x: x.transpose(-1, 0), lambda a: np.swapaxes(a, 0, -1),
           shape=same(min_dims=1), api="transpose"),
    _unary("swapaxes", lambda x: tn.swapaxes(x, 0, -1), lambda a: np.swapaxes(a, 0, -1),
           shape=same(min_dims=1)),
    _unary("mT", lambda x: x.mT, lambda a: np.swapaxes(a, -1, -2), shape=same(min_dims=2),
           api="transpose"),
    _unary("view_contiguous", lambda x: x.contiguous().view(-1), lambda a: a.reshape(-1),
           api="view"),
    _unary("view_as_split_dim", lambda x: x.view(*x.shape, 1).view(x.shape),
           lambda a: a, api="view"),
    _unary("expand", lambda x: x.expand(2, *[3 if s == 1 else -1 for s in x.shape]),
           lambda a: np.broadcast_to(a, (2,) + tuple(3 if s == 1 else s for s in a.shape))),
    _unary("broadcast_to", lambda x: tn.broadcast_to(x, (2,) + x.shape),
           lambda a: np.broadcast_to(a, (2,) + a.shape)),
    _unary("squeeze", tn.squeeze, np.squeeze, shape=same(side=2)),
    _unary("squeeze", tn.squeeze, np.squeeze, shape=prefixed((1,)), params={"axis": 0}),
    _unary("unsqueeze", tn.unsqueeze, np.expand_dims, params={"axis": 0}),
    _unary("unsqueeze", tn.unsqueeze, np.expand_dims, params={"axis": -1}),
    _unary("flatten", tn.flatten, lambda a: a.reshape(-1)),
    _unary("flatten", tn.flatten, lambda a, start_dim: a.reshape(a.shape[0], -1),
           shape=same(min_dims=3), params={"start_dim": 1}),
    _unary("getitem_int", lambda x: x[-1], lambda a: a[-1], shape=same(min_dims=1),
           api="getitem"),
    _unary("getitem_slices", lambda x: x[::-1, 1:], lambda a: a[::-1, 1:],
           shape=same(min_dims=2), api="getitem"),
    _unary("getitem_newaxis_ellipsis_step", lambda x: x[None, ..., ::2],
           lambda a: a[None, ..., ::2], shape=same(min_dims=1), api="getitem"),
    _unary("getitem_int_array_repeats", lambda x: x[_idx(x, _repeats(x.shape[0]))],
           lambda a: a[_repeats(a.shape[0])], shape=same(min_dims=1), api="getitem"),
    _unary("getitem_int_arrays_and_slice",
           lambda x: x[_idx(x, _repeats(x.shape[0])), :, _idx(x, [0, -1, -1])],
           lambda a: a[_repeats(a.shape[0]), :, [0, -1, -1]], shape=same(min_dims=3),
           api="getitem"),
    _unary("getitem_bool_mask", lambda x: x[_mask(x)], lambda a: a[_pattern(a.shape)],
           api="getitem"),
    OpCase("cat", lambda *xs, axis: tn.cat(xs, axis=axis),
           lambda *arrays, axis: np.concatenate(arrays, axis=axis), (REAL, REAL), along(2, 0),
           "cat", params={"axis": 0}),
    OpCase("cat", lambda *xs, axis: tn.cat(xs, axis=axis),
           lambda *arrays, axis: np.concatenate(arrays, axis=axis), (REAL,) * 3, along(3, -1),
           "cat", params={"axis": -1}),
    OpCase("stack", lambda *xs, axis: tn.stack(xs, axis=axis),
           lambda *arrays, axis: np.stack(arrays, axis=axis), (REAL, REAL), same(2), "stack",
           params={"axis": 0}),
    OpCase("stack", lambda *xs, axis: tn.stack(xs, axis=axis),
           lambda *arrays, axis: np.stack(arrays, axis=axis), (REAL,) * 3, same(3), "stack",
           params={"axis": -1}),
    _unary("split_size", lambda x: tn.split(x, 2, axis=-1),
           lambda a: tuple(np.split(a, _split_points(a.shape[-1], 2), axis=-1)),
           shape=same(min_dims=1), api="split"),
    _unary("split_sections", lambda x: x.split(_sections(x.shape[0])),
           lambda a: tuple(np.split(a, [1], axis=0)), shape=same(min_dims=1, sizes={0: 2}),
           api="split"),
    _unary("split_skip_pieces", lambda x: tn.split(x, 1, 0)[1::2],
           lambda a: tuple(np.split(a, a.shape[0], axis=0))[1::2],
           shape=same(min_dims=1, sizes={0: 2}), api="split"),
    _unary("chunk", lambda x: x.chunk(2, dim=-1), _chunks_ref, shape=same(min_dims=1)),
    _unary("unbind", lambda x: tn.unbind(x), lambda a: tuple(a), shape=same(min_dims=1)),
    _unary("unbind_last_dim", lambda x: x.unbind(-1), lambda a: tuple(np.moveaxis(a, -1, 0)),
           shape=same(min_dims=2), api="unbind"),
    _unary("unbind_some_pieces_used", lambda x: (x.unbind(0)[-1] * 2.0,),
           lambda a: (a[-1] * 2.0,), shape=same(min_dims=1, sizes={0: 2}), api="unbind"),
    _unary("pad", lambda x: tn.pad(x, (1, 2)),
           lambda a: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(1, 2)]), shape=same(min_dims=1)),
    _unary("pad_two_axes_value", lambda x: tn.pad(x, (0, 1, 2, 0), value=0.5),
           lambda a: np.pad(a, [(0, 0)] * (a.ndim - 2) + [(2, 0), (0, 1)], constant_values=0.5),
           shape=same(min_dims=2), api="pad"),
    # --- indexing ---
    _unary("index_add", lambda v: tn.index_add(v, (2,) + v.shape[1:], _idx(v, [0, 1, 0])),
           _index_add_ref, shape=prefixed((3,))),
    # --- linear algebra ---
    *(OpCase(f"matmul_{kind}", tn.matmul, np.matmul, (REAL, REAL), matrices(kind), "matmul")
      for kind in ("1d@1d", "2d@2d", "1d@2d", "2d@1d", "batched")),
    OpCase("matmul_operator", lambda a, b: a @ b, np.matmul, (REAL, REAL), matrices("batched"),
           "matmul"),
    *(OpCase(f"linear_{name}", tn.ops.linear, lambda x, w, b=0.0: x @ w.T + b, (REAL,) * n,
             linear_shapes(lead, n == 3), "linear")
      for name, lead, n in (("2d", 1, 3), ("2d_no_bias", 1, 2), ("batched", 2, 3), ("1d", 0, 3))),
    # --- conversions ---
    _unary("cast_roundtrip", _roundtrip_cast, lambda a: a.astype(np.float32).astype(np.float64),
           api="cast", gradcheck={"eps": 1e-2},
           why="float32 rounding (~1e-7) swamps a 1e-6 step; the map is linear, so eps=1e-2 "
               "has no truncation error"),
    _unary("clone", tn.clone, np.copy),
    _unary("to_device_roundtrip", _roundtrip_device, np.copy, api="to_device"),
    # --- no gradient: forward only, and the output must not require grad ---
    *(_binary(op, getattr(tn, op), ref, (COARSE, COARSE), differentiable=False)
      for op, ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                      ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal))),
    _binary("logical_and", lambda a, b: tn.logical_and(a > 0, b < 0),
            lambda a, b: np.logical_and(a > 0, b < 0), (COARSE, COARSE), differentiable=False),
    _binary("logical_or", lambda a, b: (a > 0) | (b <= 0),
            lambda a, b: np.logical_or(a > 0, b <= 0), (COARSE, COARSE), differentiable=False),
    _unary("logical_not", lambda x: tn.logical_not(x >= 0), lambda a: ~(a >= 0), COARSE,
           differentiable=False),
    _unary("argmax", tn.argmax, np.argmax, COARSE, differentiable=False),
    _unary("argmax", tn.argmax, lambda a, axis, keepdims: np.argmax(a, axis, keepdims=keepdims),
           COARSE, shape=same(min_dims=1), params={"axis": -1, "keepdims": True},
           differentiable=False),
    _unary("argmin", lambda x, axis: x.argmin(axis), np.argmin, COARSE, shape=same(min_dims=1),
           params={"axis": 0}, differentiable=False),
    _unary("argmin_dim_keepdim", lambda x: tn.argmin(x, dim=-1, keepdim=True),
           lambda a: np.argmin(a, -1, keepdims=True), COARSE, shape=same(min_dims=1),
           differentiable=False, api="argmin"),
    _unary("max_dim_indices", lambda x: x.max(dim=0).indices, lambda a: np.argmax(a, 0), COARSE,
           shape=same(min_dims=1), differentiable=False, api="max"),
    _unary("min_dim_indices", lambda x: tn.min(x, 0)[1], lambda a: np.argmin(a, 0), COARSE,
           shape=same(min_dims=1), differentiable=False, api="min"),
    _unary("setitem", _setitem, _setitem_ref, differentiable=False),
    OpCase("setitem_row", _setitem_row, _setitem_row_ref, (REAL, REAL), _row_of, "setitem"),
    OpCase("setitem_masked", _setitem_masked, _setitem_masked_ref, (REAL, REAL),
           lambda max_side: shapes(0, 3, max_side=max_side).map(lambda s: (s, ())), "setitem"),
)

# --- convolution and pooling (tinynet/ops/conv.py) --------------------------------------------
# Shapes: (N, C, H, W) inputs with N, C/groups in 1..2 and H, W from the smallest size the kernel
# fits (padding included) up to max_side more, so full-Jacobian checks stay at a few dozen elements.


_out = conv_output_size


def conv_shapes(*args, **kwargs) -> ShapeStrategy:
    """conv2d operand shapes (see ``strategies.conv_shapes``), at most 3 more than the kernel."""
    return lambda max_side: _conv_shapes(*args, max_side=min(max_side, 3), **kwargs)


def _conv_ref(a, wt, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d in NumPy, one kernel offset at a time: zero-pad, take the strided slice each offset
    sees, contract channels group by group."""
    n, _, h, w = a.shape
    o, cg, kh, kw = wt.shape
    ap = np.pad(a, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    oh, ow = _out(h, kh, stride, padding, dilation), _out(w, kw, stride, padding, dilation)
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation, j * dilation
            patch = ap[:, :, r:r + stride * (oh - 1) + 1:stride, q:q + stride * (ow - 1) + 1:stride]
            for gi in range(groups):
                out[:, gi * og:(gi + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch[:, gi * cg:(gi + 1) * cg],
                    wt[gi * og:(gi + 1) * og, :, i, j])
    return out if b is None else out + b.reshape(1, o, 1, 1)


def _conv_input_grad_ref(g, wt, stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of _conv_ref in its input (for the smallest input giving g's size)."""
    n, o, oh, ow = g.shape
    _, cg, kh, kw = wt.shape
    h = (oh - 1) * stride + dilation * (kh - 1) + 1 - 2 * padding
    w = (ow - 1) * stride + dilation * (kw - 1) + 1 - 2 * padding
    out = np.zeros((n, cg * groups, h + 2 * padding, w + 2 * padding))
    og = o // groups
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation, j * dilation
            for gi in range(groups):
                out[:, gi * cg:(gi + 1) * cg, r:r + stride * (oh - 1) + 1:stride,
                    q:q + stride * (ow - 1) + 1:stride] += np.einsum(
                    "nohw,oc->nchw", g[:, gi * og:(gi + 1) * og],
                    wt[gi * og:(gi + 1) * og, :, i, j])
    return out[:, :, padding:padding + h, padding:padding + w]


def _conv_weight_grad_ref(a, g, kernel=(2, 2), stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of _conv_ref in its weight."""
    c = a.shape[1]
    o, oh, ow = g.shape[1:]
    kh, kw = kernel
    cg, og = c // groups, o // groups
    ap = np.pad(a, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    out = np.zeros((o, cg, kh, kw))
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation, j * dilation
            patch = ap[:, :, r:r + stride * (oh - 1) + 1:stride, q:q + stride * (ow - 1) + 1:stride]
            for gi in range(groups):
                out[gi * og:(gi + 1) * og, :, i, j] = np.einsum(
                    "nohw,nchw->oc", g[:, gi * og:(gi + 1) * og], patch[:, gi * cg:(gi + 1) * cg])
    return out


def _conv_input_grad(g, wt, **p):
    """conv2d's input gradient built under create_graph (a Conv2dInputGrad node)."""
    n, _, oh, ow = g.shape
    _, cg, kh, kw = wt.shape
    s, pad, d, groups = p["stride"], p["padding"], p["dilation"], p["groups"]
    h = (oh - 1) * s + d * (kh - 1) + 1 - 2 * pad
    w = (ow - 1) * s + d * (kw - 1) + 1 - 2 * pad
    x = tn.zeros(n, cg * groups, h, w, dtype=g.dtype, device=g.device, requires_grad=True)
    with tn.enable_grad():  # gradcheck evaluates fn under no_grad; this gradient needs a graph
        y = tn.nn.functional.conv2d(x, wt, None, s, pad, d, groups)
        return tn.grad(y, x, g, create_graph=True)[0]


def _conv_weight_grad(x, g, kernel, **p):
    """conv2d's weight gradient built under create_graph (a Conv2dWeightGrad node)."""
    groups = p["groups"]
    wt = tn.zeros(g.shape[1], x.shape[1] // groups, *kernel, dtype=x.dtype, device=x.device,
                  requires_grad=True)
    with tn.enable_grad():
        y = tn.nn.functional.conv2d(x, wt, None, p["stride"], p["padding"], p["dilation"], groups)
        return tn.grad(y, wt, g, create_graph=True)[0]


def _max_pool_ref(a, kernel_size, stride, padding=0, dilation=1):
    """max_pool2d in NumPy: -inf padding, the max over each offset's strided slice."""
    h, w = a.shape[2:]
    k, s, p, d = kernel_size, stride, padding, dilation
    ap = np.pad(a, [(0, 0), (0, 0), (p, p), (p, p)], constant_values=-np.inf)
    oh, ow = _out(h, k, s, p, d), _out(w, k, s, p, d)
    return np.max([ap[:, :, i * d:i * d + s * (oh - 1) + 1:s, j * d:j * d + s * (ow - 1) + 1:s]
                   for i in range(k) for j in range(k)], axis=0)


def _pool_shapes(k, s, p, d) -> ShapeStrategy:
    return lambda max_side: _pool_shapes_of(k, s, p, d, min(max_side, 3)).map(lambda t: (t,))


_CONV_F32 = (1e-4, 1e-4)  # float32 sums of up to a few dozen products of values in [-2, 2]
_CONV_PARAMS = (
    {"stride": 1, "padding": 1, "dilation": 1, "groups": 1},
    {"stride": 2, "padding": 0, "dilation": 2, "groups": 2},
)
_CONV_KERNELS = ((2, 3), (2, 2))
POOL_TIES = ("max_pool2d's gradient jumps where window values tie: distinct values on a 1/64 grid "
             "(fine enough for the largest drawn input); ties have their own tests")
POOL_DISTINCT = Domain(-2.0, 2.0, grid=1 / 64, unique=True)

OP_TABLE = OP_TABLE + (
    *(OpCase("conv2d", lambda x, w, b=None, **p: tn.nn.functional.conv2d(x, w, b, **p), _conv_ref,
             (REAL,) * (2 + bias), conv_shapes(kernel, p["stride"], p["padding"], p["dilation"],
                                               p["groups"], bias),
             "convolution", params=p, f32_tol=_CONV_F32)
      for p, kernel, bias in ((_CONV_PARAMS[0], _CONV_KERNELS[0], True),
                              (_CONV_PARAMS[1], _CONV_KERNELS[1], False))),
    *(OpCase("conv2d_input_grad", _conv_input_grad, _conv_input_grad_ref, (REAL, REAL),
             conv_shapes(kernel, p["stride"], p["padding"], p["dilation"], p["groups"],
                         role="input_grad"), "convolution", params=p, f32_tol=_CONV_F32)
      for p, kernel in zip(_CONV_PARAMS, _CONV_KERNELS)),
    *(OpCase("conv2d_weight_grad", _conv_weight_grad, _conv_weight_grad_ref, (REAL, REAL),
             conv_shapes(kernel, p["stride"], p["padding"], p["dilation"], p["groups"],
                         role="weight_grad"), "convolution", params={"kernel": kernel, **p},
             f32_tol=_CONV_F32)
      for p, kernel in zip(_CONV_PARAMS, _CONV_KERNELS)),
    *(OpCase("max_pool2d", lambda x, **p: tn.nn.functional.max_pool2d(x, **p), _max_pool_ref,
             (POOL_DISTINCT,), _pool_shapes(p["kernel_size"], p["stride"], p["padding"],
                                       p["dilation"]), "max_pool", POOL_TIES, params=p)
      for p in ({"kernel_size": 2, "stride": 1, "padding": 1, "dilation": 1},
                {"kernel_size": 2, "stride": 2, "padding": 0, "dilation": 2})),
)
# 1-D: (N, C, L) inputs, the same sizes as above along L.


def _conv1d_shapes(kernel, stride, padding, dilation, groups, bias=True,
                   role="conv") -> ShapeStrategy:
    """conv1d operand shapes: ``(x, w[, b])``, ``(grad_out, w)`` or ``(x, grad_out)`` by role."""
    def build(d):
        n, cg, og, length = d
        x, wt = (n, cg * groups, length), (og * groups, cg, kernel)
        g = (n, og * groups, _out(length, kernel, stride, padding, dilation))
        return {"conv": (x, wt, (og * groups,)) if bias else (x, wt),
                "input_grad": (g, wt), "weight_grad": (x, g)}[role]
    low = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return lambda max_side: st.tuples(
        st.integers(1, 2), st.integers(1, 2), st.integers(1, 2),
        st.integers(low, low + min(max_side, 3) + 1)).map(build)


def _conv1d_ref(a, wt, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv1d in NumPy, one kernel offset at a time, group by group."""
    n, _, length = a.shape
    o, cg, k = wt.shape
    ap = np.pad(a, [(0, 0), (0, 0), (padding, padding)])
    ol = _out(length, k, stride, padding, dilation)
    out = np.zeros((n, o, ol))
    og = o // groups
    for i in range(k):
        patch = ap[:, :, i * dilation:i * dilation + stride * (ol - 1) + 1:stride]
        for gi in range(groups):
            out[:, gi * og:(gi + 1) * og] += np.einsum(
                "ncl,oc->nol", patch[:, gi * cg:(gi + 1) * cg], wt[gi * og:(gi + 1) * og, :, i])
    return out if b is None else out + b.reshape(1, o, 1)


def _conv1d_input_grad_ref(g, wt, stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of _conv1d_ref in its input (for the shortest input giving g's length)."""
    n, o, ol = g.shape
    _, cg, k = wt.shape
    length = (ol - 1) * stride + dilation * (k - 1) + 1 - 2 * padding
    out = np.zeros((n, cg * groups, length + 2 * padding))
    og = o // groups
    for i in range(k):
        r = i * dilation
        for gi in range(groups):
            out[:, gi * cg:(gi + 1) * cg, r:r + stride * (ol - 1) + 1:stride] += np.einsum(
                "nol,oc->ncl", g[:, gi * og:(gi + 1) * og], wt[gi * og:(gi + 1) * og, :, i])
    return out[:, :, padding:padding + length]


def _conv1d_weight_grad_ref(a, g, kernel=2, stride=1, padding=0, dilation=1, groups=1):
    """The adjoint of _conv1d_ref in its weight."""
    c, (o, ol) = a.shape[1], g.shape[1:]
    cg, og = c // groups, o // groups
    ap = np.pad(a, [(0, 0), (0, 0), (padding, padding)])
    out = np.zeros((o, cg, kernel))
    for i in range(kernel):
        patch = ap[:, :, i * dilation:i * dilation + stride * (ol - 1) + 1:stride]
        for gi in range(groups):
            out[gi * og:(gi + 1) * og, :, i] = np.einsum(
                "nol,ncl->oc", g[:, gi * og:(gi + 1) * og], patch[:, gi * cg:(gi + 1) * cg])
    return out


def _conv1d_input_grad(g, wt, **p):
    """conv1d's input gradient built under create_graph (a Conv1dInputGrad node)."""
    n, _, ol = g.shape
    _, cg, k = wt.shape
    s, pad, d, groups = p["stride"], p["padding"], p["dilation"], p["groups"]
    length = (ol - 1) * s + d * (k - 1) + 1 - 2 * pad
    x = tn.zeros(n, cg * groups, length, dtype=g.dtype, device=g.device, requires_grad=True)
    with tn.enable_grad():
        y = tn.nn.functional.conv1d(x, wt, None, s, pad, d, groups)
        return tn.grad(y, x, g, create_graph=True)[0]


def _conv1d_weight_grad(x, g, kernel, **p):
    """conv1d's weight gradient built under create_graph (a Conv1dWeightGrad node)."""
    groups = p["groups"]
    wt = tn.zeros(g.shape[1], x.shape[1] // groups, kernel, dtype=x.dtype, device=x.device,
                  requires_grad=True)
    with tn.enable_grad():
        y = tn.nn.functional.conv1d(x, wt, None, p["stride"], p["padding"], p["dilation"], groups)
        return tn.grad(y, wt, g, create_graph=True)[0]


def _max_pool1d_ref(a, kernel_size, stride, padding=0, dilation=1):
    """max_pool1d in NumPy: -inf padding, the max over each offset's strided slice."""
    k, s, p, d = kernel_size, stride, padding, dilation
    ap = np.pad(a, [(0, 0), (0, 0), (p, p)], constant_values=-np.inf)
    ol = _out(a.shape[2], k, s, p, d)
    return np.max([ap[:, :, i * d:i * d + s * (ol - 1) + 1:s] for i in range(k)], axis=0)


def _pool1d_shapes(k, s, p, d) -> ShapeStrategy:
    low = max(1, d * (k - 1) + 1 - 2 * p)
    return lambda max_side: st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(
        low, low + min(max_side, 3) + 1)).map(lambda t: (t,))


_CONV1D_PARAMS = (
    ({"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, 3, True),
    ({"stride": 1, "padding": 2, "dilation": 2, "groups": 2}, 2, False),
)

OP_TABLE = OP_TABLE + (
    *(OpCase("conv1d", lambda x, w, b=None, **p: tn.nn.functional.conv1d(x, w, b, **p),
             _conv1d_ref, (REAL,) * (2 + bias),
             _conv1d_shapes(kernel, p["stride"], p["padding"], p["dilation"], p["groups"], bias),
             "convolution", params=p, f32_tol=_CONV_F32)
      for p, kernel, bias in _CONV1D_PARAMS),
    *(OpCase("conv1d_input_grad", _conv1d_input_grad, _conv1d_input_grad_ref, (REAL, REAL),
             _conv1d_shapes(kernel, p["stride"], p["padding"], p["dilation"], p["groups"],
                            role="input_grad"), "convolution", params=p, f32_tol=_CONV_F32)
      for p, kernel, _ in _CONV1D_PARAMS),
    *(OpCase("conv1d_weight_grad", _conv1d_weight_grad, _conv1d_weight_grad_ref, (REAL, REAL),
             _conv1d_shapes(kernel, p["stride"], p["padding"], p["dilation"], p["groups"],
                            role="weight_grad"), "convolution", params={"kernel": kernel, **p},
             f32_tol=_CONV_F32)
      for p, kernel, _ in _CONV1D_PARAMS),
    *(OpCase("max_pool1d", lambda x, **p: tn.nn.functional.max_pool1d(x, **p), _max_pool1d_ref,
             (POOL_DISTINCT,), _pool1d_shapes(p["kernel_size"], p["stride"], p["padding"],
                                         p["dilation"]), "max_pool", POOL_TIES, params=p)
      for p in ({"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1},
                {"kernel_size": 2, "stride": 1, "padding": 0, "dilation": 2})),
)
# --- end of convolution and pooling -------------------------------------------------------------

# --- normalisation (tinynet/ops/normalization.py) ---------------------------------------------
# References standardise with NumPy's own mean and var (ddof=0), per sample (layer norm) or per
# channel (batch norm); weight and bias are optional inputs, so each form has an entry.

NORM_DISTINCT = ("normalising divides by the group's standard deviation: pairwise distinct values "
                 "keep it away from 0 (where 1/sqrt(var + eps) and its derivatives blow up)")
NORM_EPS = 1e-5
NORM_VALUES = Domain(-2.0, 2.0, grid=1 / 64, unique=True)  # distinct, enough for 81 elements


def _norm_shapes(kind: str, affine: int, normalized_ndim: int = 1) -> ShapeStrategy:
    """x's shape and ``affine`` (0, 1 or 2) parameter shapes. ``"layer"``: x with at least
    ``normalized_ndim`` dims, the last one >= 2, parameters of the trailing dims. ``"batch"``:
    (N, C, *) with N >= 2, parameters (C,). ``"batch_stats"``: as batch, plus the given mean and
    var (C,) before the parameters."""
    def make(max_side):
        if kind == "layer":
            x = shapes(normalized_ndim, normalized_ndim + 2, max_side=max_side).map(
                lambda s: s[:-1] + (max(s[-1], 2),))
            return x.map(lambda s: (s,) + (s[len(s) - normalized_ndim:],) * affine)
        x = shapes(2, 4, max_side=max_side).map(lambda s: (max(s[0], 2),) + s[1:])
        stats = 2 if kind == "batch_stats" else 0
        return x.map(lambda s: (s,) + ((s[1],),) * (stats + affine))
    return make


def _layer_norm_ref(a, *affine, normalized_ndim=1, weight=True, eps=NORM_EPS):
    axes = tuple(range(a.ndim - normalized_ndim, a.ndim))
    y = (a - a.mean(axes, keepdims=True)) / np.sqrt(a.var(axes, keepdims=True) + eps)
    if affine and weight:
        y = y * affine[0]
    return y + affine[-1] if len(affine) == 2 or (affine and not weight) else y


def _layer_norm(x, *affine, normalized_ndim=1, weight=True, eps=NORM_EPS):
    w, b = (affine + (None, None))[:2] if weight else (None, *affine[:1])
    return tn.nn.functional.layer_norm(x, x.shape[x.ndim - normalized_ndim:], w, b, eps)


def _channels(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm_ref(a, *affine, eps=NORM_EPS):
    axes = (0,) + tuple(range(2, a.ndim))
    y = (a - a.mean(axes, keepdims=True)) / np.sqrt(a.var(axes, keepdims=True) + eps)
    return y * _channels(affine[0], a.ndim) + _channels(affine[1], a.ndim) if affine else y


def _batch_norm_eval_ref(a, m, v, *affine, eps=NORM_EPS):
    y = (a - _channels(m, a.ndim)) / np.sqrt(_channels(v, a.ndim) + eps)
    return y * _channels(affine[0], a.ndim) + _channels(affine[1], a.ndim) if affine else y


OP_TABLE = OP_TABLE + (
    OpCase("layer_norm", _layer_norm, _layer_norm_ref, (NORM_VALUES, REAL, REAL),
           _norm_shapes("layer", 2), "layer_norm", NORM_DISTINCT),
    OpCase("layer_norm_weight_only", _layer_norm, _layer_norm_ref, (NORM_VALUES, REAL),
           _norm_shapes("layer", 1), "layer_norm", NORM_DISTINCT),
    OpCase("layer_norm_bias_only", _layer_norm, _layer_norm_ref, (NORM_VALUES, REAL),
           _norm_shapes("layer", 1), "layer_norm", NORM_DISTINCT, params={"weight": False}),
    OpCase("layer_norm_two_dims", _layer_norm, _layer_norm_ref, (NORM_VALUES,),
           _norm_shapes("layer", 0, 2), "layer_norm", NORM_DISTINCT,
           params={"normalized_ndim": 2, "eps": 0.1}),
    OpCase("batch_norm_train", tn.ops.batch_norm_train, _batch_norm_ref, (NORM_VALUES, REAL, REAL),
           _norm_shapes("batch", 2), "batch_norm_train", NORM_DISTINCT),
    OpCase("batch_norm_train_no_affine", tn.ops.batch_norm_train, _batch_norm_ref, (NORM_VALUES,),
           _norm_shapes("batch", 0), "batch_norm_train", NORM_DISTINCT, params={"eps": 0.1}),
    OpCase("batch_norm_eval", tn.ops.batch_norm_eval, _batch_norm_eval_ref,
           (REAL, REAL, POSITIVE, REAL, REAL), _norm_shapes("batch_stats", 2), "batch_norm_eval",
           "the variance is a variance: positive (1/sqrt(var + eps) has a pole at -eps)"),
    OpCase("batch_norm_eval_no_affine", tn.ops.batch_norm_eval, _batch_norm_eval_ref,
           (REAL, REAL, POSITIVE), _norm_shapes("batch_stats", 0), "batch_norm_eval",
           "the variance is a variance: positive (1/sqrt(var + eps) has a pole at -eps)"),
)
# --- end of normalisation ---------------------------------------------------------------------

# --- gather, scatter, sort (tinynet/ops/gather_scatter.py, sorting.py) ------------------------
# Index tensors are fixed patterns computed from the drawn shapes (repeats included where the op
# allows them: their gradients must accumulate); the references use NumPy's take_along_axis,
# put_along_axis and add.at, not tinynet's index construction.


def _index_pattern(shape, size: int) -> np.ndarray:
    """Integers in [0, size) of ``shape``, repeating where ``size`` is small."""
    return (np.arange(math.prod(shape)).reshape(shape) * 7 + 3) % size


def _unique_along(shape, size: int) -> np.ndarray:
    """Indices of ``shape`` into a dim of ``size`` that never repeat along any dim no longer than
    ``size`` (each line counts up from its own start), so a scatter writes each position once."""
    grids = np.indices(shape)
    return grids.sum(axis=0) % size  # along dim: consecutive, so distinct (shape[dim] <= size)


def _leading(a, shape):
    """The leading block of ``a`` of ``shape`` (PyTorch uses only that part of a larger input)."""
    return a[tuple(slice(0, n) for n in shape)]


def _shorter(shape, dim: int) -> tuple:
    """``shape`` one shorter along ``dim`` (at least 1): scatter leaves a position unwritten."""
    return tuple(max(1, n - 1) if d == dim % len(shape) else n for d, n in enumerate(shape))


def _gather_taller(x):
    return tn.gather(x, 0, _idx(x, _index_pattern((4,) + x.shape[1:], x.shape[0])))


def _gather_taller_ref(a):
    return np.take_along_axis(a, _index_pattern((4,) + a.shape[1:], a.shape[0]), 0)


def _smaller_index(shape):
    return _index_pattern(_shorter(shape[:-1], 0)[:1] + shape[1:-1] + shape[-1:], shape[-1])


def _gather_smaller(x):
    return x.gather(-1, _idx(x, _smaller_index(x.shape)))


def _gather_smaller_ref(a):
    idx = _smaller_index(a.shape)
    return np.take_along_axis(_leading(a, idx.shape[:-1] + a.shape[-1:]), idx, -1)


def _take_flat(x):
    return tn.take_along_dim(x, _idx(x, _index_pattern((5,), x.numel())))


def _take_flat_ref(a):
    return a.reshape(-1)[_index_pattern((5,), a.size)]


def _take_broadcast(x):
    return tn.take_along_dim(x, _idx(x, _index_pattern((1, 3) + x.shape[2:], x.shape[1])), dim=1)


def _take_broadcast_ref(a):
    idx = _index_pattern((1, 3) + a.shape[2:], a.shape[1])
    return np.take_along_axis(a, np.broadcast_to(idx, a.shape[:1] + idx.shape[1:]), 1)


def _scatter(x, src):
    return tn.scatter(x, 0, _idx(x, _unique_along(_shorter(x.shape, 0), x.shape[0])), src)


def _scatter_ref(a, src):
    out = a.copy()
    idx = _unique_along(_shorter(a.shape, 0), a.shape[0])
    np.put_along_axis(out, idx, _leading(src, idx.shape), 0)
    return out


def _scatter_value(x):
    return x.scatter(-1, _idx(x, _unique_along(_shorter(x.shape, -1), x.shape[-1])),
                     value=0.5)


def _scatter_value_ref(a):
    out = a.copy()
    np.put_along_axis(out, _unique_along(_shorter(a.shape, -1), a.shape[-1]), 0.5, -1)
    return out


def _scatter_add(x, src):
    return tn.scatter_add(x, -1, _idx(x, _index_pattern(x.shape, x.shape[-1])), src)


def _scatter_add_ref(a, src):
    out = a.copy()
    idx = _index_pattern(a.shape, a.shape[-1])
    full = tuple(idx if d == a.ndim - 1 else np.indices(a.shape)[d] for d in range(a.ndim))
    np.add.at(out, full, src)
    return out


def _with_scalar(max_side):
    """A tensor and a 0-d tensor (masked_fill's value)."""
    return shapes(1, 3, max_side=max_side).map(lambda s: (s, ()))


def _matrix_pair(batch: int) -> ShapeStrategy:
    """``(B, n, m)`` and ``(B, m, p)`` shapes with ``batch`` leading dims (0: two matrices)."""
    def make(max_side):
        sides = st.integers(1, max_side)
        return st.tuples(st.lists(sides, min_size=batch, max_size=batch), sides, sides,
                         sides).map(lambda d: ((*d[0], d[1], d[2]), (*d[0], d[2], d[3])))
    return make


def _topk_count(n: int) -> int:
    return min(2, n)


ORDER_TIES = ("sorting is piecewise linear: where two values tie, the gradient jumps "
              "(which copy goes where); ties are tested with the indices (argsort entries)")

OP_TABLE = OP_TABLE + (
    _unary("gather_index_taller", _gather_taller, _gather_taller_ref, shape=same(min_dims=1),
           api="gather"),
    _unary("gather_index_smaller", _gather_smaller, _gather_smaller_ref, shape=same(min_dims=2),
           api="gather"),
    _unary("take_along_dim_flat", _take_flat, _take_flat_ref, api="take_along_dim"),
    _unary("take_along_dim_broadcast", _take_broadcast, _take_broadcast_ref,
           shape=same(min_dims=2), api="take_along_dim"),
    _unary("index_select", lambda x: tn.index_select(x, 0, _idx(x, _repeats(x.shape[0]))),
           lambda a: a[_repeats(a.shape[0])], shape=same(min_dims=1)),
    _unary("index_select_last_dim", lambda x: x.index_select(-1, _idx(x, [x.shape[-1] - 1, 0])),
           lambda a: a[..., [a.shape[-1] - 1, 0]], shape=same(min_dims=2), api="index_select"),
    _unary("masked_fill", lambda x: x.masked_fill(_mask(x, x.shape[1:]), 0.5),
           lambda a: np.where(_pattern(a.shape[1:]), 0.5, a), shape=same(min_dims=1)),
    OpCase("masked_fill_tensor_value", lambda x, v: tn.masked_fill(x, _mask(x), v),
           lambda a, v: np.where(_pattern(a.shape), v, a), (REAL, REAL), _with_scalar,
           "masked_fill"),
    OpCase("scatter", _scatter, _scatter_ref, (REAL, REAL), same(2, min_dims=1), "scatter"),
    _unary("scatter_value", _scatter_value, _scatter_value_ref, shape=same(min_dims=1),
           api="scatter"),
    OpCase("scatter_add", _scatter_add, _scatter_add_ref, (REAL, REAL), same(2, min_dims=1),
           "scatter_add"),
    _unary("sort_values", lambda x: tn.sort(x).values, lambda a: np.sort(a, -1), DISTINCT,
           ORDER_TIES, "sort", same(min_dims=1)),
    _unary("sort_descending_dim0", lambda x: x.sort(0, descending=True)[0],
           lambda a: np.flip(np.sort(a, 0), 0), DISTINCT, ORDER_TIES, "sort", same(min_dims=1)),
    _unary("topk_values", lambda x: tn.topk(x, _topk_count(x.shape[-1])).values,
           lambda a: np.flip(np.sort(a, -1), -1)[..., :_topk_count(a.shape[-1])], DISTINCT,
           ORDER_TIES, "topk", same(min_dims=1)),
    _unary("topk_smallest_dim0", lambda x: x.topk(1, dim=0, largest=False).values,
           lambda a: np.sort(a, 0)[:1], DISTINCT, ORDER_TIES, "topk", same(min_dims=1)),
    # PyTorch's other spellings (tinynet/ops/aliases.py)
    _unary("t", tn.t, lambda a: a.T, shape=same(max_dims=2)),
    OpCase("mm", tn.mm, np.matmul, (REAL, REAL), _matrix_pair(0), "mm"),
    OpCase("bmm", lambda a, b: a.bmm(b), np.matmul, (REAL, REAL), _matrix_pair(1), "bmm"),
    # The orders themselves: no gradient; a coarse grid makes ties common (stability).
    _unary("argsort_stable_ties", lambda x: tn.argsort(x), lambda a: np.argsort(a, -1,
                                                                                kind="stable"),
           COARSE, shape=same(min_dims=1), differentiable=False, api="argsort"),
    _unary("sort_indices_descending", lambda x: x.sort(dim=0, descending=True).indices,
           lambda a: np.argsort(-a, 0, kind="stable"), COARSE, shape=same(min_dims=1),
           differentiable=False, api="sort"),
    _unary("topk_indices", lambda x: x.topk(1).indices,
           lambda a: np.argsort(-a, -1, kind="stable")[..., :1], COARSE, shape=same(min_dims=1),
           differentiable=False, api="topk"),
)
# --- end of gather, scatter, sort --------------------------------------------------------------

# --- recurrent cell steps (tinynet/ops/rnn.py) --------------------------------------------------
# One time step each of the Elman (tanh, ReLU), LSTM and GRU cells, with and without the hidden
# bias. The references follow PyTorch's documented equations (gate orders i, f, g, o and r, z, n),
# written here in NumPy; the composed tinynet steps (tinynet/nn/rnn.py, *_cell_reference) are
# compared with the primitives in tests/test_rnn.py.


def _np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _elman_ref(xw, h, w, b=0.0, relu=False):
    pre = xw + h @ w + b
    return np.maximum(pre, 0.0) if relu else np.tanh(pre)


def _lstm_ref(xw, hc, w, b=0.0):
    H = w.shape[0]
    h, c = hc[:, :H], hc[:, H:]
    i, f, g, o = np.split(xw + h @ w + b, 4, axis=1)
    c = _np_sigmoid(f) * c + _np_sigmoid(i) * np.tanh(g)
    return np.concatenate([_np_sigmoid(o) * np.tanh(c), c], axis=1)


def _gru_ref(xw, h, w, b=0.0):
    x_r, x_z, x_n = np.split(xw, 3, axis=1)
    h_r, h_z, h_n = np.split(h @ w + b, 3, axis=1)
    r, z = _np_sigmoid(x_r + h_r), _np_sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def _steps(L: int, reverse: bool) -> range:
    return range(L - 1, -1, -1) if reverse else range(L)


def _lstm_sequence_ref(xw, h0, c0, w, reverse=False):
    """Every step of ``_lstm_ref`` in turn: (hs (L, B, H), c_last (B, H))."""
    H = w.shape[0]
    hc, hs = np.concatenate([h0, c0], axis=1), np.empty(xw.shape[:2] + (H,))
    for t in _steps(len(xw), reverse):
        hc = _lstm_ref(xw[t], hc, w)
        hs[t] = hc[:, :H]
    return hs, hc[:, H:]


def _gru_sequence_ref(xw, h, w, b=0.0, reverse=False):
    """Every step of ``_gru_ref`` in turn: hs (L, B, H)."""
    hs = np.empty(xw.shape[:2] + (w.shape[0],))
    for t in _steps(len(xw), reverse):
        h = hs[t] = _gru_ref(xw[t], h, w, b)
    return hs


def _elman_sequence_ref(xw, h, w, reverse=False):
    """Every step of ``_elman_ref`` (tanh) in turn: hs (L, B, H)."""
    hs = np.empty(xw.shape)
    for t in _steps(len(xw), reverse):
        h = hs[t] = _elman_ref(xw[t], h, w)
    return hs


def sequence_shapes(gates: int, n_states: int, bias: bool = False) -> ShapeStrategy:
    """xw (L, B, gates*H), the states (B, H) each, w_hh_t (H, gates*H) and b_hh (gates*H,)."""
    def make(max_side):
        def build(d):
            L, B, H = d
            G = gates * H
            return ((L, B, G),) + ((B, H),) * n_states + ((H, G),) + (((G,),) if bias else ())
        return st.tuples(*(st.integers(1, max_side) for _ in range(3))).map(build)
    return make


def cell_shapes(gates: int, bias: bool, state_width: int = 1) -> ShapeStrategy:
    """xw (B, gates*H), the state (B, state_width*H), w_hh_t (H, gates*H) and b_hh (gates*H,)."""
    def make(max_side):
        def build(d):
            B, H = d
            G = gates * H
            return ((B, G), (B, state_width * H), (H, G)) + (((G,),) if bias else ())
        return st.tuples(st.integers(1, max_side), st.integers(1, max_side)).map(build)
    return make


# relu's kink is at pre = xw + h @ w_hh_t + b_hh = 0: |xw| >= 0.5 while |h @ w_hh_t + b_hh| <=
# 3 * 0.25^2 + 0.1 < 0.3 (H <= 3) keeps |pre| >= 0.2, far from the kink for central differences.
RELU_CELL = (REAL.replace(avoid=(0.0,), margin=0.5), Domain(-0.25, 0.25), Domain(-0.25, 0.25),
             Domain(-0.1, 0.1))
RELU_CELL_WHY = ("relu's kink at pre-activation 0: |xw| >= 0.5 and small h, w_hh_t, b_hh keep "
                 "|pre| >= 0.2")

OP_TABLE = OP_TABLE + (
    *(OpCase(f"rnn_tanh_cell{suffix}", tn.ops.rnn_tanh_cell, _elman_ref, (REAL,) * n,
             cell_shapes(1, n == 4), "rnn_tanh_cell")
      for suffix, n in (("", 4), ("_no_bias", 3))),
    *(OpCase(f"rnn_relu_cell{suffix}", tn.ops.rnn_relu_cell,
             lambda *a: _elman_ref(*a, relu=True), RELU_CELL[:n], cell_shapes(1, n == 4),
             "rnn_relu_cell", RELU_CELL_WHY)
      for suffix, n in (("", 4), ("_no_bias", 3))),
    *(OpCase(f"lstm_cell_hc{suffix}", tn.ops.lstm_cell_hc, _lstm_ref, (REAL,) * n,
             cell_shapes(4, n == 4, 2), "lstm_cell_hc")
      for suffix, n in (("", 4), ("_no_bias", 3))),
    *(OpCase(f"gru_cell{suffix}", tn.ops.gru_cell, _gru_ref, (REAL,) * n,
             cell_shapes(3, n == 4), "gru_cell")
      for suffix, n in (("", 4), ("_no_bias", 3))),
    *(OpCase("lstm_sequence", tn.ops.lstm_sequence, _lstm_sequence_ref, (REAL,) * 4,
             sequence_shapes(4, 2), "lstm_sequence", params=params)
      for params in ({}, {"reverse": True})),
    *(OpCase(f"gru_sequence{suffix}", tn.ops.gru_sequence, _gru_sequence_ref, (REAL,) * n,
             sequence_shapes(3, 1, n == 4), "gru_sequence", params=params)
      for suffix, n in (("", 4), ("_no_bias", 3)) for params in ({}, {"reverse": True})),
    # tanh only: a ReLU sequence's kinks depend on every earlier step, no domain keeps clear of
    # them (the ReLU path is checked in tests/test_rnn.py on continuous random values)
    *(OpCase("rnn_sequence", tn.ops.rnn_sequence, _elman_sequence_ref, (REAL,) * 3,
             sequence_shapes(1, 1), "rnn_sequence", params=params)
      for params in ({}, {"reverse": True})),
)
# --- end of recurrent cell steps --------------------------------------------------------------

_ids = [case.id for case in OP_TABLE]
if len(set(_ids)) != len(_ids):
    raise RuntimeError(f"op table: duplicate ids {sorted({i for i in _ids if _ids.count(i) > 1})}")

__all__ = ["OP_TABLE", "OpCase", "recorded_ops"]
