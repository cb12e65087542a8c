"""Shape ops: reshape, permute/transpose, broadcast_to/expand, squeeze/unsqueeze, flatten, cat,
stack, split, pad. Primitives: ``Reshape``, ``Permute``, ``BroadcastTo``, ``Cat``, ``Pad``; the rest
are composed from them (and from indexing, for ``split``).
"""

from __future__ import annotations

import functools
import math

from ..autograd import Function, sum_to
from ..tensor import Tensor, result_dtype, unary_operand
from .reduce import normalize_axes


class Reshape(Function):
    """x.reshape(shape)  ->  grad_x = g.reshape(x.shape)"""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Permute(Function):
    """x.transpose(axes)  ->  grad_x = g.transpose(inverse permutation of axes)"""

    @staticmethod
    def forward(ctx, x, axes=None):
        ctx.inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
        return ctx.xp.transpose(x, axes)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.transpose(g, ctx.inverse), None


class BroadcastTo(Function):
    """broadcast_to(x, shape)  ->  grad_x = g summed over the broadcast axes (sum_to)"""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.shape = x.shape
        return ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return sum_to(g, ctx.shape, "BroadcastTo"), None


class Cat(Function):
    """concatenate(xs, axis)  ->  grad_xs[i] = the slice of g that came from xs[i]"""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.bounds = []
        start = 0
        for x in xs:
            ctx.bounds.append((start, start + x.shape[axis]))
            start += x.shape[axis]
        return ctx.xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        lead = (slice(None),) * ctx.axis
        return tuple(g[lead + (slice(s, e),)] for s, e in ctx.bounds)


class Pad(Function):
    """constant padding of x  ->  grad_x = g with the padding sliced off"""

    @staticmethod
    def forward(ctx, x, widths=None, value=0.0):
        ctx.inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return ctx.xp.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.inner], None, None


# --- functional API -----------------------------------------------------------------------------


def _resolve_shape(shape, size: int, op: str = "reshape") -> tuple:
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"{op}: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise ValueError(f"{op}: cannot reshape a tensor of {size} elements into {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if math.prod(shape) != size:
        raise ValueError(f"{op}: cannot reshape a tensor of {size} elements into shape {shape}")
    return shape


def reshape(x, shape) -> Tensor:
    x = unary_operand(x)
    shape = _resolve_shape(shape, x.numel())
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape)


def permute(x, axes) -> Tensor:
    x = unary_operand(x)
    axes = tuple(a % x.ndim for a in axes) if x.ndim else tuple(axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of a tensor "
                         f"of shape {tuple(x.shape)}")
    return Permute.apply(x, axes)


def transpose(x, axes=None) -> Tensor:
    """NumPy's ``transpose``: reverse the axes, or permute them by ``axes``."""
    x = unary_operand(x)
    return permute(x, tuple(range(x.ndim - 1, -1, -1)) if axes is None else axes)


def swapaxes(x, axis0: int, axis1: int) -> Tensor:
    x = unary_operand(x)
    axes = list(range(x.ndim))
    a, b = normalize_axes(axis0, x.ndim)[0], normalize_axes(axis1, x.ndim)[0]
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, tuple(axes))


def broadcast_to(x, shape) -> Tensor:
    x = unary_operand(x)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    _check_broadcastable(x.shape, shape, "broadcast_to")
    return BroadcastTo.apply(x, shape)


def _check_broadcastable(src: tuple, dst: tuple, op: str) -> None:
    ok = len(dst) >= len(src) and all(
        s in (1, d) for s, d in zip(src[::-1], dst[::-1]))
    if not ok:
        raise ValueError(f"{op}: cannot broadcast a tensor of shape {src} to {dst}")


def expand(x, *sizes) -> Tensor:
    """PyTorch's ``expand``: broadcast to ``sizes``; -1 keeps a dimension as it is."""
    x = unary_operand(x)
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def squeeze(x, axis=None, *, dim=None) -> Tensor:
    """Drop size-1 dimensions (all of them, or those in ``axis`` that have size 1)."""
    x = unary_operand(x)
    axis = axis if dim is None else dim
    axes = normalize_axes(axis, x.ndim)
    axes = range(x.ndim) if axes is None else axes
    drop = {a for a in axes if x.shape[a] == 1}
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in drop))


def unsqueeze(x, axis: int) -> Tensor:
    """Insert a size-1 dimension at ``axis`` (negative counts from the end of the result)."""
    x = unary_operand(x)
    axis = normalize_axes(axis, x.ndim + 1)[0] if x.ndim + 1 > 0 else 0
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    x = unary_operand(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = normalize_axes(start_dim, x.ndim)[0], normalize_axes(end_dim, x.ndim)[0]
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def cat(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = [unary_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    axis = axis if dim is None else dim
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = normalize_axes(axis, first.ndim)[0]
    for i, t in enumerate(tensors):
        other = tuple(s for j, s in enumerate(t.shape) if j != axis)
        if t.ndim != first.ndim or other != tuple(s for j, s in enumerate(first.shape) if j != axis):
            raise ValueError(f"cat: tensor {i} has shape {tuple(t.shape)}, which does not match "
                             f"{tuple(first.shape)} outside axis {axis}")
    dtype = functools.reduce(result_dtype, (t.dtype for t in tensors))
    tensors = [t if t.dtype == dtype else t.to(dtype) for t in tensors]
    return Cat.apply(*tensors, axis=axis)


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors along a new axis (``torch.stack``): ``unsqueeze`` each, then ``cat``."""
    tensors = [unary_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    axis = axis if dim is None else dim
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def split(x, split_size_or_sections, axis: int = 0, *, dim=None) -> tuple:
    """``torch.split``: chunks of ``split_size`` (the last may be smaller), or the listed sizes."""
    x = unary_operand(x)
    axis = normalize_axes(axis if dim is None else dim, x.ndim)[0]
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to {n}, the size of axis {axis}")
    lead = (slice(None),) * axis
    out, start = [], 0
    for size in sizes:
        out.append(x[lead + (slice(start, start + size),)])
        start += size
    return tuple(out)


def pad(x, pad, value: float = 0.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """Constant padding, PyTorch's ``F.pad`` convention: ``pad = (left, right)`` for the last axis,
    then ``(top, bottom)`` for the one before, and so on."""
    x = unary_operand(x)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most {x.ndim} axes")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad.apply(x, tuple(widths), value)
