"""Reductions: ``sum``, ``mean``, ``max``, ``min`` (primitives), ``var``, ``std`` (composed), and
``argmax``/``argmin`` (no gradient). ``logsumexp`` lives in ``stable.py``.

Ties in ``max``/``min``: every element equal to the extreme shares the gradient equally
(``g / count``), as PyTorch does for full reductions, so the gradient always sums to ``g``.
"""

from __future__ import annotations

import builtins
import math

from ..autograd import Function
from ..tensor import Tensor, unary_operand


def normalize_axes(axis, ndim: int):
    """``None`` -> None (all axes); an int or a sequence -> a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, checked cheaply
        return (axis % ndim,)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimension(s)")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    if ndim == 0:
        return None  # a 0-d tensor accepts axis 0 / -1, as in PyTorch: reduce over nothing
    return tuple(sorted(out))


def keepdims_shape(shape: tuple, axes) -> tuple:
    """The shape a reduction over ``axes`` has with keepdims=True."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _pick(axis, keepdims, dim, keepdim):
    """Accept PyTorch's ``dim``/``keepdim`` as aliases of NumPy's ``axis``/``keepdims``."""
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    return axis, keepdims


class Sum(Function):
    """sum(x, axes)  ->  grad_x = broadcast g back over the summed axes"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.broadcast_to(g.reshape(ctx.kd_shape), ctx.shape)


class Mean(Function):
    """sum(x, axes) / n  ->  grad_x = broadcast g / n back over the reduced axes"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape = x.shape
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        n = _count(x.shape, axis)
        ctx.scale = 1.0 / n if n else math.nan  # a Python float keeps x's dtype
        return x.sum(axis=axis, keepdims=keepdims) * ctx.scale

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.broadcast_to(g.reshape(ctx.kd_shape) * ctx.scale, ctx.shape)


class Max(Function):
    """max(x, axes)  ->  grad_x = g * [x == max] / count(x == max)   (ties share equally)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = axis
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        out = x.max(axis=axis, keepdims=keepdims)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        return _extreme_backward(ctx, g)


class Min(Function):
    """min(x, axes)  ->  grad_x = g * [x == min] / count(x == min)   (ties share equally)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = axis
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        out = x.min(axis=axis, keepdims=keepdims)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        return _extreme_backward(ctx, g)


def _extreme_backward(ctx, g):
    x, out = ctx.saved_tensors
    hit = x == out.reshape(ctx.kd_shape)
    count = hit.sum(axis=ctx.axis, keepdims=True).astype(g.dtype)
    return ctx.xp.where(hit, g.reshape(ctx.kd_shape) / count, 0)


class ArgMax(Function):
    """argmax(x, axis)  ->  no gradient (int64 indices)"""

    differentiable = False

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        out = x.argmax(axis=axis)
        if keepdims:
            out = out.reshape(keepdims_shape(x.shape, None if axis is None else (axis,)))
        return out.astype("int64")


class ArgMin(Function):
    """argmin(x, axis)  ->  no gradient (int64 indices)"""

    differentiable = False

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        out = x.argmin(axis=axis)
        if keepdims:
            out = out.reshape(keepdims_shape(x.shape, None if axis is None else (axis,)))
        return out.astype("int64")


# --- functional API -----------------------------------------------------------------------------


def sum(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:  # noqa: A001
    x = unary_operand(x)
    axis, keepdims = _pick(axis, keepdims, dim, keepdim)
    return Sum.apply(x, normalize_axes(axis, x.ndim), bool(keepdims))


def mean(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    x = unary_operand(x)
    axis, keepdims = _pick(axis, keepdims, dim, keepdim)
    if x.dtype.kind in "biu":
        raise TypeError(f"mean: needs a floating tensor, got {x.dtype}; convert with .float()")
    return Mean.apply(x, normalize_axes(axis, x.ndim), bool(keepdims))


def var(x, axis=None, keepdims: bool = False, correction: int = 1, *, dim=None,
        keepdim=None, unbiased=None) -> Tensor:
    """sum((x - mean)^2) / (n - correction); ``correction=1`` (unbiased) is PyTorch's default."""
    x = unary_operand(x)
    axis, keepdims = _pick(axis, keepdims, dim, keepdim)
    if unbiased is not None:
        correction = int(bool(unbiased))
    axes = normalize_axes(axis, x.ndim)
    centered = x - mean(x, axes, keepdims=True)
    n = _count(x.shape, axes)
    scale = 1.0 / (n - correction) if n > correction else math.nan  # too few samples: NaN
    return Sum.apply(centered * centered, axes, bool(keepdims)) * scale


def std(x, axis=None, keepdims: bool = False, correction: int = 1, *, dim=None,
        keepdim=None, unbiased=None) -> Tensor:
    """sqrt(var(x)); the gradient is infinite where the variance is 0."""
    from .elementwise import sqrt  # noqa: PLC0415

    return sqrt(var(x, axis, keepdims, correction, dim=dim, keepdim=keepdim, unbiased=unbiased))


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis`` (values only; use ``argmax`` for indices)."""
    x = unary_operand(x)
    return Max.apply(x, normalize_axes(axis, x.ndim), bool(keepdims))


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis`` (values only; use ``argmin`` for indices)."""
    x = unary_operand(x)
    return Min.apply(x, normalize_axes(axis, x.ndim), bool(keepdims))


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    x = unary_operand(x)
    axis = None if axis is None else normalize_axes(axis, x.ndim)[0]
    return ArgMax.apply(x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False) -> Tensor:
    x = unary_operand(x)
    axis = None if axis is None else normalize_axes(axis, x.ndim)[0]
    return ArgMin.apply(x, axis, keepdims)


def _count(shape, axes) -> int:
    if axes is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in axes)
