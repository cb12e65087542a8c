"""Differentiable collectives: ``all_reduce`` as an op of the graph.

The collectives of ``collectives.py`` are communication outside the graph. SyncBatchNorm (and any
loss computed over all ranks' samples) needs one the gradient flows through:

``AllReduceSum``: forward ``y = sum over ranks r of x_r``. Every rank computes the same ``y`` and
uses it in its own loss ``L_r``; the total objective is ``sum_r L_r``, so the gradient with respect
to rank ``r``'s ``x`` is ``sum over ranks r' of dL_r'/dy``: the backward is an all-reduce of the
upstream gradients, the same on every rank. (With ``DistributedOptimizer`` dividing the parameter
gradients by ``W``, the objective is the mean of the ranks' losses, as one process's loss over the
global batch.)
"""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor
from .collectives import reduce_array_
from .group import default_group


class AllReduceSum(Function):
    """``y = sum_r x_r`` over the ranks  ->  ``grad_x = sum_r grad_y_r`` (the same on all ranks)."""

    @staticmethod
    def forward(ctx, x):
        out = x.copy()
        reduce_array_(default_group(), out, ctx.device, "sum")
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if isinstance(grad_out, Tensor):  # create_graph: the adjoint is itself an all-reduce
            return AllReduceSum.apply(grad_out)
        grad_x = grad_out.copy()
        reduce_array_(default_group(), grad_x, ctx.device, "sum")
        return grad_x


def all_reduce(input: Tensor, op: str = "sum") -> Tensor:
    """A new tensor: the sum (``"sum"``) or mean (``"avg"``) of ``input`` over all ranks, recorded
    in the graph so gradients flow back to every rank's ``input``
    (``torch.distributed.nn.functional.all_reduce``).

    Example:
        >>> total = dist.functional.all_reduce(x.sum(), op="sum")   # differentiable
    """
    if op not in ("sum", "avg"):
        raise ValueError(f"functional.all_reduce: op must be 'sum' or 'avg', got {op!r}")
    out = AllReduceSum.apply(input)
    return out / default_group().world_size if op == "avg" else out
