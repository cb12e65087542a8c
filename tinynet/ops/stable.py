"""Ops fused for numerical stability: ``logsumexp``, ``softmax``, ``log_softmax``.

Each subtracts the maximum before exponentiating (log-sum-exp shift), so logits of +-1e4 neither
overflow nor turn into NaN; composing them from ``exp``/``sum``/``log`` would overflow at ~89 in
float32. Their backward formulas use only the saved input/output, so they are twice differentiable.
"""

from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor, unary_operand
from .reduce import _pick, keepdims_shape, normalize_axes


def _shifted(x, axis):
    """x - max(x) along axis: every exponent is <= 0, so nothing overflows. A slice that is all
    -inf gives NaN, as in PyTorch (logsumexp, below, returns -inf for it instead)."""
    return x - x.max(axis=axis, keepdims=True)


class LogSumExp(Function):
    """log(sum(exp(x), axes))  ->  grad_x = g * exp(x - out)   (= g * softmax(x))"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = ctx.xp
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        m = x.max(axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
        if not keepdims:
            out = out.reshape(tuple(s for i, s in enumerate(x.shape)
                                    if axis is not None and i not in axis))
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        return g.reshape(ctx.kd_shape) * ctx.xp.exp(x - out.reshape(ctx.kd_shape))


class Softmax(Function):
    """exp(x) / sum(exp(x), axis)  ->  grad_x = out * (g - sum(g * out, axis))"""

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = axis
        e = xp.exp(_shifted(x, axis))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return out * (g - (g * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """x - logsumexp(x, axis)  ->  grad_x = g - exp(out) * sum(g, axis)"""

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = axis
        shifted = _shifted(x, axis)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g - ctx.xp.exp(out) * g.sum(axis=ctx.axis, keepdims=True)


def logsumexp(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    x = unary_operand(x)
    axis, keepdims = _pick(axis, keepdims, dim, keepdim)
    return LogSumExp.apply(x, normalize_axes(axis, x.ndim), bool(keepdims))


def _one_axis(x: Tensor, axis, dim) -> int:
    axis = axis if dim is None else dim
    axes = normalize_axes(axis, x.ndim)
    if axes is None:
        return None
    if len(axes) != 1:
        raise ValueError(f"softmax/log_softmax take one axis, got {axis}")
    return axes[0]


def softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    x = unary_operand(x)
    return Softmax.apply(x, _one_axis(x, axis, dim))


def log_softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    x = unary_operand(x)
    return LogSoftmax.apply(x, _one_axis(x, axis, dim))
