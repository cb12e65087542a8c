"""Ops fused for numerical stability: ``logsumexp``, ``softmax``, ``log_softmax`` and
``softmax_cross_entropy`` (log-softmax + negative log-likelihood of class indices, in one op).

Each subtracts the maximum before exponentiating (log-sum-exp shift), so logits of +-1e4 neither
overflow nor turn into NaN; composing them from ``exp``/``sum``/``log`` would overflow at ~89 in
float32. Their backward formulas use only the saved input/output, so they are twice differentiable
(``softmax_cross_entropy`` rebuilds its softmax from the input under ``create_graph``).
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


class SoftmaxCrossEntropy(Function):
    """sum_i w_i (logsumexp(x_i) - x_i[y_i]) / d  ->  grad_x = g w_i (softmax(x_i) - onehot(y_i)) / d
    (x: (M, C) logits, y: (M,) class indices, w: (M,) row weights or 1; d = sum(w) for 'mean',
    1 for 'sum'; 'none' returns the (M,) terms, and g is then (M,))"""

    # One op for the usual classification loss: the gradient is softmax minus the one-hot target,
    # formed once, instead of the backward passes of log_softmax, an index, a product and a mean.

    @staticmethod
    def forward(ctx, x, labels, weights=None, reduction="mean"):
        xp = ctx.xp
        rows = xp.arange(x.shape[0])
        shifted = _shifted(x, 1)
        e = xp.exp(shifted)
        total = e.sum(axis=1)  # (M,)
        loss = xp.log(total) - shifted[rows, labels]  # (M,)  -log softmax(x)[y]
        if weights is not None:
            loss *= weights
        e /= total[:, None]  # softmax(x): what backward needs
        ctx.prob, ctx.rows, ctx.labels = e, rows, labels
        ctx.weights, ctx.reduction = weights, reduction
        ctx.save_for_backward(x)
        if reduction == "none":
            return loss
        out = loss.sum()
        if reduction == "mean":
            ctx.denom = x.shape[0] if weights is None else weights.sum()
            out = out / ctx.denom
        return out

    @staticmethod
    def backward(ctx, g):
        labels, weights = ctx.labels, ctx.weights
        coef = g / ctx.denom if ctx.reduction == "mean" else g  # () or (M,)
        if weights is not None:
            coef = coef * weights  # (M,)
        if coef.ndim:
            coef = coef.reshape(-1, 1)  # (M, 1)
        if isinstance(g, Tensor):  # create_graph: a softmax built from x, so it differentiates
            (x,) = ctx.saved_tensors
            onehot = x.device.xp.zeros(x.shape, dtype=x.dtype)
            onehot[ctx.rows, labels] = 1
            return (softmax(x, 1) - Tensor._make(onehot, x.device)) * coef
        grad = ctx.prob * coef  # (M, C), fresh: the saved softmax stays intact for retain_graph
        grad[ctx.rows, labels] -= coef[:, 0] if coef.ndim else coef
        return grad


def softmax_cross_entropy(logits, labels, weights=None, reduction: str = "mean") -> Tensor:
    """Cross entropy of ``(M, C)`` logits against ``(M,)`` integer class indices, as one op.

    ``-w_i * log softmax(logits_i)[labels_i]`` per row, summed (``"sum"``), divided by ``sum(w)``
    (``"mean"``; by M without weights) or returned per row (``"none"``). ``weights`` are constants
    (no gradient flows to them): row weights, 0 for rows to ignore. ``tn.nn.functional.cross_entropy``
    builds on this and handles class weights, ``ignore_index`` and extra dimensions.
    """
    logits, labels = unary_operand(logits), unary_operand(labels)
    name = "softmax_cross_entropy"
    if logits.ndim != 2:
        raise ValueError(f"{name}: logits must be (M, C), got shape {tuple(logits.shape)}")
    if labels.dtype.kind not in "iu" or tuple(labels.shape) != logits.shape[:1]:
        raise ValueError(f"{name}: labels must be integers of shape ({logits.shape[0]},) for "
                         f"logits of shape {tuple(logits.shape)}, got {labels.dtype} of shape "
                         f"{tuple(labels.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if labels.device is not logits.device:
        raise RuntimeError(f"{name}: logits are on {logits.device} but labels on {labels.device}")
    w = None
    if weights is not None:
        weights = unary_operand(weights)
        if tuple(weights.shape) != logits.shape[:1] or weights.device is not logits.device:
            raise ValueError(f"{name}: weights must have shape ({logits.shape[0]},) on "
                             f"{logits.device}, got {tuple(weights.shape)} on {weights.device}")
        w = weights.data.astype(logits.dtype, copy=False)
    return SoftmaxCrossEntropy.apply(logits, labels.data, w, reduction)
