"""The im2col layout of a 1-D or 2-D convolution: the geometry (:class:`ConvPlan`) and the array
kernels that run on raw backend arrays (``xp`` is the device's namespace). ``conv.py`` builds the
convolution primitives from these; no autograd here.

One layout for both ranks: a 1-D convolution of (N, C, L) is planned as the 2-D convolution of the
(N, C, 1, L) view, with a kernel of height 1 (:func:`conv1d_plan`). The kernels take and return
arrays of the plan's own rank (``plan.spatial``): the height axis is added as a view on the way
in and dropped on the way out, never copied.

* :func:`im2col`: the input, padded once, viewed as (G, C/G * kH * kW, N * OH * OWe) columns, one
  row per (channel, kernel offset) and one column per output pixel; a convolution is then ONE
  matrix product for the whole batch, all groups included (a leading group axis of ``matmul``).
* :func:`col2im`: its adjoint, summing overlapping windows back into the input's shape.

The layout. The input is copied once into a zero buffer of shape (N, C, Hb, Wb) holding the padding.
Its row pitch is Wb = W + max(left, right): a row's right padding doubles as the next row's left
padding. When the output rows can be laid out on the buffer's row pitch (equal strides along H and
W, at most 50% extra columns), OWe > OW "wrap-around" columns are computed and dropped: the
columns of one output row then continue straight into the next, so the im2col copy and the col2im
adds run over long contiguous stretches instead of rows of OW elements (col2im is about 3x faster
at 16x16). The extra columns read finite numbers and receive zero gradient.

Aliasing. The buffer keeps enough spare zero rows that no window reaches into the next channel's
plane, and the only addresses that two different window elements of one col2im add can share are
padding (whose gradient is dropped) or extra columns (whose gradient is zero): an input pixel is
never written twice by one vectorised add. This matters on the GPU, where aliased ``+=`` in one
kernel loses updates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

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
    spatial: int = 2  # rank of the kernels' arrays: 2, or 1 for (N, C, L) seen as (N, C, 1, L)

    @property
    def buffer_shape(self) -> tuple:
        return self.in_shape[:2] + self.buffer_hw

    @property
    def inner(self) -> tuple:
        """Where the input sits inside the buffer: (slice(None), slice(None), rows, cols); the row
        is an integer for a 1-D plan, so that the buffer's inner part has the input's rank."""
        (top, _), (left, _) = self.padding
        h, w = self.in_shape[2:]
        rows = top if self.spatial == 1 else slice(top, top + h)
        return (slice(None), slice(None), rows, slice(left, left + w))

    @property
    def out_shape(self) -> tuple:
        """The output's shape without its channel count: (N, OH, OW), or (N, OW) for a 1-D plan."""
        return (self.in_shape[0],) + self.out_hw[2 - self.spatial:]

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
              groups: int = 1, wrap: bool = True) -> ConvPlan:
    """The layout of one convolution geometry (cached: a training loop repeats a few geometries);
    ``wrap=False`` never uses wrap-around columns."""
    h, w = in_shape[2:]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    (top, bottom), (left, right) = padding
    hp = h + top + bottom
    oh, ow = output_size(h, kh, sh, top + bottom, dh), output_size(w, kw, sw, left + right, dw)
    # Row pitch: a row's right padding doubles as the next row's left padding, so the pitch is
    # w + max(left, right), not w + left + right (padding columns alias only each other).
    wb, owe = w + max(left, right), ow
    if wrap and sh == sw:
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


@functools.lru_cache(maxsize=512)
def conv1d_plan(in_shape: tuple, kernel: int, stride: int, padding: tuple, dilation: int,
                groups: int = 1) -> ConvPlan:
    """The layout of a 1-D convolution of an (N, C, L) input, ``padding = (left, right)``: the
    2-D plan of its (N, C, 1, L) view with a (1, kernel) window. No wrap-around columns: with one
    output row per sample they would only add work."""
    n, c, length = in_shape
    plan = conv_plan((n, c, 1, length), (1, kernel), (1, stride), ((0, 0), tuple(padding)),
                     (1, dilation), groups, wrap=False)
    return dataclasses.replace(plan, spatial=1)


def planar(a, plan: ConvPlan):
    """An array of the plan's rank as the (N, C, H, W) the layout works in: a view."""
    return a[:, :, None, :] if plan.spatial == 1 else a


# --- array kernels -----------------------------------------------------------------------------


def _windows(xp, buf, plan: ConvPlan):
    """The (G, C/G, kH, kW, N, OH, OWe) view of every window of ``buf``: no copy."""
    return xp.lib.stride_tricks.as_strided(buf, plan.window_shape,
                                           plan.window_strides(buf.itemsize))


def im2col(xp, x, plan: ConvPlan):
    """Input (N, C, H, W) or (N, C, L) -> columns (G, C/G * kH * kW, N * OH * OWe): pad once,
    copy once."""
    buf = xp.zeros(plan.buffer_shape, dtype=x.dtype)
    buf[plan.inner] = x  # (N, C, L) lands in row 0 of a 1-D plan's buffer
    g, cg = plan.window_shape[:2]
    return _windows(xp, buf, plan).reshape(g, cg * math.prod(plan.kernel), plan.n_columns)


def col2im(xp, cols, plan: ConvPlan):
    """The adjoint of :func:`im2col`: columns -> (N, C, H, W) (or (N, C, L)), summing
    overlapping windows.

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
    """Output gradient (N, O, OH, OW) (or (N, O, OL)) -> columns (G, O/G, N * OH * OWe), zero on
    extra columns."""
    g = planar(g, plan)
    n, o, oh, ow = g.shape
    gt = xp.swapaxes(g, 0, 1)  # (O, N, OH, OW)
    if plan.out_we != ow:
        padded = xp.zeros((o, n, oh, plan.out_we), dtype=g.dtype)
        padded[..., :ow] = gt
        gt = padded
    return gt.reshape(plan.groups, o // plan.groups, plan.n_columns)


def conv_from_columns(xp, cols, w, b, plan: ConvPlan):
    """columns (G, K, N*OH*OWe), weight (O, C/G, kH, kW) -> output (N, O, OH, OW), bias added
    (weight (O, C/G, k) -> output (N, O, OL) for a 1-D plan)."""
    o = w.shape[0]
    n = plan.in_shape[0]
    (oh, ow), g = plan.out_hw, plan.groups
    out = _matmul(xp, w.reshape(g, o // g, -1), cols)  # (G, O/G, N*OH*OWe): the one product
    out = out.reshape(o, n, oh, plan.out_we)[..., :ow]
    if plan.spatial == 1:
        out = out[:, :, 0]  # (O, N, OL)
    out = xp.swapaxes(out, 0, 1)  # (N, O, OH, OW) or (N, O, OL): a view
    shape = plan.out_shape
    result = xp.empty(shape[:1] + (o,) + shape[1:], dtype=out.dtype)
    if b is None:
        result[...] = out
    else:
        xp.add(out, b.reshape((o,) + (1,) * plan.spatial), out=result)
    return result


def conv_forward(xp, x, w, b, plan: ConvPlan):
    return conv_from_columns(xp, im2col(xp, x, plan), w, b, plan)


def conv_input_grad(xp, g_cols, w, plan: ConvPlan):
    """d<conv(x, w), g>/dx from g's columns: w^T (G, K, O/G) @ g (G, O/G, NL), then col2im."""
    o = w.shape[0]
    w3 = w.reshape(plan.groups, o // plan.groups, -1)  # (G, O/G, K)
    return col2im(xp, _matmul(xp, xp.swapaxes(w3, 1, 2), g_cols), plan)


def conv_weight_grad(xp, cols, g_cols, w_shape: tuple):
    """d<conv(x, w), g>/dw from x's and g's columns: g (G, O/G, NL) @ cols^T (G, NL, K)."""
    return _matmul(xp, g_cols, xp.swapaxes(cols, 1, 2)).reshape(w_shape)  # (G, O/G, K)
