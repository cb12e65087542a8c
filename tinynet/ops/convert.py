"""Ops that change how data is held, not its values: ``cast`` (dtype), ``to_device``, ``clone``."""

from __future__ import annotations

from .. import backend
from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .operands import unary_operand

__all__ = ["cast", "clone"]


class CastOp(Op):
    """x.astype(dtype)  ->  grad_x = g.astype(dtype of x)"""

    @staticmethod
    def forward(ctx, x, *, dtype=None):
        ctx.src_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.src_dtype)


@tensor_method("astype")
def cast(x, dtype) -> Tensor:
    """``x`` as ``dtype`` (``x.astype(dtype)``, ``x.to(dtype)``); differentiable between floating
    dtypes, a constant otherwise."""
    x = unary_operand(x)
    dtype = backend.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind not in "fc":
        x = x.detach()  # integers and bools carry no gradient
    return CastOp.apply(x, dtype=dtype)


class ToDeviceOp(Op):
    """copy of x on another device  ->  grad_x = g copied back to x's device"""

    moves_device = True  # the output lives on ctx.out_device

    @staticmethod
    def forward(ctx, x, *, device=None):
        ctx.out_device = device
        return backend.transfer(x, ctx.device, device)

    @staticmethod
    def backward(ctx, g):
        if ctx.create_graph:  # the copy back is itself recorded
            return to_device(g, ctx.device)
        return backend.transfer(g, ctx.out_device, ctx.device)


def to_device(x, device) -> Tensor:
    """``x`` on ``device`` (``Tensor.to(device)``); gradients flow back to ``x``'s device."""
    x = unary_operand(x)
    device = backend.Device(device)
    if x.device is device:
        return x
    return ToDeviceOp.apply(x, device=device)


class CloneOp(Op):
    """copy of x  ->  grad_x = g"""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


@tensor_method
def clone(x) -> Tensor:
    """A copy of ``x`` with its own memory, still in the graph."""
    return CloneOp.apply(unary_operand(x))
