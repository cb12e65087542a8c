"""Linear algebra: ``matmul`` for 1-D, 2-D and batched inputs with broadcast batch dimensions, and
``linear`` (``x @ w.T + b``), the fully connected layer as one op (``tn.nn.functional.linear`` is
this function; ``tn.nn.Linear`` calls it)."""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .namespace import tensor_namespace
from .operands import binary_operands, promote, unary_operand

__all__ = ["matmul"]


class MatMulOp(Op):
    """a @ b  ->  grad_a = g @ b^T,  grad_b = a^T @ g   (1-D operands are promoted to matrices and
    back; summing over broadcast batch dimensions is done by the engine)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(0, 1)
        return ctx.xp.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b = ctx.saved_inputs
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


@tensor_method
@tensor_namespace.register
def matmul(a, b) -> Tensor:
    """``a @ b``: matrix product, with NumPy's rules for 1-D operands and batch dimensions."""
    a, b = binary_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                         f"({ka} != {kb})")
    return MatMulOp.apply(a, b)


class LinearOp(Op):
    """x @ w^T + b  ->  grad_x = g @ w,  grad_w = g^T @ x,  grad_b = sum(g, axis=0)
    (x: (N, in), w: (out, in), b: (out,) or absent)"""

    # One op instead of transpose + matmul + add: the weight gradient comes out of one product
    # already in w's (out, in) layout (a transposed view would be copied into .grad), and the
    # graph has one node per layer.

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.save_inputs(0, 1)
        out = ctx.xp.matmul(x, ctx.xp.swapaxes(w, 0, 1))  # BLAS reads w^T in place: no copy
        if b is not None:
            out += b  # out is fresh: add the bias in place
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, w = ctx.saved_inputs
        needs = ctx.needs_input_grad
        grad_x = xp.matmul(g, w) if needs[0] else None  # (N, in)
        grad_w = xp.matmul(xp.swapaxes(g, 0, 1), x) if needs[1] else None  # (out, in)
        if len(needs) == 2:  # called without a bias
            return grad_x, grad_w
        return grad_x, grad_w, (g.sum(axis=0) if needs[2] else None)  # (out,)


def linear(input, weight, bias=None) -> Tensor:  # noqa: A002 - PyTorch's name
    """``input @ weight.T + bias`` for inputs ``(*, D_in)``: the fully connected layer as one op
    (``tn.nn.functional.linear``; leading dimensions are flattened into one product).

    Args:
        input: ``(*, D_in)``.
        weight: ``(D_out, D_in)``.
        bias: ``(D_out,)`` or ``None``.

    Returns:
        ``(*, D_out)``.

    Example:
        >>> y = tn.nn.functional.linear(tn.randn(2, 3), tn.randn(4, 3), tn.zeros(4))  # (2, 4)
    """
    x, weight = unary_operand(input), unary_operand(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{tuple(weight.shape)} for input of shape {tuple(x.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {tuple(x.shape)} does not match weight of shape "
                         f"{tuple(weight.shape)} (expected {weight.shape[1]} input features in "
                         "the last dimension)")
    if bias is not None:
        bias = unary_operand(bias)
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) for weight of "
                             f"shape {tuple(weight.shape)}, got {tuple(bias.shape)}")
    x, weight = promote(x, weight)
    if bias is not None and bias.dtype != weight.dtype:  # e.g. a float64 bias: all three promote
        bias, weight = promote(bias, weight)
        x, weight = promote(x, weight)
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if x.ndim == 2:
        return LinearOp.apply(*tensors)
    lead = x.shape[:-1]
    out = LinearOp.apply(x.reshape(-1, x.shape[-1]), *tensors[1:])  # (prod(lead), out)
    return out.reshape(*lead, weight.shape[0])
