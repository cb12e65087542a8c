"""Convolution and max-pooling primitives (NCHW), vectorised: no Python loop over samples or pixels.

* ``Conv2dOp``: im2col (``im2col.py``: one copy of the padded input), then ONE matrix product for
  the whole batch, all groups included.
* ``Conv2dInputGradOp`` and ``Conv2dWeightGradOp``: conv2d's two gradients as primitives of their
  own. A convolution is bilinear in (input, weight), so these three ops are each other's
  derivatives and conv2d is differentiable to any order (``create_graph=True``,
  ``tn.gradgradcheck``). A first-order backward runs the array kernels directly, sharing the
  gradient's columns between the two products; under ``ctx.create_graph`` it applies the
  primitives instead, so the gradient is recorded.
* ``MaxPool2dOp``: argmax over each window of a strided view; the gradient is scattered to the
  argmax positions (``index_add``, so overlapping windows accumulate).

Functional API: ``convolution`` and ``max_pool`` take normalised arguments (pairs, explicit
per-side padding); ``tn.nn.functional.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` parse PyTorch's.
"""

from __future__ import annotations

import functools

from ..autograd import Op
from ..tensor import Tensor
from .im2col import (
    conv_forward, conv_from_columns, conv_input_grad, conv_plan, conv_weight_grad, grad_columns,
    im2col, output_size,
)
from .operands import unary_operand

__all__: list = []  # nothing on tn itself: conv2d and max_pool2d are in tn.nn.functional

# --- the primitives ---------------------------------------------------------------------------


class Conv2dOp(Op):
    """y = conv(x, w) + b  ->  grad_x = conv_input_grad(g, w) (col2im of w^T g),
    grad_w = conv_weight_grad(x, g) (g @ im2col(x)^T), grad_b = g summed over (N, OH, OW)"""

    @staticmethod
    def forward(ctx, x, w, b=None, *, plan=None):
        xp = ctx.xp
        cols = im2col(xp, x, plan)
        ctx.save_inputs(0, 1)
        if ctx.needs_input_grad[1]:  # x's columns, for the weight gradient: one im2col less
            ctx.save_constant(cols)
        ctx.plan = plan
        return conv_from_columns(xp, cols, w, b, plan)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_inputs
        needs = ctx.needs_input_grad
        plan = ctx.plan
        grad_b = () if len(needs) == 2 else (g.sum(axis=(0, 2, 3)) if needs[2] else None,)
        if ctx.create_graph:  # the gradients as recorded primitives, differentiable again
            grad_x = Conv2dInputGradOp.apply(g, w, plan=plan) if needs[0] else None
            grad_w = Conv2dWeightGradOp.apply(x, g, plan=plan, w_shape=w.shape) \
                if needs[1] else None
            return (grad_x, grad_w, *grad_b)
        xp = ctx.xp
        g_cols = grad_columns(xp, g, plan)  # shared by both products
        grad_x = conv_input_grad(xp, g_cols, w, plan) if needs[0] else None
        grad_w = conv_weight_grad(xp, ctx.saved_constants[0], g_cols, w.shape) \
            if needs[1] else None
        return (grad_x, grad_w, *grad_b)


class Conv2dInputGradOp(Op):
    """z = conv_input_grad(g, w), the x-gradient of <conv(x, w), g>  ->
    grad_g = conv(gz, w), grad_w = conv_weight_grad(gz, g)"""

    @staticmethod
    def forward(ctx, g, w, *, plan=None):
        ctx.save_inputs(0, 1)
        ctx.plan = plan
        return conv_input_grad(ctx.xp, grad_columns(ctx.xp, g, plan), w, plan)

    @staticmethod
    def backward(ctx, gz):
        g, w = ctx.saved_inputs
        need_g, need_w = ctx.needs_input_grad
        plan = ctx.plan
        if ctx.create_graph:
            grad_g = Conv2dOp.apply(gz, w, plan=plan) if need_g else None
            grad_w = Conv2dWeightGradOp.apply(gz, g, plan=plan, w_shape=w.shape) \
                if need_w else None
            return grad_g, grad_w
        xp = ctx.xp
        cols = im2col(xp, gz, plan)
        grad_g = conv_from_columns(xp, cols, w, None, plan) if need_g else None
        grad_w = conv_weight_grad(xp, cols, grad_columns(xp, g, plan), w.shape) if need_w else None
        return grad_g, grad_w


class Conv2dWeightGradOp(Op):
    """z = conv_weight_grad(x, g), the w-gradient of <conv(x, w), g>  ->
    grad_x = conv_input_grad(g, gz), grad_g = conv(x, gz)"""

    @staticmethod
    def forward(ctx, x, g, *, plan=None, w_shape=None):
        ctx.save_inputs(0, 1)
        ctx.plan = plan
        xp = ctx.xp
        return conv_weight_grad(xp, im2col(xp, x, plan), grad_columns(xp, g, plan), w_shape)

    @staticmethod
    def backward(ctx, gz):
        x, g = ctx.saved_inputs
        need_x, need_g = ctx.needs_input_grad
        plan = ctx.plan
        if ctx.create_graph:
            grad_x = Conv2dInputGradOp.apply(g, gz, plan=plan) if need_x else None
            grad_g = Conv2dOp.apply(x, gz, plan=plan) if need_g else None
            return grad_x, grad_g
        xp = ctx.xp
        grad_x = conv_input_grad(xp, grad_columns(xp, g, plan), gz, plan) if need_x else None
        grad_g = conv_forward(xp, x, gz, None, plan) if need_g else None
        return grad_x, grad_g


class MaxPool2dOp(Op):
    """y = max over each window (padding is -inf)  ->  grad_x = g added at each window's argmax
    (ties: the first maximum in row-major window order, as PyTorch; a NaN is the maximum, the last
    one if several; overlapping windows add up)"""

    @staticmethod
    def forward(ctx, x, *, plan=None):
        xp = ctx.xp
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (dh, dw) = plan.kernel, plan.stride, plan.dilation
        oh, ow = plan.out_hw
        (top, bottom), (left, right) = plan.padding
        inner = (slice(None), slice(None), slice(top, top + h), slice(left, left + w))
        if top or bottom or left or right:
            buf = xp.full((n, c, h + top + bottom, w + left + right), -xp.inf, dtype=x.dtype)
            buf[inner] = x  # -inf padding never wins a window
        else:
            buf = x  # no padding: the windows are slices of the input itself
        hb, wb = buf.shape[2:]
        # One (N, C, OH, OW) strided slice per kernel offset, in row-major window order. A running
        # maximum over them, and the offset it came from (strictly greater: ties keep the first).
        slabs = [buf[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                 for i in range(kh) for j in range(kw)]
        out = slabs[0].copy()
        arg = xp.zeros(out.shape, dtype=xp.int8 if kh * kw < 128 else xp.int32)
        for k, slab in enumerate(slabs[1:], 1):
            # a NaN wins (slab != slab), as on PyTorch's CPU: the NaN it outputs gets the gradient
            greater = ((slab > out) | (slab != slab)).astype(arg.dtype)
            arg += greater * (k - arg)  # arg = k where greater: small-integer math beats where()
            xp.maximum(out, slab, out=out)  # NaN propagates, as in PyTorch
        ctx.save_constant(arg)
        ctx.geometry = (n, c, hb, wb, kh, kw, sh, sw, dh, dw)
        ctx.inner = inner if buf is not x else None
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (arg,) = ctx.saved_constants
        n, c, hb, wb, kh, kw, sh, sw, dh, dw = ctx.geometry
        # Flat index in the (padded) input of each window's winner: its corner plus the offset.
        offsets = _window_offsets(ctx.device.xp, wb, kh, kw, dh, dw)
        corners = _window_corners(ctx.device.xp, arg.shape, hb, wb, sh, sw)
        index = (corners + offsets[arg]).reshape(-1)
        if ctx.create_graph:  # the scatter as a differentiable op
            grad = xp.index_add((n * c * hb * wb,), index, g.reshape(-1)).reshape(n, c, hb, wb)
        else:
            grad = xp.zeros((n, c, hb, wb), dtype=g.dtype)
            if sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1:
                grad.reshape(-1)[index] = g.reshape(-1)  # windows do not overlap: no repeats
            else:
                xp.scatter_add(grad.reshape(-1), index, g.reshape(-1))
        return grad if ctx.inner is None else grad[ctx.inner]


@functools.lru_cache(maxsize=32)
def _window_offsets(xp, wb: int, kh: int, kw: int, dh: int, dw: int):
    """Flat offset of each kernel position (row-major) from its window's corner, row pitch wb."""
    return xp.asarray([i * dh * wb + j * dw for i in range(kh) for j in range(kw)])


@functools.lru_cache(maxsize=32)
def _window_corners(xp, out_shape: tuple, hb: int, wb: int, sh: int, sw: int):
    """Flat index of every window's top-left corner in an (N, C, Hb, Wb) array: depends only on
    the geometry, so it is made once per shape (the pooling layers of a model repeat it)."""
    n, c, oh, ow = out_shape
    return (xp.arange(n * c).reshape(n, c, 1, 1) * (hb * wb)
            + xp.arange(oh).reshape(oh, 1) * (sh * wb) + xp.arange(ow) * sw)


# --- functional API (normalised arguments) ----------------------------------------------------


def _check_geometry(op: str, x: Tensor, kernel, stride, padding, dilation) -> tuple:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: kernel size {kernel}, stride {stride} and dilation {dilation} "
                         "must be positive")
    if min(p for pair in padding for p in pair) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    h, w = x.shape[2:]
    oh = output_size(h, kernel[0], stride[0], sum(padding[0]), dilation[0])
    ow = output_size(w, kernel[1], stride[1], sum(padding[1]), dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: input of shape {tuple(x.shape)} padded to ({h + sum(padding[0])} x "
            f"{w + sum(padding[1])}) is smaller than the dilated kernel "
            f"({dilation[0] * (kernel[0] - 1) + 1} x {dilation[1] * (kernel[1] - 1) + 1})")
    return oh, ow


def convolution(x, weight, bias=None, stride: tuple = (1, 1), padding: tuple = ((0, 0), (0, 0)),
                dilation: tuple = (1, 1), groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) with normalised arguments.

    Args:
        x: ``(N, C_in, H, W)``.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: ``(sH, sW)``, ``(dH, dW)``.
        padding: zeros on each side, ``((top, bottom), (left, right))``.
        groups: input and output channels are split into ``groups`` independent convolutions.

    Returns:
        ``(N, C_out, OH, OW)``, ``OH = floor((H + top + bottom - dH (kH - 1) - 1) / sH) + 1``.
    """
    x, weight = unary_operand(x), unary_operand(weight)
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (C_out, C_in/groups, kH, kW), got "
                         f"weight of shape {tuple(weight.shape)} for input of shape "
                         f"{tuple(x.shape)}")
    _check_geometry("conv2d", x, weight.shape[2:], stride, padding, dilation)
    c_out, c_in = weight.shape[0], x.shape[1]
    if groups < 1 or c_in % groups or c_out % groups or weight.shape[1] * groups != c_in:
        raise ValueError(
            f"conv2d: input of shape {tuple(x.shape)} ({c_in} channels) and weight of shape "
            f"{tuple(weight.shape)} do not fit groups={groups}: need C_in = weight.shape[1] * "
            f"groups and C_out divisible by groups")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"conv2d: input ({x.dtype}), weight ({weight.dtype}) and bias "
                        f"({None if bias is None else bias.dtype}) must have the same dtype")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"conv2d: bias of shape {tuple(bias.shape)} does not match weight of "
                         f"shape {tuple(weight.shape)}: expected ({c_out},)")
    plan = conv_plan(tuple(x.shape), tuple(weight.shape[2:]), tuple(stride), tuple(padding),
                     tuple(dilation), groups)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return Conv2dOp.apply(*tensors, plan=plan)


def max_pool(x, kernel_size: tuple, stride: tuple, padding: tuple = ((0, 0), (0, 0)),
             dilation: tuple = (1, 1)) -> Tensor:
    """2-D max pooling with normalised arguments; padding (per side) counts as -inf.

    Args:
        x: ``(N, C, H, W)``.
        kernel_size, stride, dilation: pairs.
        padding: ``((top, bottom), (left, right))``.

    Returns:
        ``(N, C, OH, OW)``; the gradient goes to the first maximum of each window (row-major).
    """
    x = unary_operand(x)
    _check_geometry("max_pool2d", x, kernel_size, stride, padding, dilation)
    plan = conv_plan(tuple(x.shape), tuple(kernel_size), tuple(stride), tuple(padding),
                     tuple(dilation))
    return MaxPool2dOp.apply(x, plan=plan)
