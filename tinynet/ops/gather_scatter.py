"""Indexing along one dimension, PyTorch's way: ``gather``, ``take_along_dim``, ``index_select``,
``scatter``, ``scatter_add`` and ``masked_fill``.

Most of these are indexing in disguise, so they are composed rather than new primitives:
``gather(x, dim, index)`` is ``x[I]`` for the advanced index ``I`` that takes ``index`` along
``dim`` and the position itself along every other dim (:func:`along_dim_index`), so its gradient
is ``GetItemOp``'s (a scatter-add into zeros, repeats accumulating) and it is differentiable to any
order; ``scatter_add`` is ``x + index_add(src, x.shape, I)``; ``index_select`` is
``x[:, ..., idx]``; ``masked_fill`` is ``where``. The one primitive is :class:`ScatterOp` (writing,
not adding, needs its own gradient: the overwritten elements of ``x`` get none).

Index tensors must hold integers in ``[0, size)`` (PyTorch's rule; negative indices are refused).
The range is checked with one read of the index's minimum and maximum, because CuPy, unlike
NumPy, would silently wrap an out-of-range index. The in-place forms (``scatter_``,
``masked_fill_`` ...) are in ``inplace.py``.
"""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .indexing import GetItemOp, index_add
from .operands import dim_alias, one_dim, unary_operand
from .select import where
from .shape import broadcast_to, reshape

__all__ = ["gather", "index_select", "masked_fill", "scatter", "scatter_add", "take_along_dim"]


# --- checking and building indices ----------------------------------------------------------


def index_tensor(op: str, name: str, index, like: Tensor) -> Tensor:
    """``index`` checked as an integer tensor on ``like``'s device (lists are accepted)."""
    if not isinstance(index, Tensor):
        if not isinstance(index, (list, tuple)):
            raise TypeError(f"{op}: {name} must be an integer tensor, got "
                            f"{type(index).__name__}")
        index = Tensor(index, device=like.device)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer tensor (e.g. tn.long), got "
                        f"{index.dtype}")
    if index.device is not like.device:
        raise RuntimeError(f"{op}: {name} is on {index.device}, the input on {like.device}; move "
                           "it explicitly with .to(device)")
    return index


def check_range(op: str, name: str, index: Tensor, size: int, dim: int) -> None:
    """Raise unless every element of ``index`` is in ``[0, size)`` (one host read on a GPU)."""
    if index.numel() == 0:
        return
    xp = index.device.xp
    lo, hi = (int(v) for v in xp.stack([index.data.min(), index.data.max()]).tolist())
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        raise IndexError(f"{op}: {name} {bad} is out of range for dimension {dim} of size {size} "
                         f"(indices must be in [0, {size}))")


def along_dim_index(xp, index, dim: int) -> tuple:
    """The advanced index ``I`` with ``x[I][p] = x[p with p[dim] replaced by index[p]]``: ``index``
    along ``dim``, ``arange`` along every other dim (broadcast against it)."""
    ndim = index.ndim
    parts = []
    for d in range(ndim):
        if d == dim:
            parts.append(index)
        else:
            shape = [1] * ndim
            shape[d] = index.shape[d]
            parts.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(parts)


def _dim(op: str, dim, axis, ndim: int) -> int:
    dim = dim_alias(op, dim, axis)
    if dim is None:
        raise TypeError(f"{op}: missing the dim argument")
    return one_dim(dim, ndim, op)


def _gather_checked(op: str, x: Tensor, dim: int, index: Tensor) -> None:
    """PyTorch's shape rule for gather/scatter: the same number of dims, and ``index`` no larger
    than ``x`` along every other dim; and the range of ``index``."""
    if index.ndim != x.ndim:
        raise ValueError(f"{op}: index must have as many dims as the input, got index of shape "
                         f"{tuple(index.shape)} for an input of shape {tuple(x.shape)}")
    for d, (n_index, n_x) in enumerate(zip(index.shape, x.shape)):
        if d != dim and n_index > n_x:
            raise ValueError(f"{op}: index of shape {tuple(index.shape)} is larger than the input "
                             f"of shape {tuple(x.shape)} in dim {d} (only dim {dim} may differ)")
    check_range(op, "index", index, x.shape[dim] if x.ndim else 1, dim)


# --- gather, take_along_dim, index_select ------------------------------------------------------


@tensor_method
def gather(input, dim=None, index=None, *, axis=None,  # noqa: A002 - PyTorch's names
           sparse_grad: bool = False) -> Tensor:
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim=0`` (and likewise along any
    ``dim``): picks one element along ``dim`` for every position of ``index``, which has as many
    dims as ``input`` and is no larger than it along the others. The result has ``index``'s shape.
    The gradient scatters back, repeated indices accumulating. ``sparse_grad`` is accepted and
    ignored (gradients are dense).

    Example:
        >>> tn.tensor([[1.0, 2.0], [3.0, 4.0]]).gather(1, tn.tensor([[0, 0], [1, 0]]))
        tensor([[1., 1.], [4., 3.]])
    """
    x = unary_operand(input)
    dim = _dim("gather", dim, axis, x.ndim)
    index = index_tensor("gather", "index", index, x)
    _gather_checked("gather", x, dim, index)
    if x.ndim == 0:
        return GetItemOp.apply(x, index=())
    return GetItemOp.apply(x, index=along_dim_index(x.device.xp, index.data, dim))


@tensor_method
def take_along_dim(input, indices=None, dim=None, *, axis=None) -> Tensor:  # noqa: A002
    """``gather`` with broadcasting (NumPy's ``take_along_axis``): ``input`` and ``indices`` are
    broadcast against each other in every dim but ``dim``. Without ``dim``, both are flattened.

    Example:
        >>> x = tn.tensor([[10.0, 30.0, 20.0], [60.0, 40.0, 50.0]])
        >>> tn.take_along_dim(x, x.argmax(dim=1, keepdim=True), dim=1)   # [[30.], [60.]]
    """
    x = unary_operand(input)
    indices = index_tensor("take_along_dim", "indices", indices, x)
    dim = dim_alias("take_along_dim", dim, axis)
    if dim is None:
        return gather(reshape(x, -1), 0, reshape(indices, -1))
    dim = one_dim(dim, x.ndim, "take_along_dim")
    if indices.ndim != x.ndim:
        raise ValueError(f"take_along_dim: indices must have as many dims as the input, got "
                         f"{tuple(indices.shape)} for an input of shape {tuple(x.shape)}")
    try:
        other = _broadcast_except(x.shape, indices.shape, dim)
    except ValueError:
        raise ValueError(f"take_along_dim: input of shape {tuple(x.shape)} and indices of shape "
                         f"{tuple(indices.shape)} do not broadcast outside dim {dim}") from None
    x = broadcast_to(x, other[:dim] + (x.shape[dim],) + other[dim + 1:])
    indices = broadcast_to(indices, other[:dim] + (indices.shape[dim],) + other[dim + 1:])
    return gather(x, dim, indices)


def _broadcast_except(a: tuple, b: tuple, dim: int) -> tuple:
    """The broadcast of shapes ``a`` and ``b`` (same length) in every dim but ``dim`` (left 1)."""
    out = []
    for d, (m, n) in enumerate(zip(a, b)):
        if d == dim:
            out.append(1)
        elif m == n or n == 1:
            out.append(m)
        elif m == 1:
            out.append(n)
        else:
            raise ValueError(f"{a} and {b} differ in dim {d}")
    return tuple(out)


@tensor_method
def index_select(input, dim=None, index=None, *, axis=None) -> Tensor:  # noqa: A002
    """The slices ``index[0], index[1], ...`` of ``input`` along ``dim`` (``index``: 1-d
    integers; repeats allowed, their gradients accumulate).

    Example:
        >>> tn.arange(6.0).reshape(2, 3).index_select(1, tn.tensor([2, 0]))
        tensor([[2., 0.], [5., 3.]])
    """
    x = unary_operand(input)
    dim = _dim("index_select", dim, axis, x.ndim)
    index = index_tensor("index_select", "index", index, x)
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 0-d or 1-d, got shape "
                         f"{tuple(index.shape)}")
    size = x.shape[dim] if x.ndim else 1
    check_range("index_select", "index", index, size, dim)
    if x.ndim == 0:
        return reshape(x, (1,))[index.data.reshape(-1)].reshape(index.shape[:1] or ())
    return GetItemOp.apply(x, index=(slice(None),) * dim + (index.data.reshape(-1),))


# --- scatter, scatter_add -------------------------------------------------------------------


class ScatterOp(Op):
    """x with src written at index I  ->  grad_x = g with zeros where written,  grad_src = g[I]
    (PyTorch's formulas: where I repeats a position, one src element wins the write, yet every
    one of them gets that position's gradient)"""

    @staticmethod
    def forward(ctx, x, src, *, index=None):
        ctx.index = index
        if ctx.needs_input_grad[0]:
            written = ctx.xp.zeros(x.shape, dtype=bool)
            written[index] = True
            ctx.save_constant(written)
        out = x.copy()
        out[index] = src
        return out

    @staticmethod
    def backward(ctx, g):
        grad_x = ctx.xp.where(ctx.saved_constants[0], 0, g) if ctx.needs_input_grad[0] else None
        return grad_x, g[ctx.index] if ctx.needs_input_grad[1] else None


def scatter_source(op: str, x: Tensor, index: Tensor, src, value) -> Tensor:
    """``src`` (a tensor, at least ``index``'s size in every dim) cut to ``index``'s shape, or
    the number ``value`` (or ``src`` given as a number) filled to it, in ``x``'s dtype."""
    if src is not None and value is not None:
        raise TypeError(f"{op}: give src or value, not both")
    if src is None:
        src = value
    if src is None:
        raise TypeError(f"{op}: missing src (a tensor) or value (a number)")
    if not isinstance(src, Tensor):
        return Tensor.wrap(x.device.xp.full(index.shape, src, dtype=x.dtype), x.device)
    if src.dtype != x.dtype:
        raise TypeError(f"{op}: src has dtype {src.dtype}, the input {x.dtype}; they must be "
                        "the same (convert one with .to(dtype))")
    if src.device is not x.device:
        raise RuntimeError(f"{op}: src is on {src.device}, the input on {x.device}")
    if src.ndim != index.ndim or any(s < i for s, i in zip(src.shape, index.shape)):
        raise ValueError(f"{op}: src of shape {tuple(src.shape)} must be at least as large as "
                         f"index, of shape {tuple(index.shape)}, in every dim")
    if src.shape != index.shape:
        src = src[tuple(slice(0, n) for n in index.shape)]
    return src


def _scatter_args(op, input, dim, index, axis):
    x = unary_operand(input)
    dim = _dim(op, dim, axis, x.ndim)
    index = index_tensor(op, "index", index, x)
    _gather_checked(op, x, dim, index)
    if x.ndim == 0:
        return x, dim, index, ()
    return x, dim, index, along_dim_index(x.device.xp, index.data, dim)


@tensor_method
def scatter(input, dim=None, index=None, src=None, *, value=None,  # noqa: A002
            axis=None) -> Tensor:
    """``gather``'s inverse, out of place: a copy of ``input`` with ``src[i][j][k]`` written at
    ``[index[i][j][k]][j][k]`` (``dim=0``). ``src`` is a tensor at least ``index``'s size, or a
    number (``value=``). Where ``index`` repeats a position, which write wins is unspecified, as
    in PyTorch.

    Example:
        >>> labels = tn.tensor([2, 0])
        >>> tn.zeros(2, 3).scatter(1, labels.unsqueeze(1), 1.0)   # one-hot rows
        tensor([[0., 0., 1.], [1., 0., 0.]])
    """
    x, dim, index, at = _scatter_args("scatter", input, dim, index, axis)
    return ScatterOp.apply(x, scatter_source("scatter", x, index, src, value), index=at)


@tensor_method
def scatter_add(input, dim=None, index=None, src=None, *, axis=None) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src[i][j][k]`` added at ``[index[i][j][k]][j][k]`` (``dim=0``);
    repeated positions accumulate. Differentiable in both ``input`` and ``src``.

    Example:
        >>> tn.zeros(3).scatter_add(0, tn.tensor([0, 2, 0]), tn.tensor([1.0, 2.0, 3.0]))
        tensor([4., 0., 2.])
    """
    x, dim, index, at = _scatter_args("scatter_add", input, dim, index, axis)
    src = scatter_source("scatter_add", x, index, src, None)
    return x + index_add(src, x.shape, at)


# --- masked_fill ---------------------------------------------------------------------------------


def mask_tensor(op: str, mask, like: Tensor) -> Tensor:
    """``mask`` checked as a bool tensor broadcastable to ``like``'s shape, on its device."""
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{op}: mask must be a bool tensor, got {got}")
    if mask.device is not like.device:
        raise RuntimeError(f"{op}: mask is on {mask.device}, the input on {like.device}")
    shape = tuple(like.shape)
    lead = len(shape) - mask.ndim
    if lead < 0 or any(m not in (1, n) for m, n in zip(mask.shape, shape[lead:])):
        raise ValueError(f"{op}: mask of shape {tuple(mask.shape)} does not broadcast to the "
                         f"input's shape {shape}")
    return mask


@tensor_method
def masked_fill(input, mask, value) -> Tensor:  # noqa: A002
    """``input`` with ``value`` (a number, or a 0-d tensor, which gets a gradient) where the bool
    ``mask`` (broadcast to ``input``'s shape) is true; ``input``'s dtype is kept.

    Example:
        >>> scores = tn.zeros(2, 2).masked_fill(tn.tensor([[False, True], [False, False]]),
        ...                                     float("-inf"))   # an attention mask
    """
    x = unary_operand(input)
    mask = mask_tensor("masked_fill", mask, x)
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                         f"{tuple(value.shape)}")
    out = where(mask, value, x)  # (x's shape: the mask broadcasts to it)
    return out if out.dtype == x.dtype else out.astype(x.dtype)
