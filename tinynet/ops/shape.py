"""Shape ops: reshape/view, permute/transpose, broadcast_to/expand, squeeze/unsqueeze, flatten, cat,
stack, unbind, split/chunk, pad. Primitives: ``ReshapeOp``, ``PermuteOp``, ``BroadcastToOp``,
``CatOp``, ``UnbindOp`` and ``SplitOp`` (multi-output: one node, a tuple of views), ``PadOp``; the
rest are composed from them.

PyTorch's meanings: ``transpose(x, dim0, dim1)`` swaps two dims (``swapaxes`` is its NumPy-named
alias), ``permute`` reorders all of them; ``view`` never copies (it raises where the strides do
not allow a view), ``reshape`` copies when it must.
"""

from __future__ import annotations

import functools
import math
import operator

from ..autograd import Op, sum_to
from ..tensor import Tensor, tensor_method
from .namespace import tensor_namespace
from .operands import dim_alias, normalize_dims, one_dim, result_dtype, unary_operand

__all__ = ["broadcast_to", "cat", "chunk", "expand", "flatten", "pad", "permute", "reshape",
           "split", "squeeze", "stack", "swapaxes", "transpose", "unbind", "unsqueeze"]


class ReshapeOp(Op):
    """x.reshape(shape)  ->  grad_x = g.reshape(x.shape)"""

    views_input = True  # a view where the strides allow, else a copy

    @staticmethod
    def forward(ctx, x, *, shape=None):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


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
    """``x`` with a new shape of the same size (one entry may be -1): a view of ``x``'s memory
    when its strides allow it, else a copy (``Tensor.reshape(*shape)`` is the method form)."""
    x = unary_operand(x)
    shape = _resolve_shape(shape, x.numel())
    if shape == x.shape:
        return x
    return ReshapeOp.apply(x, shape=shape)


def view(x, shape) -> Tensor:
    """``reshape`` that never copies (``Tensor.view``): raises, as PyTorch does, when ``x``'s
    strides cannot describe the new shape (after ``transpose``, say); use ``reshape`` there."""
    x = unary_operand(x)
    shape = _resolve_shape(shape, x.numel(), "view")
    data = x.data
    if not data.flags.c_contiguous and _view_strides(data.shape, data.strides, shape) is None:
        raise RuntimeError(
            f"view: size {shape} is not compatible with the input's size {tuple(x.shape)} and "
            f"strides {tuple(data.strides)} (at least one dimension spans across two contiguous "
            "subspaces); use .reshape(...) instead")
    if shape == x.shape:
        return x
    return ReshapeOp.apply(x, shape=shape)


def _view_strides(old_shape: tuple, old_strides: tuple, new_shape: tuple):
    """The strides ``new_shape`` has as a view of memory laid out as ``old_shape``/``old_strides``,
    or None when no view exists (PyTorch's ``computeStride``): each run of old dims that is
    contiguous in memory must split into whole new dims."""
    if math.prod(old_shape) == 0 or not old_shape:
        return (0,) * len(new_shape)
    new_strides = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_stride = old_strides[-1]
    old_n = new_n = 1
    for d in range(len(old_shape) - 1, -1, -1):
        old_n *= old_shape[d]
        if d == 0 or (old_shape[d - 1] != 1 and old_strides[d - 1] != old_n * chunk_stride):
            while view_d >= 0 and (new_n < old_n or new_shape[view_d] == 1):
                new_strides[view_d] = new_n * chunk_stride
                new_n *= new_shape[view_d]
                view_d -= 1
            if new_n != old_n:
                return None
            if d > 0:
                chunk_stride, old_n, new_n = old_strides[d - 1], 1, 1
    return None if view_d != -1 else tuple(new_strides)


class PermuteOp(Op):
    """x.permute(dims)  ->  grad_x = g.permute(inverse permutation of dims)"""

    views_input = True

    @staticmethod
    def forward(ctx, x, *, dims=None):
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return ctx.xp.transpose(x, dims)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.transpose(g, ctx.inverse)


def permute(x, dims) -> Tensor:
    """Reorder the dims: dim ``i`` of the result is dim ``dims[i]`` of ``x``
    (``Tensor.permute(*dims)`` is the method form; NumPy calls this ``transpose(x, axes)``)."""
    x = unary_operand(x)
    given = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(given) != x.ndim:
        raise ValueError(f"permute: dims {given} name {len(given)} dim(s), but a tensor of shape "
                         f"{tuple(x.shape)} has {x.ndim}: give an order of all of them")
    dims = tuple(one_dim(d, x.ndim, "permute") for d in given)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {given} is not a permutation of the {x.ndim} dims of a tensor "
                         f"of shape {tuple(x.shape)} (a dim is repeated)")
    return PermuteOp.apply(x, dims=dims)


@tensor_namespace.register(name="transpose")
def _numpy_transpose(x, axes=None):
    """NumPy's ``transpose(x, axes)`` (all axes reversed when omitted), as backward uses it."""
    return permute(x, tuple(range(x.ndim))[::-1] if axes is None else axes)


@tensor_method("transpose", "swapaxes")
@tensor_namespace.register(name="swapaxes")
def transpose(x, dim0: int, dim1: int) -> Tensor:
    """Swap dims ``dim0`` and ``dim1`` (PyTorch's ``transpose``; ``swapaxes`` is the same
    function, under NumPy's name). ``x.T`` reverses all dims, ``x.mT`` swaps the last two."""
    x = unary_operand(x)
    dims = list(range(x.ndim))
    a, b = one_dim(dim0, x.ndim, "transpose"), one_dim(dim1, x.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return PermuteOp.apply(x, dims=tuple(dims))


swapaxes = transpose


class BroadcastToOp(Op):
    """broadcast_to(x, shape)  ->  grad_x = g summed over the broadcast dims (sum_to)"""

    views_input = True

    @staticmethod
    def forward(ctx, x, *, shape=None):
        ctx.shape = x.shape
        return ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return sum_to(g, ctx.shape, "BroadcastTo")


@tensor_method
@tensor_namespace.register
def broadcast_to(x, shape) -> Tensor:
    """``x`` repeated along new leading dims and its size-1 dims, to ``shape`` (a view)."""
    x = unary_operand(x)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    ok = len(shape) >= x.ndim and all(s in (1, d) for s, d in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {tuple(x.shape)} to "
                         f"{shape}")
    return BroadcastToOp.apply(x, shape=shape)


def expand(x, *sizes) -> Tensor:
    """PyTorch's ``expand``: broadcast to ``sizes``; -1 keeps a dimension as it is."""
    x = unary_operand(x)
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


@tensor_method
def squeeze(x, dim=None, *, axis=None) -> Tensor:
    """Drop size-1 dims (all of them, or those in ``dim`` that have size 1)."""
    x = unary_operand(x)
    dims = normalize_dims(dim_alias("squeeze", dim, axis), x.ndim, "squeeze")
    dims = range(x.ndim) if dims is None else dims
    drop = {d for d in dims if x.shape[d] == 1}
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in drop))


@tensor_method
def unsqueeze(x, dim=None, *, axis=None) -> Tensor:
    """Insert a size-1 dim at ``dim`` (negative counts from the end of the result)."""
    x = unary_operand(x)
    dim = dim_alias("unsqueeze", dim, axis)
    if dim is None:
        raise TypeError("unsqueeze: missing the dim at which to insert a size-1 dimension")
    dim = one_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


@tensor_method
def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim`` to ``end_dim`` (inclusive) into one."""
    x = unary_operand(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = one_dim(start_dim, x.ndim, "flatten"), one_dim(end_dim, x.ndim, "flatten")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


class CatOp(Op):
    """concatenate(xs, dim)  ->  grad_xs[i] = the slice of g that came from xs[i]"""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.dim = dim
        ctx.bounds = []
        start = 0
        for x in xs:
            ctx.bounds.append((start, start + x.shape[dim]))
            start += x.shape[dim]
        return ctx.xp.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, g):
        lead = (slice(None),) * ctx.dim
        return tuple(g[lead + (slice(s, e),)] for s, e in ctx.bounds)


def cat(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Join tensors along an existing dim (``torch.cat``); dtypes are promoted."""
    tensors = [unary_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    dim = dim_alias("cat", dim, axis, default=0)
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    dim = one_dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        other = tuple(s for j, s in enumerate(t.shape) if j != dim)
        if t.ndim != first.ndim or other != tuple(s for j, s in enumerate(first.shape) if j != dim):
            raise ValueError(f"cat: tensor {i} has shape {tuple(t.shape)}, which does not match "
                             f"{tuple(first.shape)} outside dim {dim}")
    dtype = functools.reduce(result_dtype, (t.dtype for t in tensors))
    tensors = [t if t.dtype == dtype else t.to(dtype) for t in tensors]
    return CatOp.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0, *, axis=None) -> Tensor:
    """Join tensors along a new dim (``torch.stack``): ``unsqueeze`` each, then ``cat``."""
    tensors = [unary_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    dim = dim_alias("stack", dim, axis, default=0)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def _pieces_gradient(ctx, grads, join):
    """The input's gradient from its pieces' gradients, assembled once: ``join`` (``stack`` or
    ``concatenate`` along ``ctx.dim``) of them, a broadcast zero for a piece that got none (so
    the one full-size array is the only allocation)."""
    xp = ctx.xp
    parts, zero = [], None
    for g, (shape, dtype) in zip(grads, ctx.out_metas):
        if g is None:
            if zero is None:
                zero = xp.zeros((), dtype=dtype)
            g = xp.broadcast_to(zero, shape)
        parts.append(g)
    return getattr(xp, join)(parts, axis=ctx.dim)


class UnbindOp(Op):
    """the pieces x[..., k, ...] along dim  ->  grad_x = the pieces' gradients stacked along dim
    (zeros for a piece that got none)

    One node with ``x.shape[dim]`` outputs, views of ``x`` (they share its version counter).
    Backward runs once, after every piece's gradient has arrived, and writes one full-size array.
    """

    views_input = True

    @staticmethod
    def forward(ctx, x, *, dim=0):
        ctx.dim = dim
        lead = (slice(None),) * dim
        return tuple(x[lead + (k,)] for k in range(x.shape[dim]))

    @staticmethod
    def backward(ctx, *grads):
        return _pieces_gradient(ctx, grads, "stack")


@tensor_method
def unbind(x, dim: int = 0, *, axis=None) -> tuple:
    """``torch.unbind``: the slices of ``x`` along ``dim``, as a tuple of views, recorded as one
    node (backward assembles ``x``'s gradient once, not one full-size array per slice).

    Example:
        >>> [tuple(r.tolist()) for r in tn.tensor([[1.0, 2.0], [3.0, 4.0]]).unbind(1)]
        [(1.0, 3.0), (2.0, 4.0)]
    """
    x = unary_operand(x)
    if x.ndim == 0:
        raise ValueError("unbind: expects a tensor with at least one dim, got a 0-d tensor")
    dim = one_dim(dim_alias("unbind", dim, axis, default=0), x.ndim, "unbind")
    return UnbindOp.apply(x, dim=dim)


class SplitOp(Op):
    """the consecutive pieces of x along dim, of the given sizes  ->  grad_x = the pieces'
    gradients concatenated along dim (zeros for a piece that got none)

    One node with ``len(sizes)`` outputs, views of ``x`` (they share its version counter);
    ``split`` and ``chunk`` record it.
    """

    views_input = True

    @staticmethod
    def forward(ctx, x, *, sizes=(), dim=0):
        ctx.dim = dim
        lead = (slice(None),) * dim
        out, start = [], 0
        for size in sizes:
            out.append(x[lead + (slice(start, start + size),)])
            start += size
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        return _pieces_gradient(ctx, grads, "concatenate")


@tensor_method
def split(x, split_size_or_sections, dim: int = 0, *, axis=None) -> tuple:
    """``torch.split``: chunks of ``split_size`` (the last may be smaller), or the listed sizes;
    a tuple of views, recorded as one node."""
    x = unary_operand(x)
    if x.ndim == 0:
        raise ValueError("split: expects a tensor with at least one dim, got a 0-d tensor")
    dim = one_dim(dim_alias("split", dim, axis, default=0), x.ndim, "split")
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int) and not isinstance(split_size_or_sections, bool):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        try:
            sizes = [operator.index(k) for k in split_size_or_sections]
        except TypeError:
            raise TypeError(f"split: split_size_or_sections must be an int or a sequence of "
                            f"ints, got {split_size_or_sections!r}") from None
        if any(k < 0 for k in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} must be non-negative and add up to {n}, "
                             f"the size of dim {dim} of shape {tuple(x.shape)}")
    return SplitOp.apply(x, sizes=tuple(sizes), dim=dim)


@tensor_method
def chunk(input, chunks: int, dim=0, *, axis=None) -> tuple:  # noqa: A002
    """``input`` cut into ``chunks`` pieces along ``dim``, each ``ceil(size / chunks)`` long (the
    last may be shorter, and there may be fewer pieces), as ``torch.chunk`` does; one node
    (``SplitOp``).

    Example:
        >>> [c.shape for c in tn.arange(5.0).chunk(2)]
        [(3,), (2,)]
    """
    x = unary_operand(input)
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if x.ndim == 0:
        raise ValueError("chunk: expects a tensor with at least one dim, got a 0-d tensor")
    dim = one_dim(dim_alias("chunk", dim, axis, default=0), x.ndim, "chunk")
    return split(x, max(1, math.ceil(x.shape[dim] / chunks)), dim)


class PadOp(Op):
    """constant padding of x  ->  grad_x = g with the padding sliced off"""

    @staticmethod
    def forward(ctx, x, *, widths=None, value=0.0):
        ctx.inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return ctx.xp.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.inner]


def pad(x, pad, value: float = 0.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """Constant padding, PyTorch's ``F.pad`` convention: ``pad = (left, right)`` for the last dim,
    then ``(top, bottom)`` for the one before, and so on."""
    x = unary_operand(x)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most {x.ndim} dims")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return PadOp.apply(x, widths=tuple(widths), value=value)
