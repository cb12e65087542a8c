"""Convolution and max-pooling primitives (NCHW, and NCL for 1-D), vectorised: no Python loop over
samples or pixels.

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
* ``Conv1dOp``, ``Conv1dInputGradOp``, ``Conv1dWeightGradOp``, ``MaxPool1dOp``: the same classes
  on (N, C, L) inputs. The plan of a 1-D geometry is the 2-D plan of the (N, C, 1, L) view
  (``im2col.conv1d_plan``), so the arrays and their kernels are shared, not copied; the 1-D
  classes exist so that graphs, traces and errors name a 1-D convolution as such.

Functional API: ``convolution`` and ``max_pool`` take normalised arguments (pairs or 1-tuples,
explicit per-side padding); ``tn.nn.functional.conv1d`` / ``conv2d`` / ``max_pool1d`` ... parse
PyTorch's.
"""

from __future__ import annotations

import functools

from ..autograd import Op
from ..tensor import Tensor
from .im2col import (
    conv1d_plan, conv_forward, conv_from_columns, conv_input_grad, conv_plan, conv_weight_grad,
    grad_columns, im2col, output_size,
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
        grad_b = () if len(needs) == 2 else \
            (g.sum(axis=(0,) + tuple(range(2, g.ndim))) if needs[2] else None,)
        if ctx.create_graph:  # the gradients as recorded primitives, differentiable again
            _, input_grad_op, weight_grad_op = _FAMILIES[plan.spatial]
            grad_x = input_grad_op.apply(g, w, plan=plan) if needs[0] else None
            grad_w = weight_grad_op.apply(x, g, plan=plan, w_shape=w.shape) \
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
            conv_op, _, weight_grad_op = _FAMILIES[plan.spatial]
            grad_g = conv_op.apply(gz, w, plan=plan) if need_g else None
            grad_w = weight_grad_op.apply(gz, g, plan=plan, w_shape=w.shape) \
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
            conv_op, input_grad_op, _ = _FAMILIES[plan.spatial]
            grad_x = input_grad_op.apply(g, gz, plan=plan) if need_x else None
            grad_g = conv_op.apply(x, gz, plan=plan) if need_g else None
            return grad_x, grad_g
        xp = ctx.xp
        grad_x = conv_input_grad(xp, grad_columns(xp, g, plan), gz, plan) if need_x else None
        grad_g = conv_forward(xp, x, gz, None, plan) if need_g else None
        return grad_x, grad_g


class Conv1dOp(Conv2dOp):
    """y = conv1d(x, w) + b  ->  grad_x = conv1d_input_grad(g, w), grad_w = conv1d_weight_grad(x, g),
    grad_b = g summed over (N, OL) (Conv2d's arrays on the (N, C, 1, L) view of the input)"""


class Conv1dInputGradOp(Conv2dInputGradOp):
    """z = conv1d_input_grad(g, w), the x-gradient of <conv1d(x, w), g>  ->
    grad_g = conv1d(gz, w), grad_w = conv1d_weight_grad(gz, g)"""


class Conv1dWeightGradOp(Conv2dWeightGradOp):
    """z = conv1d_weight_grad(x, g), the w-gradient of <conv1d(x, w), g>  ->
    grad_x = conv1d_input_grad(g, gz), grad_g = conv1d(x, gz)"""


# Each convolution's two gradients, by spatial rank: under create_graph a 1-D convolution's
# gradients are recorded as 1-D nodes (the plan says which rank it was made for).
_FAMILIES = {1: (Conv1dOp, Conv1dInputGradOp, Conv1dWeightGradOp),
             2: (Conv2dOp, Conv2dInputGradOp, Conv2dWeightGradOp)}


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


class MaxPool1dOp(MaxPool2dOp):
    """y = max over each window of (N, C, L) (padding is -inf)  ->  grad_x = g added at each
    window's argmax (ties: the first maximum; MaxPool2d's arrays on the (N, C, 1, L) view)"""

    @staticmethod
    def forward(ctx, x, *, plan=None):
        return MaxPool2dOp.forward(ctx, x[:, :, None, :], plan=plan)[:, :, 0]

    @staticmethod
    def backward(ctx, g):
        return MaxPool2dOp.backward(ctx, g[:, :, None, :])[:, :, 0]


# --- functional API (normalised arguments) ----------------------------------------------------


def _check_geometry(op: str, x: Tensor, kernel, stride, padding, dilation) -> tuple:
    """Checks one convolution or pooling geometry of ``len(kernel)`` spatial dims (1 or 2);
    returns the output size along each."""
    dims = len(kernel)
    if x.ndim != dims + 2:
        layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
        raise ValueError(f"{op}: expected a {dims + 2}-D input {layout}, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: kernel size {kernel}, stride {stride} and dilation {dilation} "
                         "must be positive")
    if min(p for pair in padding for p in pair) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    sizes = x.shape[2:]
    out = tuple(output_size(n, k, s, sum(p), d)
                for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation))
    if min(out) < 1:
        padded = " x ".join(str(n + sum(p)) for n, p in zip(sizes, padding))
        dilated = " x ".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} padded to ({padded}) is smaller "
                         f"than the dilated kernel ({dilated})")
    return out


def convolution(x, weight, bias=None, stride: tuple = (1, 1), padding: tuple = ((0, 0), (0, 0)),
                dilation: tuple = (1, 1), groups: int = 1) -> Tensor:
    """1-D or 2-D convolution (cross-correlation, as PyTorch's ``conv1d``/``conv2d``) with
    normalised arguments; the weight's rank says which.

    Args:
        x: ``(N, C_in, H, W)``, or ``(N, C_in, L)``.
        weight: ``(C_out, C_in / groups, kH, kW)``, or ``(C_out, C_in / groups, k)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: ``(sH, sW)``, ``(dH, dW)`` (or ``(s,)``, ``(d,)``).
        padding: zeros on each side, ``((top, bottom), (left, right))`` (or ``((left, right),)``).
        groups: input and output channels are split into ``groups`` independent convolutions.

    Returns:
        ``(N, C_out, OH, OW)``, ``OH = floor((H + top + bottom - dH (kH - 1) - 1) / sH) + 1``
        (``(N, C_out, OL)`` in 1-D).
    """
    x, weight = unary_operand(x), unary_operand(weight)
    if weight.ndim not in (3, 4):
        raise ValueError(f"conv2d: expected a 4-D weight (C_out, C_in/groups, kH, kW), got "
                         f"weight of shape {tuple(weight.shape)} for input of shape "
                         f"{tuple(x.shape)}")
    dims = weight.ndim - 2
    op = f"conv{dims}d"
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    if not len(stride) == len(padding) == len(dilation) == dims:
        raise ValueError(f"{op}: stride {stride}, padding {padding} and dilation {dilation} "
                         f"must have one entry per spatial dimension of weight of shape "
                         f"{tuple(weight.shape)}")
    _check_geometry(op, x, weight.shape[2:], stride, padding, dilation)
    c_out, c_in = weight.shape[0], x.shape[1]
    if groups < 1 or c_in % groups or c_out % groups or weight.shape[1] * groups != c_in:
        raise ValueError(
            f"{op}: input of shape {tuple(x.shape)} ({c_in} channels) and weight of shape "
            f"{tuple(weight.shape)} do not fit groups={groups}: need C_in = weight.shape[1] * "
            f"groups and C_out divisible by groups")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"{op}: input ({x.dtype}), weight ({weight.dtype}) and bias "
                        f"({None if bias is None else bias.dtype}) must have the same dtype")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} does not match weight of "
                         f"shape {tuple(weight.shape)}: expected ({c_out},)")
    if dims == 1:
        plan = conv1d_plan(tuple(x.shape), weight.shape[2], stride[0], padding[0], dilation[0],
                           groups)
    else:
        plan = conv_plan(tuple(x.shape), tuple(weight.shape[2:]), stride, padding, dilation,
                         groups)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return _FAMILIES[dims][0].apply(*tensors, plan=plan)


def max_pool(x, kernel_size: tuple, stride: tuple, padding: tuple = ((0, 0), (0, 0)),
             dilation: tuple = (1, 1), op: str | None = None) -> Tensor:
    """1-D or 2-D max pooling with normalised arguments; padding (per side) counts as -inf.

    Args:
        x: ``(N, C, H, W)``, or ``(N, C, L)`` with 1-tuples for the arguments below.
        kernel_size, stride, dilation: pairs (or 1-tuples).
        padding: ``((top, bottom), (left, right))`` (or ``((left, right),)``).
        op: the name errors give the caller (``max_pool2d``, ``max_pool1d`` by default).

    Returns:
        ``(N, C, OH, OW)`` (``(N, C, OL)``); the gradient goes to the first maximum of each window
        (row-major).
    """
    x = unary_operand(x)
    dims = len(kernel_size)
    op = op or f"max_pool{dims}d"
    _check_geometry(op, x, kernel_size, stride, padding, dilation)
    if dims == 1:  # the 2-D geometry of the (N, C, 1, L) view
        plan = conv_plan((*x.shape[:2], 1, x.shape[2]), (1, kernel_size[0]), (1, stride[0]),
                         ((0, 0), tuple(padding[0])), (1, dilation[0]))
        return MaxPool1dOp.apply(x, plan=plan)
    plan = conv_plan(tuple(x.shape), tuple(kernel_size), tuple(stride), tuple(padding),
                     tuple(dilation))
    return MaxPool2dOp.apply(x, plan=plan)
