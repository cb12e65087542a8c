"""Ops that change how data is held, not its values: ``cast`` (dtype), ``to_device``, ``clone``."""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, unary_operand


class Cast(Function):
    """x.astype(dtype)  ->  grad_x = g.astype(dtype of x)"""

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.src_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.src_dtype), None


class ToDevice(Function):
    """copy of x on another device  ->  grad_x = g copied back to x's device"""

    moves_device = True

    @staticmethod
    def forward(ctx, x, dst=None):
        ctx.src = ctx.device
        ctx.out_device = dst
        return backend.transfer(x, ctx.device, dst)

    @staticmethod
    def backward(ctx, g):
        if isinstance(g, Tensor):  # create_graph: the copy back is itself recorded
            return to_device(g, ctx.src), None
        return backend.transfer(g, ctx.out_device, ctx.src), None


class Clone(Function):
    """copy of x  ->  grad_x = g"""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def cast(x, dtype) -> Tensor:
    """``x`` as ``dtype``; differentiable between floating dtypes, a constant otherwise."""
    x = unary_operand(x)
    dtype = backend.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind not in "fc":
        x = x.detach()  # integers and bools carry no gradient
    return Cast.apply(x, dtype)


def to_device(x, device) -> Tensor:
    x = unary_operand(x)
    device = backend.Device(device)
    if x.device is device:
        return x
    return ToDevice.apply(x, device)


def clone(x) -> Tensor:
    return Clone.apply(unary_operand(x))
