"""Indexing: ``x[index]`` (slices, integers, integer arrays, boolean masks) and its adjoint,
``index_add`` (scatter-add into zeros), and ``x[index] = value`` (recorded as ``SetItemOp``
when a gradient flows through it, else a write in place that bumps ``x``'s version).

``GetItemOp`` and ``IndexAddOp`` are each other's gradient, so indexing is differentiable to any
order. Repeated integer indices accumulate: ``x[[0, 0]].sum()`` gives ``x.grad[0] == 2``.
"""

from __future__ import annotations

from .. import backend
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
    """``x[index]`` (``Tensor.__getitem__``): NumPy's basic and advanced indexing. An integer
    index out of range raises IndexError: at once on the CPU (NumPy's error), at the next read of a
    value on a GPU, where CuPy would wrap it silently (``_check_bounds``)."""
    x = unary_operand(x)
    index = _raw_index(index, x.device, "getitem")
    if x.device.type != "cpu":
        _check_bounds(x, index)
    return GetItemOp.apply(x, index=index)


def _check_bounds(x: Tensor, index) -> None:
    """Check each integer-array part of ``index`` against the length of the axis it indexes
    (NumPy's rule: ``-n <= i < n``), by one kernel each whose failure raises at the next read of a
    value (backend/checks.py): no host sync per call."""
    parts = index if isinstance(index, tuple) else (index,)
    device = x.device
    if not any(isinstance(p, (list, device.array_type)) for p in parts):
        return  # basic indexing: ints and slices raise (ints) or clip (slices) by themselves
    consumed = sum(getattr(p, "ndim", 1) if getattr(p, "dtype", None) == bool else
                   0 if p is None or p is Ellipsis else 1 for p in parts)
    axis = 0
    for part in parts:
        if part is Ellipsis:
            axis += x.ndim - consumed
            continue
        if part is None:
            continue
        if isinstance(part, list):  # host data: checked on the host, for free
            part, where = backend.host_array(part), backend.Device("cpu")
        else:
            where = device
        kind = getattr(getattr(part, "dtype", None), "kind", None)
        if kind == "b":
            axis += part.ndim
            continue
        if kind in ("i", "u") and axis < x.ndim:
            n = x.shape[axis]
            backend.checks.index_range(where.xp, where, part, -n, n, ("getitem", axis, n),
                                       IndexError, _bounds_message(axis, n, where))
        axis += 1


def _bounds_message(axis: int, n: int, device):
    where = "" if device.type == "cpu" else (
        f"; checked on {device} and reported at the first read of a value after it")
    return lambda count, bad: (f"getitem: index {bad} is out of bounds for axis {axis} with size "
                               f"{n}{where}")


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
