"""Ordering along one dimension: ``sort``, ``argsort`` and ``topk``, with PyTorch's meanings.

One primitive, :class:`ArgsortOp` (the order, as int64 indices: no gradient); the values are
``gather(x, dim, order)``, so their gradient is gather's (each element's gradient goes back to
where it came from) and ``sort``/``topk`` are differentiable to any order. ``sort`` and ``topk``
return ``(values, indices)`` named tuples, as ``torch.return_types.sort`` / ``.topk`` do.

Order: always stable (equal elements keep their order, ``stable=True`` or not); descending
order puts the first of equal elements first too, and NaN sorts above every number, as in PyTorch.
"""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .gather_scatter import gather
from .operands import dim_alias, one_dim, unary_operand
from .reduce import ValuesIndices

__all__ = ["argsort", "sort", "topk"]


class ArgsortOp(Op):
    """argsort(x, dim)  ->  no gradient (int64 indices: a permutation along dim)"""

    differentiable = False

    @staticmethod
    def forward(ctx, x, *, dim=-1, descending=False):
        xp = ctx.xp
        if x.ndim == 0:
            return xp.zeros((), dtype="int64")
        if not descending:
            return xp.argsort(x, axis=dim, kind="stable").astype("int64")
        # Descending and stable: sort the reversed array ascending (ties keep reversed order),
        # then reverse the result and map positions back. NaN, last ascending, comes first.
        n = x.shape[dim]
        order = xp.argsort(xp.flip(x, axis=dim), axis=dim, kind="stable")
        return (n - 1 - xp.flip(order, axis=dim)).astype("int64")


def _order(op: str, x: Tensor, dim, axis, descending: bool):
    dim = one_dim(dim_alias(op, dim, axis, -1), x.ndim, op)
    return dim, ArgsortOp.apply(x, dim=dim, descending=bool(descending))


@tensor_method
def argsort(input, dim=-1, descending: bool = False, stable: bool = False, *,  # noqa: A002
            axis=None) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (ascending unless ``descending``); always
    stable."""
    return _order("argsort", unary_operand(input), dim, axis, descending)[1]


@tensor_method
def sort(input, dim=-1, descending: bool = False, stable: bool = False, *,  # noqa: A002
         axis=None) -> ValuesIndices:
    """``(values, indices)``: ``input`` sorted along ``dim`` and where each value came from.

    Example:
        >>> values, indices = tn.tensor([3.0, 1.0, 2.0]).sort(descending=True)
        >>> values, indices
        (tensor([3., 2., 1.]), tensor([0, 2, 1]))
    """
    x = unary_operand(input)
    dim, order = _order("sort", x, dim, axis, descending)
    return ValuesIndices(gather(x, dim, order), order)


@tensor_method
def topk(input, k: int, dim=-1, largest: bool = True, sorted: bool = True, *,  # noqa: A002
         axis=None) -> ValuesIndices:
    """``(values, indices)`` of the ``k`` largest elements along ``dim`` (smallest with
    ``largest=False``), in order; equal elements come in their order in ``input``.

    Example:
        >>> tn.tensor([[0.1, 0.7, 0.2]]).topk(2).indices
        tensor([[1, 2]])
    """
    x = unary_operand(input)
    dim, order = _order("topk", x, dim, axis, largest)
    size = x.shape[dim] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= size:
        raise ValueError(f"topk: k={k!r} is out of range for dim {dim} of size {size} (input of "
                         f"shape {tuple(x.shape)})")
    if x.ndim:
        order = order[(slice(None),) * dim + (slice(0, k),)]
    return ValuesIndices(gather(x, dim, order), order)
