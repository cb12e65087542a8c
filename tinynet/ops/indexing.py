"""Indexing: ``x[index]`` (slices, integers, integer arrays, boolean masks) and its adjoint,
``index_add`` (scatter-add into zeros), and ``x[index] = value`` (recorded as ``SetItemOp``
when a gradient flows through it, else a write in place that bumps ``x``'s version).

``GetItemOp`` and ``IndexAddOp`` are each other's gradient, so indexing is differentiable to any
order. Repeated integer indices accumulate: ``x[[0, 0]].sum()`` gives ``x.grad[0] == 2``.
"""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor, rebind, write_is_recorded
from .namespace import tensor_namespace
from .operands import unary_operand

__all__ = ["index_add"]


def _raw_index(index, device, op: str):
    """Tensors inside an index become arrays of the same device (transfers stay explicit)."""
    if isinstance(index, Tensor):
        if index.device is not device:
            raise RuntimeError(f"{op}: index tensor on {index.device}, indexed tensor on {device}")
        if index.dtype.kind not in "biu":
            raise IndexError(f"{op}: tensors used as indices must be integer or bool, got "
                             f"{index.dtype}")
        return index.data
    if isinstance(index, tuple):
        return tuple(_raw_index(i, device, op) for i in index)
    return index


class GetItemOp(Op):
    """x[index]  ->  grad_x = zeros like x, with g added at index (repeats accumulate)"""

    views_input = True  # basic indexing (ints, slices) gives a view, advanced indexing a copy

    @staticmethod
    def forward(ctx, x, *, index=None):
        ctx.shape = x.shape
        ctx.index = index
        return x[index]

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.index_add(ctx.shape, ctx.index, g)


def getitem(x, index) -> Tensor:
    """``x[index]`` (``Tensor.__getitem__``): NumPy's basic and advanced indexing."""
    x = unary_operand(x)
    return GetItemOp.apply(x, index=_raw_index(index, x.device, "getitem"))


class IndexAddOp(Op):
    """zeros(shape) with values added at index  ->  grad_values = g[index]"""

    @staticmethod
    def forward(ctx, values, *, shape=None, index=None):
        ctx.index = index
        return ctx.xp.index_add(shape, index, values)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.index]


def index_add(values, shape, index) -> Tensor:
    """A tensor of zeros of ``shape`` with ``values`` added at ``index`` (differentiable)."""
    values = unary_operand(values)
    return IndexAddOp.apply(values, shape=tuple(shape),
                            index=_raw_index(index, values.device, "index_add"))


@tensor_namespace.register(name="index_add")
def _index_add_xp(shape, index, values):
    """``xp.index_add(shape, index, values)``, the array namespace's argument order."""
    return index_add(values, shape, index)


class SetItemOp(Op):
    """x with x[index] = v  ->  grad_x = g with g[index] = 0,  grad_v = g[index] (summed to v's
    shape; PyTorch's CopySlices)"""

    @staticmethod
    def forward(ctx, x, v, *, index=None):
        ctx.index = index
        if ctx.needs_input_grad[1]:
            ctx.v_shape, ctx.v_dtype = v.shape, v.dtype
        out = x.copy()  # recorded out of place: x's memory (saved elsewhere, viewed) is kept
        out[index] = v
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, need_v = ctx.needs_input_grad
        grad_x = grad_v = None
        if need_x:
            keep = ctx.device.xp.ones(g.shape, dtype=bool)  # a constant of the derivative
            keep[ctx.index] = False
            grad_x = ctx.xp.where(keep, g, 0)
        if need_v:
            grad_v = g[ctx.index]
            extra = len(ctx.v_shape) - grad_v.ndim  # v may have leading 1s the target lacks
            if extra > 0:
                grad_v = grad_v.reshape((1,) * extra + tuple(grad_v.shape))
            if grad_v.dtype != ctx.v_dtype:  # v was cast on assignment: cast its gradient back
                grad_v = grad_v.astype(ctx.v_dtype)
        return grad_x, grad_v


def setitem(x: Tensor, index, value) -> None:
    """``x[index] = value`` (``Tensor.__setitem__``).

    When the write must be recorded (grad mode is on, and ``x`` or ``value`` requires grad) it
    is, as PyTorch's CopySlices: ``x`` becomes the output of :class:`SetItemOp` (gradient to
    ``value``: ``g[index]``; to the old ``x``: ``g`` with ``index`` zeroed), computed out of
    place, so memory ``x`` shared (a view, a ``detach()``, values an op saved) is not written.
    Otherwise the value is written into ``x``'s memory and ``x``'s version goes up by one. A leaf
    that requires grad may only be assigned to under ``no_grad``.
    """
    index = _raw_index(index, x.device, "setitem")
    if isinstance(value, Tensor) and value.device is not x.device:
        raise RuntimeError(f"setitem: value on {value.device}, tensor on {x.device}")
    if write_is_recorded(x, value, "setitem"):
        if x.dtype.kind != "f":
            raise TypeError(f"setitem: a value that requires grad can't be assigned into a "
                            f"{x.dtype} tensor (a gradient needs a floating-point tensor); "
                            "convert it first, e.g. x = x.float()")
        rebind(x, SetItemOp.apply(x, value, index=index), "setitem")
        return
    x.data[index] = value.data if isinstance(value, Tensor) else value
    x._bump_version()
