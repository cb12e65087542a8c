"""Reductions: ``sum``, ``mean``, ``amax``/``amin`` (primitives), ``var``, ``std``, ``max``/``min``
(composed), and ``argmax``/``argmin`` (no gradient). ``logsumexp`` lives in ``stable.py``.

PyTorch's meanings: ``amax(x, dim)`` gives the values; ``max(x)`` the largest value and
``max(x, dim)`` the named tuple ``(values, indices)``; ``max(a, b)`` with a tensor ``b`` is
``maximum``. Every function takes ``dim``/``keepdim`` and NumPy's ``axis``/``keepdims`` as aliases.

Ties in ``amax``/``amin`` (and so in ``max``/``min``): every element equal to the extreme shares
the gradient equally (``g / count``), as PyTorch does for ``amax`` and full reductions, so the
gradient always sums to ``g``. (PyTorch's ``max(x, dim)`` sends it all to the returned index;
the two agree wherever the maximum is unique.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .elementwise import sqrt
from .operands import (
    dim_alias, keepdim_alias, keepdim_shape, normalize_dims, one_dim, unary_operand,
)
from .select import maximum, minimum

__all__ = ["amax", "amin", "argmax", "argmin", "max", "mean", "min", "std", "sum", "var"]


class ValuesIndices(NamedTuple):
    """What ``max(x, dim)`` and ``min(x, dim)`` return, as ``torch.return_types.max`` does."""

    values: Tensor
    indices: Tensor


def _dims(op: str, x: Tensor, dim, axis):
    return normalize_dims(dim_alias(op, dim, axis), x.ndim, op)


class SumOp(Op):
    """sum(x, dims)  ->  grad_x = broadcast g back over the summed dims"""

    @staticmethod
    def forward(ctx, x, *, dims=None, keepdim=False):
        ctx.shape = x.shape
        ctx.kd_shape = keepdim_shape(x.shape, dims)
        return x.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.broadcast_to(g.reshape(ctx.kd_shape), ctx.shape)


@tensor_method
def sum(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    """The sum over ``dim`` (an int, a tuple, or None for all dims)."""
    x = unary_operand(x)
    dims = _dims("sum", x, dim, axis)
    return SumOp.apply(x, dims=dims, keepdim=keepdim_alias("sum", keepdim, keepdims))


class MeanOp(Op):
    """sum(x, dims) / n  ->  grad_x = broadcast g / n back over the reduced dims"""

    @staticmethod
    def forward(ctx, x, *, dims=None, keepdim=False):
        ctx.shape = x.shape
        ctx.kd_shape = keepdim_shape(x.shape, dims)
        n = _count(x.shape, dims)
        ctx.scale = 1.0 / n if n else math.nan  # a Python float keeps x's dtype
        return x.sum(axis=dims, keepdims=keepdim) * ctx.scale

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.broadcast_to(g.reshape(ctx.kd_shape) * ctx.scale, ctx.shape)


@tensor_method
def mean(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The mean over ``dim`` (floating tensors only)."""
    x = unary_operand(x)
    if x.dtype.kind in "biu":
        raise TypeError(f"mean: needs a floating tensor, got {x.dtype}; convert with .float()")
    dims = _dims("mean", x, dim, axis)
    return MeanOp.apply(x, dims=dims, keepdim=keepdim_alias("mean", keepdim, keepdims))


@tensor_method
def var(x, dim=None, keepdim: bool = False, correction: int = 1, *, axis=None, keepdims=None,
        unbiased=None) -> Tensor:
    """sum((x - mean)^2) / (n - correction); ``correction=1`` (unbiased) is PyTorch's default."""
    x = unary_operand(x)
    dims = _dims("var", x, dim, axis)
    keepdim = keepdim_alias("var", keepdim, keepdims)
    if unbiased is not None:
        correction = int(bool(unbiased))
    centered = x - mean(x, dims, keepdim=True)
    n = _count(x.shape, dims)
    scale = 1.0 / (n - correction) if n > correction else math.nan  # too few samples: NaN
    return SumOp.apply(centered * centered, dims=dims, keepdim=keepdim) * scale


@tensor_method
def std(x, dim=None, keepdim: bool = False, correction: int = 1, *, axis=None, keepdims=None,
        unbiased=None) -> Tensor:
    """sqrt(var(x)); the gradient is infinite where the variance is 0."""
    return sqrt(var(x, dim, keepdim, correction, axis=axis, keepdims=keepdims,
                    unbiased=unbiased))


# --- the extremes: one base for amax and amin, one for argmax and argmin -------------------------


class ExtremeReduction(Op):
    """Base of ``amax`` and ``amin``: ``x.<method>(dims)``; the gradient is shared equally by
    every element equal to the extreme."""

    method = ""

    @staticmethod
    def forward(ctx, x, *, dims=None, keepdim=False):
        ctx.dims = dims
        ctx.kd_shape = keepdim_shape(x.shape, dims)
        ctx.save_inputs(0)
        ctx.save_output()
        return getattr(x, ctx.fn.method)(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        hit = x == ctx.saved_output.reshape(ctx.kd_shape)
        count = hit.sum(axis=ctx.dims, keepdims=True).astype(g.dtype)
        return ctx.xp.where(hit, g.reshape(ctx.kd_shape) / count, 0)


class AmaxOp(ExtremeReduction):
    """amax(x, dims)  ->  grad_x = g * [x == out] / count(x == out)   (ties share equally)"""

    method = "max"


@tensor_method
def amax(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The largest value over ``dim`` (an int, a tuple, or None for all dims): values only."""
    return _extreme(AmaxOp, "amax", x, dim, keepdim, axis, keepdims)


class AminOp(ExtremeReduction):
    """amin(x, dims)  ->  grad_x = g * [x == out] / count(x == out)   (ties share equally)"""

    method = "min"


@tensor_method
def amin(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The smallest value over ``dim`` (an int, a tuple, or None for all dims): values only."""
    return _extreme(AminOp, "amin", x, dim, keepdim, axis, keepdims)


def _extreme(op, name, x, dim, keepdim, axis, keepdims) -> Tensor:
    x = unary_operand(x)
    dims = _dims(name, x, dim, axis)
    return op.apply(x, dims=dims, keepdim=keepdim_alias(name, keepdim, keepdims))


class IndexOfExtreme(Op):
    """Base of ``argmax`` and ``argmin``: ``x.<method>(dim)`` as int64; no gradient."""

    differentiable = False
    method = ""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        out = getattr(x, ctx.fn.method)(axis=dim)
        if keepdim:
            out = out.reshape(keepdim_shape(x.shape, None if dim is None else (dim,)))
        return out.astype("int64")


class ArgmaxOp(IndexOfExtreme):
    """argmax(x, dim)  ->  no gradient (int64 indices)"""

    method = "argmax"


@tensor_method
def argmax(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The index of the largest value along ``dim`` (of the flattened tensor when None)."""
    return _index_of_extreme(ArgmaxOp, "argmax", x, dim, keepdim, axis, keepdims)


class ArgminOp(IndexOfExtreme):
    """argmin(x, dim)  ->  no gradient (int64 indices)"""

    method = "argmin"


@tensor_method
def argmin(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """The index of the smallest value along ``dim`` (of the flattened tensor when None)."""
    return _index_of_extreme(ArgminOp, "argmin", x, dim, keepdim, axis, keepdims)


def _index_of_extreme(op, name, x, dim, keepdim, axis, keepdims) -> Tensor:
    x = unary_operand(x)
    dim = dim_alias(name, dim, axis)
    dim = None if dim is None else one_dim(dim, x.ndim, name)
    return op.apply(x, dim=dim, keepdim=keepdim_alias(name, keepdim, keepdims))


@tensor_method
def max(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's ``max``: the largest value (a 0-d tensor) without ``dim``; with an int ``dim``,
    ``(values, indices)`` along it (:class:`ValuesIndices`); with a tensor, ``maximum(x, dim)``.

    Example:
        >>> values, indices = tn.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)   # [5, 7], [1, 0]
    """
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return _extreme_with_index(x, dim, keepdim, axis, keepdims, "max", amax, argmax)


@tensor_method
def min(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's ``min``: the smallest value without ``dim``; ``(values, indices)`` along an int
    ``dim``; ``minimum(x, dim)`` for a tensor ``dim``."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return _extreme_with_index(x, dim, keepdim, axis, keepdims, "min", amin, argmin)


def _extreme_with_index(x, dim, keepdim, axis, keepdims, name, values_fn, index_fn):
    x = unary_operand(x)
    dim = dim_alias(name, dim, axis)
    keepdim = keepdim_alias(name, keepdim, keepdims)
    if dim is None:
        return values_fn(x, keepdim=keepdim)
    if not isinstance(dim, int):
        raise TypeError(f"{name}: dim must be one int, got {dim!r}; a{name} reduces over "
                        f"several dims (values only)")
    return ValuesIndices(values_fn(x, dim, keepdim), index_fn(x, dim, keepdim))


def _count(shape, dims) -> int:
    if dims is None:
        return math.prod(shape)
    return math.prod(shape[d] for d in dims)
