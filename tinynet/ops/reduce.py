"""Reductions: ``sum``, ``mean``, ``var``/``std``, ``amax``/``amin`` (primitives), ``max``/``min``
(values and indices), and ``argmax``/``argmin`` (no gradient). ``logsumexp`` lives in ``stable.py``.

PyTorch's meanings: ``amax(x, dim)`` gives the values; ``max(x)`` the largest value and
``max(x, dim)`` the named tuple ``(values, indices)``; ``max(a, b)`` with a tensor ``b`` is
``maximum``. Every function takes ``dim``/``keepdim`` and NumPy's ``axis``/``keepdims`` as aliases.

Ties in ``amax``/``amin`` (and so in ``max``/``min``): every element equal to the extreme shares
the gradient equally (``g / count``), as PyTorch does for ``amax`` and full reductions, so the
gradient always sums to ``g``. (PyTorch's ``max(x, dim)`` sends it all to the returned index;
the two agree wherever the maximum is unique.) NaN propagates, so a NaN is the extreme of its
slice and gets the gradient, as in PyTorch's ``max()`` (its ``amax(x, dim)`` spreads NaN over
the slice instead).
"""

from __future__ import annotations

import builtins
import math
from typing import NamedTuple

from ..autograd import Op
from ..tensor import Tensor, tensor_method
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

    result_dtype = "sum"  # integers and bools accumulate in int64, as in PyTorch

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

    result_dtype = "float"

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
    """The mean over ``dim``; integer and bool tensors give float32 (PyTorch refuses them)."""
    x = unary_operand(x)
    dims = _dims("mean", x, dim, axis)
    return MeanOp.apply(x, dims=dims, keepdim=keepdim_alias("mean", keepdim, keepdims))


class SpreadReduction(Op):
    """Base of ``var`` and ``std``: the sum of squared deviations from the mean over ``dims``,
    divided by ``dof = max(n - correction, 0)`` (``root``: its square root)."""

    result_dtype = "float"
    root = False

    @staticmethod
    def forward(ctx, x, *, dims=None, keepdim=False, correction=1):
        xp = ctx.xp
        ctx.dims, ctx.kd_shape = dims, keepdim_shape(x.shape, dims)
        ctx.dof = builtins.max(_count(x.shape, dims) - correction, 0)
        centered = x - x.mean(axis=dims, keepdims=True)
        # dof = 0 (correction >= n): the sum divided by 0, inf (NaN for a constant), as PyTorch
        scale = 1.0 / ctx.dof if ctx.dof else math.inf
        out = (centered * centered).sum(axis=dims, keepdims=keepdim) * scale
        ctx.save_inputs(0)
        if ctx.fn.root:
            out = xp.sqrt(out)
            ctx.save_output()
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_inputs
        g = g.reshape(ctx.kd_shape)
        if ctx.fn.root:  # d sqrt(v) = dv / (2 sqrt(v)), taken as 0 where std is 0 (PyTorch's)
            out = ctx.saved_output.reshape(ctx.kd_shape)
            g = xp.where(out == 0, 0, g / (2 * out))
        centered = x - x.mean(axis=ctx.dims, keepdims=True)
        if ctx.dof:
            return g * centered * (2.0 / ctx.dof)
        return xp.where(centered == 0, g * math.nan, g * math.inf)  # 2 (x - mean) / 0: PyTorch's


class VarOp(SpreadReduction):
    """sum((x - mean)^2, dims) / dof  ->  grad_x = g * 2 (x - mean) / dof
    (dof = max(n - correction, 0); dof = 0: inf, NaN where x = mean, as PyTorch)"""


@tensor_method
def var(x, dim=None, keepdim: bool = False, correction: int = 1, *, axis=None, keepdims=None,
        unbiased=None) -> Tensor:
    """sum((x - mean)^2) / (n - correction); ``correction=1`` (unbiased) is PyTorch's default.
    ``correction >= n`` gives inf (NaN for a constant input), as PyTorch does."""
    return _spread(VarOp, "var", x, dim, keepdim, correction, axis, keepdims, unbiased)


class StdOp(SpreadReduction):
    """sqrt(var(x, dims))  ->  grad_x = g * (x - mean) / (dof * out)   (0 where out = 0, as
    PyTorch)"""

    root = True


@tensor_method
def std(x, dim=None, keepdim: bool = False, correction: int = 1, *, axis=None, keepdims=None,
        unbiased=None) -> Tensor:
    """sqrt(var(x)); the gradient is 0 where the input is constant (PyTorch's choice at the
    kink)."""
    return _spread(StdOp, "std", x, dim, keepdim, correction, axis, keepdims, unbiased)


def _spread(op, name, x, dim, keepdim, correction, axis, keepdims, unbiased) -> Tensor:
    x = unary_operand(x)
    dims = _dims(name, x, dim, axis)
    if unbiased is not None:
        correction = int(bool(unbiased))
    return op.apply(x, dims=dims, keepdim=keepdim_alias(name, keepdim, keepdims),
                    correction=correction)


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
        # NaN propagates, so a slice with a NaN has NaN as its extreme: its NaNs (x != x) share
        # the gradient, as PyTorch's max() gives it to the NaN
        hit = (x == ctx.saved_output.reshape(ctx.kd_shape)) | (x != x)
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
    result_dtype = "int64"
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
