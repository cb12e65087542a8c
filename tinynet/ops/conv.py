"""Convolution and max-pooling primitives (NCHW), vectorised: no Python loop over samples or pixels.

* ``Conv2d``: im2col through a strided view of the zero-padded input (one copy), then ONE matrix
  product for the whole batch, all groups included (a leading group axis of ``matmul``).
* ``Conv2dInputGrad`` and ``Conv2dWeightGrad``: conv2d's two gradients as primitives of their own.
  A convolution is bilinear in (input, weight), so these three ops are each other's derivatives and
  conv2d is differentiable to any order (``create_graph=True``, ``tn.gradgradcheck``).
* ``MaxPool2d``: argmax over each window of a strided view; the gradient is scattered to the argmax
  positions (``index_add``, so overlapping windows accumulate).

The layout. The input is copied once into a zero buffer of shape (N, C, Hb, Wb) holding the padding.
Its row pitch is Wb = W + max(left, right): a row's right padding doubles as the next row's left
padding. Columns are (G, C/G * kH * kW, N * OH * OWe): one row per (channel, kernel offset), one
column per output pixel. When the output rows can be laid out on the buffer's row pitch (equal
strides along H and W, at most 50% extra columns), OWe > OW "wrap-around" columns are computed and
dropped: the columns of one output row then continue straight into the next, so the im2col copy
and the col2im adds run over long contiguous stretches instead of rows of OW elements (col2im is
about 3x faster at 16x16). The extra columns read finite numbers and receive zero gradient.

Aliasing. The buffer keeps enough spare zero rows that no window reaches into the next channel's
plane, and the only addresses that two different window elements of one col2im add can share are
padding (whose gradient is dropped) or extra columns (whose gradient is zero): an input pixel is
never written twice by one vectorised add. This matters on the GPU, where aliased ``+=`` in one
kernel loses updates.

Functional API: ``convolution`` and ``max_pool`` take normalised arguments (pairs, explicit
per-side padding); ``tn.nn.functional.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` parse PyTorch's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from ..autograd import Function
from ..tensor import Tensor, unary_operand

_MAX_EXTRA_COLUMNS = 1.5  # use wrap-around columns only while OWe <= 1.5 * OW


@dataclass(frozen=True)
class ConvPlan:
    """Shapes and strides of one convolution (or pooling) geometry; built by :func:`conv_plan`."""

    in_shape: tuple  # (N, C, H, W)
    kernel: tuple  # (kH, kW)
    stride: tuple  # (sH, sW)
    padding: tuple  # ((top, bottom), (left, right))
    dilation: tuple  # (dH, dW)
    groups: int
    out_hw: tuple  # (OH, OW)
    buffer_hw: tuple  # (Hb, Wb): padded input plus spare zero rows/columns
    out_we: int  # OWe: columns computed per output row (OW, or more with wrap-around)

    @property
    def buffer_shape(self) -> tuple:
        return self.in_shape[:2] + self.buffer_hw

    @property
    def inner(self) -> tuple:
        """Where the input sits inside the buffer: (slice(None), slice(None), rows, cols)."""
        (top, _), (left, _) = self.padding
        h, w = self.in_shape[2:]
        return (slice(None), slice(None), slice(top, top + h), slice(left, left + w))

    @property
    def n_columns(self) -> int:
        return self.in_shape[0] * self.out_hw[0] * self.out_we

    def window_strides(self, itemsize: int) -> tuple:
        """Byte strides of the (G, C/G, kH, kW, N, OH, OWe) window view of the buffer."""
        c = self.in_shape[1]
        hb, wb = self.buffer_hw
        plane, row = hb * wb * itemsize, wb * itemsize
        (dh, dw), (sh, sw) = self.dilation, self.stride
        return (c // self.groups * plane, plane, dh * row, dw * itemsize, c * plane, sh * row,
                sw * itemsize)

    @property
    def window_shape(self) -> tuple:
        n, c = self.in_shape[:2]
        g = self.groups
        return (g, c // g) + self.kernel + (n, self.out_hw[0], self.out_we)


def output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Output length along one axis: floor((size + pad - dilation (kernel - 1) - 1) / stride) + 1,
    with ``pad`` the total padding of both sides."""
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


@functools.lru_cache(maxsize=512)
def conv_plan(in_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
              groups: int = 1) -> ConvPlan:
    """The layout of one convolution geometry (cached: a training loop repeats a few geometries)."""
    h, w = in_shape[2:]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    (top, bottom), (left, right) = padding
    hp = h + top + bottom
    oh, ow = output_size(h, kh, sh, top + bottom, dh), output_size(w, kw, sw, left + right, dw)
    # Row pitch: a row's right padding doubles as the next row's left padding, so the pitch is
    # w + max(left, right), not w + left + right (padding columns alias only each other).
    wb, owe = w + max(left, right), ow
    if sh == sw:
        # Wrap-around columns: a pitch that is a multiple of the stride lets output row r + 1
        # start exactly where row r's extended columns end (owe * sw == sh * wb).
        wide = -(-max(wb, sw * ow) // sw) * sw
        if wide // sw <= _MAX_EXTRA_COLUMNS * ow:
            wb, owe = wide, wide // sw
    # Rows: enough that the last window of a plane (extra columns included) stays in the plane.
    last = (kh - 1) * dh * wb + (kw - 1) * dw + (oh - 1) * sh * wb + (owe - 1) * sw
    hb = max(hp, last // wb + 1)
    return ConvPlan(tuple(in_shape), (kh, kw), (sh, sw), padding, (dh, dw), groups, (oh, ow),
                    (hb, wb), owe)


# --- array kernels (raw backend arrays; ``xp`` is the device's namespace) ---------------------


def _windows(xp, buf, plan: ConvPlan):
    """The (G, C/G, kH, kW, N, OH, OWe) view of every window of ``buf``: no copy."""
    return xp.lib.stride_tricks.as_strided(buf, plan.window_shape,
                                           plan.window_strides(buf.itemsize))


def im2col(xp, x, plan: ConvPlan):
    """Input (N, C, H, W) -> columns (G, C/G * kH * kW, N * OH * OWe): pad once, copy once."""
    buf = xp.zeros(plan.buffer_shape, dtype=x.dtype)
    buf[plan.inner] = x
    g, cg = plan.window_shape[:2]
    return _windows(xp, buf, plan).reshape(g, cg * math.prod(plan.kernel), plan.n_columns)


def col2im(xp, cols, plan: ConvPlan):
    """The adjoint of :func:`im2col`: columns -> (N, C, H, W), summing overlapping windows.

    One vectorised add per kernel offset (kH * kW of them) of a whole (G, C/G, N, OH, OWe) slab.
    """
    buf = xp.zeros(plan.buffer_shape, dtype=cols.dtype)
    flat = buf.reshape(-1)
    shape = plan.window_shape
    cols = cols.reshape(shape)  # (G, C/G, kH, kW, N, OH, OWe)
    strides = plan.window_strides(buf.itemsize)
    slab_strides = strides[:2] + strides[4:]
    wb = plan.buffer_hw[1]
    (dh, dw), (kh, kw) = plan.dilation, plan.kernel
    for i in range(kh):
        for j in range(kw):
            target = xp.lib.stride_tricks.as_strided(flat[i * dh * wb + j * dw:],
                                                     shape[:2] + shape[4:], slab_strides)
            target += cols[:, :, i, j]
    return buf[plan.inner]


def _matmul(xp, a, b):
    """``a @ b`` over a leading group axis. A contraction of length 1 (one output channel per
    group: depthwise convolutions, average pooling) is an outer product, which NumPy's matmul
    runs without BLAS several times slower than a broadcast multiply."""
    if a.shape[-1] == 1:
        return a * b
    return xp.matmul(a, b)


def grad_columns(xp, g, plan: ConvPlan):
    """Output gradient (N, O, OH, OW) -> columns (G, O/G, N * OH * OWe), zero on extra columns."""
    n, o, oh, ow = g.shape
    gt = xp.swapaxes(g, 0, 1)  # (O, N, OH, OW)
    if plan.out_we != ow:
        padded = xp.zeros((o, n, oh, plan.out_we), dtype=g.dtype)
        padded[..., :ow] = gt
        gt = padded
    return gt.reshape(plan.groups, o // plan.groups, plan.n_columns)


def _conv_from_columns(xp, cols, w, b, plan: ConvPlan):
    """columns (G, K, N*OH*OWe), weight (O, C/G, kH, kW) -> output (N, O, OH, OW), bias added."""
    o = w.shape[0]
    n = plan.in_shape[0]
    (oh, ow), g = plan.out_hw, plan.groups
    out = _matmul(xp, w.reshape(g, o // g, -1), cols)  # (G, O/G, N*OH*OWe): the one product
    out = xp.swapaxes(out.reshape(o, n, oh, plan.out_we)[..., :ow], 0, 1)  # (N, O, OH, OW) view
    result = xp.empty((n, o, oh, ow), dtype=out.dtype)
    if b is None:
        result[...] = out
    else:
        xp.add(out, b.reshape(o, 1, 1), out=result)
    return result


def conv_forward(xp, x, w, b, plan: ConvPlan):
    return _conv_from_columns(xp, im2col(xp, x, plan), w, b, plan)


def conv_input_grad(xp, g_cols, w, plan: ConvPlan):
    """d<conv(x, w), g>/dx from g's columns: w^T (G, K, O/G) @ g (G, O/G, NL), then col2im."""
    o = w.shape[0]
    w3 = w.reshape(plan.groups, o // plan.groups, -1)  # (G, O/G, K)
    return col2im(xp, _matmul(xp, xp.swapaxes(w3, 1, 2), g_cols), plan)


def conv_weight_grad(xp, cols, g_cols, w_shape: tuple):
    """d<conv(x, w), g>/dw from x's and g's columns: g (G, O/G, NL) @ cols^T (G, NL, K)."""
    return _matmul(xp, g_cols, xp.swapaxes(cols, 1, 2)).reshape(w_shape)  # (G, O/G, K)


# --- the primitives ---------------------------------------------------------------------------


def _tensor(a, device) -> Tensor:
    return a if isinstance(a, Tensor) else Tensor._make(a, device)


class Conv2d(Function):
    """y = conv(x, w) + b  ->  grad_x = conv_input_grad(g, w) (col2im of w^T g),
    grad_w = conv_weight_grad(x, g) (g @ im2col(x)^T), grad_b = g summed over (N, OH, OW)"""

    @staticmethod
    def forward(ctx, x, w, b=None, plan=None):
        xp = ctx.xp
        cols = im2col(xp, x, plan)
        # x's columns are kept for the weight gradient: memory for one im2col less in backward.
        ctx.save_for_backward(x, w, cols if ctx.needs_input_grad[1] else None)
        ctx.plan = plan
        return _conv_from_columns(xp, cols, w, b, plan)

    @staticmethod
    def backward(ctx, g):
        x, w, cols = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        plan = ctx.plan
        grad_b = g.sum(axis=(0, 2, 3)) if ctx.needs_input_grad[2] else None
        if isinstance(g, Tensor):  # create_graph: build the gradients from recorded primitives
            dev = g.device
            grad_x = Conv2dInputGrad.apply(g, _tensor(w, dev), plan=plan) if need_x else None
            grad_w = Conv2dWeightGrad.apply(_tensor(x, dev), g, plan=plan, w_shape=w.shape) \
                if need_w else None
            return grad_x, grad_w, grad_b
        xp = ctx.xp
        g_cols = grad_columns(xp, g, plan)
        grad_x = conv_input_grad(xp, g_cols, w, plan) if need_x else None
        grad_w = conv_weight_grad(xp, cols, g_cols, w.shape) if need_w else None
        return grad_x, grad_w, grad_b


class Conv2dInputGrad(Function):
    """z = conv_input_grad(g, w), the x-gradient of <conv(x, w), g>  ->
    grad_g = conv(gz, w), grad_w = conv_weight_grad(gz, g)"""

    @staticmethod
    def forward(ctx, g, w, plan=None):
        ctx.save_for_backward(g, w)
        ctx.plan = plan
        return conv_input_grad(ctx.xp, grad_columns(ctx.xp, g, plan), w, plan)

    @staticmethod
    def backward(ctx, gz):
        g, w = ctx.saved_tensors
        need_g, need_w = ctx.needs_input_grad
        plan = ctx.plan
        if isinstance(gz, Tensor):
            dev = gz.device
            grad_g = Conv2d.apply(gz, _tensor(w, dev), None, plan=plan) if need_g else None
            grad_w = Conv2dWeightGrad.apply(gz, _tensor(g, dev), plan=plan, w_shape=w.shape) \
                if need_w else None
            return grad_g, grad_w
        xp = ctx.xp
        cols = im2col(xp, gz, plan)
        grad_g = _conv_from_columns(xp, cols, w, None, plan) if need_g else None
        grad_w = conv_weight_grad(xp, cols, grad_columns(xp, g, plan), w.shape) if need_w else None
        return grad_g, grad_w


class Conv2dWeightGrad(Function):
    """z = conv_weight_grad(x, g), the w-gradient of <conv(x, w), g>  ->
    grad_x = conv_input_grad(g, gz), grad_g = conv(x, gz)"""

    @staticmethod
    def forward(ctx, x, g, plan=None, w_shape=None):
        ctx.save_for_backward(x, g)
        ctx.plan = plan
        xp = ctx.xp
        return conv_weight_grad(xp, im2col(xp, x, plan), grad_columns(xp, g, plan), w_shape)

    @staticmethod
    def backward(ctx, gz):
        x, g = ctx.saved_tensors
        need_x, need_g = ctx.needs_input_grad
        plan = ctx.plan
        if isinstance(gz, Tensor):
            dev = gz.device
            grad_x = Conv2dInputGrad.apply(_tensor(g, dev), gz, plan=plan) if need_x else None
            grad_g = Conv2d.apply(_tensor(x, dev), gz, None, plan=plan) if need_g else None
            return grad_x, grad_g
        xp = ctx.xp
        grad_x = conv_input_grad(xp, grad_columns(xp, g, plan), gz, plan) if need_x else None
        grad_g = conv_forward(xp, x, gz, None, plan) if need_g else None
        return grad_x, grad_g


class MaxPool2d(Function):
    """y = max over each window (padding is -inf)  ->  grad_x = g added at each window's argmax
    (ties: the first maximum in row-major window order, as PyTorch; overlapping windows add up)"""

    @staticmethod
    def forward(ctx, x, plan=None):
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
            greater = (slab > out).astype(arg.dtype)
            arg += greater * (k - arg)  # arg = k where greater: small-integer math beats where()
            xp.maximum(out, slab, out=out)  # NaN propagates, as in PyTorch
        ctx.arg, ctx.geometry = arg, (n, c, hb, wb, kh, kw, sh, sw, dh, dw)
        ctx.inner = inner if buf is not x else None
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        n, c, hb, wb, kh, kw, sh, sw, dh, dw = ctx.geometry
        # Flat index in the (padded) input of each window's winner: its corner plus the offset.
        offsets = _window_offsets(ctx.device.xp, wb, kh, kw, dh, dw)
        index = (_window_corners(ctx.device.xp, ctx.arg.shape, hb, wb, sh, sw)
                 + offsets[ctx.arg]).reshape(-1)
        if isinstance(g, Tensor):  # create_graph: the scatter as a differentiable op
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
    return Conv2d.apply(x, weight, bias, plan=plan)


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
    return MaxPool2d.apply(x, plan=plan)
