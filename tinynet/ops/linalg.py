"""Linear algebra: ``matmul`` for 1-D, 2-D and batched inputs with broadcast batch dimensions."""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor, binary_operands


class MatMul(Function):
    """a @ b  ->  grad_a = g @ b^T,  grad_b = a^T @ g   (1-D operands are promoted to matrices and
    back; summing over broadcast batch dimensions is done by the engine)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is 0-d
            return (g * b if need_a else None), (g * a if need_b else None)
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a  # (n,) -> (1, n)
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b  # (n,) -> (n, 1)
        if a.ndim == 1:
            g = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])  # (..., m) -> (..., 1, m)
        if b.ndim == 1:
            g = g.reshape(g.shape + (1,))  # (..., m) -> (..., m, 1)
        grad_a = grad_b = None
        if need_a:
            grad_a = xp.matmul(g, xp.swapaxes(b2, -1, -2))  # (..., M, K)
            if a.ndim == 1:
                grad_a = grad_a.reshape(grad_a.shape[:-2] + grad_a.shape[-1:])
        if need_b:
            grad_b = xp.matmul(xp.swapaxes(a2, -1, -2), g)  # (..., K, N)
            if b.ndim == 1:
                grad_b = grad_b.reshape(grad_b.shape[:-1])
        return grad_a, grad_b


def matmul(a, b) -> Tensor:
    a, b = binary_operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                         f"({ka} != {kb})")
    return MatMul.apply(a, b)
