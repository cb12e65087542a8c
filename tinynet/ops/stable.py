"""Ops fused for numerical stability: ``logsumexp``, ``softmax``, ``log_softmax``,
``softmax_cross_entropy`` (log-softmax + negative log-likelihood of class indices, in one op) and
``binary_cross_entropy`` (of probabilities, with PyTorch's clamped logs and gradient).

Each subtracts the maximum before exponentiating (log-sum-exp shift), so logits of +-1e4 neither
overflow nor turn into NaN; composing them from ``exp``/``sum``/``log`` would overflow at ~89 in
float32. Their backward formulas use only the saved input/output, so they are twice differentiable
(``softmax_cross_entropy`` rebuilds its softmax from the input under ``create_graph``).
"""

from __future__ import annotations

import math

from .. import backend
from ..autograd import Op
from ..backend import checks as backend_checks
from ..backend import kernels
from ..tensor import Tensor, tensor_method
from .operands import dim_alias, keepdim_alias, keepdim_shape, normalize_dims, unary_operand

__all__ = ["log_softmax", "logsumexp", "softmax"]

_NO_IGNORE = -(2**63)  # no int64 label equals it: "no label is ignored"


def _shifted(x, dim):
    """x - max(x) along dim: every exponent is <= 0, so nothing overflows. A slice that is all
    -inf gives NaN, as in PyTorch (logsumexp, below, returns -inf for it instead). An empty
    slice has no maximum and needs no shift."""
    if x.size == 0:
        return x
    return x - x.max(axis=dim, keepdims=True)


class LogSumExpOp(Op):
    """log(sum(exp(x), dims))  ->  grad_x = g * exp(x - out)   (= g * softmax(x))"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, dims=None, keepdim=False):
        xp = ctx.xp
        ctx.kd_shape = keepdim_shape(x.shape, dims)
        if x.size == 0:  # the log of an empty sum: -inf (a (0, n) input gives an empty result)
            out = xp.full(ctx.kd_shape, -xp.inf, dtype=x.dtype)
        else:
            m = x.max(axis=dims, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)
            out = xp.log(xp.exp(x - m).sum(axis=dims, keepdims=True)) + m
        if not keepdim:
            out = out.reshape(tuple(s for i, s in enumerate(x.shape)
                                    if dims is not None and i not in dims))
        ctx.save_inputs(0)
        ctx.save_output()
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        kd_shape = ctx.kd_shape
        return g.reshape(kd_shape) * ctx.xp.exp(x - ctx.saved_output.reshape(kd_shape))


@tensor_method
def logsumexp(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """``log(sum(exp(x), dim))`` without overflow (None: over all dims)."""
    x = unary_operand(x)
    dims = normalize_dims(dim_alias("logsumexp", dim, axis), x.ndim, "logsumexp")
    return LogSumExpOp.apply(x, dims=dims, keepdim=keepdim_alias("logsumexp", keepdim, keepdims))


def _one_dim(x: Tensor, dim, axis, op: str):
    """softmax's dim: one int (default -1), or None for all dims."""
    dim = dim_alias(op, dim, axis, default=-1)
    dims = normalize_dims(dim, x.ndim, op)
    if dims is None:
        return None
    if len(dims) != 1:
        raise ValueError(f"{op}: takes one dim, got {dim}")
    return dims[0]


class SoftmaxOp(Op):
    """exp(x) / sum(exp(x), dim)  ->  grad_x = out * (g - sum(g * out, dim))"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, dim=-1):
        xp = ctx.xp
        ctx.dim = dim
        e = xp.exp(_shifted(x, dim))
        ctx.save_output()
        return e / e.sum(axis=dim, keepdims=True)

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved_output
        return out * (g - (g * out).sum(axis=ctx.dim, keepdims=True))


@tensor_method
def softmax(x, dim=-1, *, axis=None) -> Tensor:
    """``exp(x) / sum(exp(x), dim)``, shifted by the maximum so it never overflows."""
    x = unary_operand(x)
    return SoftmaxOp.apply(x, dim=_one_dim(x, dim, axis, "softmax"))


class LogSoftmaxOp(Op):
    """x - logsumexp(x, dim)  ->  grad_x = g - exp(out) * sum(g, dim)"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, dim=-1):
        xp = ctx.xp
        ctx.dim = dim
        shifted = _shifted(x, dim)
        ctx.save_output()
        return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))

    @staticmethod
    def backward(ctx, g):
        return g - ctx.xp.exp(ctx.saved_output) * g.sum(axis=ctx.dim, keepdims=True)


@tensor_method
def log_softmax(x, dim=-1, *, axis=None) -> Tensor:
    """``x - logsumexp(x, dim)``: log-probabilities, computed without overflow."""
    x = unary_operand(x)
    return LogSoftmaxOp.apply(x, dim=_one_dim(x, dim, axis, "log_softmax"))


class SoftmaxCrossEntropyOp(Op):
    """sum_i w_i (logsumexp(x_i) - x_i[y_i]) / d  ->  grad_x = g w_i (softmax(x_i) - onehot(y_i)) / d
    (x: (M, C) logits, y: (M,) class indices, w: (M,) row weights or 1, and 0 where y_i is
    ignore_index; d = sum(w) for 'mean', 1 for 'sum'; 'none' returns the (M,) terms, and g is
    then (M,))"""

    result_dtype = "float"

    # One op for the usual classification loss: the gradient is softmax minus the one-hot target,
    # formed once, instead of the backward passes of log_softmax, an index, a product and a mean.
    # Two ways to run it, the same numbers:
    # * on a GPU (and the stand-in device) with fused kernels: 5 launches forward (row max, sum of
    #   exp, the per-row kernel, one sum, one divide) and 1 backward (kernels.CE_GRAD, which
    #   recomputes the softmax from x: nothing (M, C) is kept). The per-row kernel checks the
    #   labels: one out of range gives a NaN loss and sets a flag that raises at the next read;
    # * on the CPU with NumPy calls on the labels checked at the call, keeping the softmax from
    #   forward for backward: fewer passes over the data, which is what costs in NumPy.

    @staticmethod
    def forward(ctx, x, *, labels=None, weights=None, ignore_index=_NO_IGNORE, reduction="mean",
                _caller=("softmax_cross_entropy", None), _plain=False):
        # _caller (the public function and input shape, for error messages) and _plain (no label
        # to ignore) are plumbing: a leading underscore keeps them out of traces and graphs
        ctx.labels, ctx.weights, ctx.reduction, ctx.ignore_index = labels, weights, reduction, \
            ignore_index
        ctx.save_inputs(0)
        if ctx.xp.name == "numpy":
            return _forward_on_host(ctx, x, labels, weights, _plain)
        xp = ctx.xp
        rows, classes = x.shape
        m = x.max(axis=1, keepdims=True)  # (M, 1): the log-sum-exp shift
        s = kernels.SUM_EXP(xp, x, m, axis=1, keepdims=True)  # (M, 1): sum_c exp(x - m)
        per_row = xp.empty((rows, 2), dtype=x.dtype)  # (M, 2): w_i * loss_i, w_i
        checks = backend_checks.of(ctx.device)
        slot = checks.slot(("labels", _caller[0], classes, ignore_index), ValueError,
                           _label_message(_caller, classes, ignore_index, ctx.device))
        kernels.CE_ROWS(xp, s.reshape(-1), m.reshape(-1), labels, 1.0 if weights is None
                        else weights, x, classes, ignore_index, math.nan, slot, per_row,
                        checks.flags)
        checks.launched(slot)  # raised at the next read if the kernel flagged a label
        ctx.save_constant(m, s)
        if reduction == "none":
            return per_row[:, 0]
        if reduction == "sum":
            return per_row[:, 0].sum()
        sums = per_row.sum(axis=0)  # (2,): the weighted loss, the total weight
        ctx.denom = sums[1]
        return sums[0] / ctx.denom

    @staticmethod
    def backward(ctx, g):
        mean, rows = ctx.reduction == "mean", ctx.labels.shape[0]
        if ctx.create_graph:  # a softmax rebuilt from x, so that the gradient differentiates
            return _softmax_ce_graph(ctx, g, mean)
        if ctx.xp.name == "numpy":
            coef = g / ctx.denom if mean else g  # () or (M,)
            prob, safe, weights = ctx.saved_constants
            if weights is not None:
                coef = coef * weights  # (M,)
            if coef.ndim:
                coef = coef.reshape(-1, 1)  # (M, 1)
            grad = prob * coef  # (M, C), fresh: the saved softmax stays intact for retain_graph
            grad[ctx.xp.arange(rows), safe] -= coef[:, 0] if coef.ndim else coef
            return grad
        (x,) = ctx.saved_inputs
        m, s = ctx.saved_constants
        weights = 1.0 if ctx.weights is None else ctx.weights.reshape(rows, 1)
        g = g.reshape(rows, 1) if ctx.reduction == "none" else g
        return kernels.CE_GRAD(ctx.xp, x, m, s, ctx.labels.reshape(rows, 1), weights, g,
                               ctx.denom if mean else 1.0, x.shape[1], ctx.ignore_index,
                               math.nan)


def _forward_on_host(ctx, x, labels, weights, plain: bool):
    """The CPU forward: labels already checked; ``plain`` when none equals ``ignore_index``."""
    xp = ctx.xp
    if not plain:  # ignored rows: weight 0, and a label that is safe to index with
        keep = labels != ctx.ignore_index
        labels = xp.where(keep, labels, 0)
        weights = keep.astype(x.dtype) if weights is None else weights * keep
    shifted = _shifted(x, 1)
    e = xp.exp(shifted)
    total = e.sum(axis=1)  # (M,)
    loss = xp.log(total) - shifted[xp.arange(x.shape[0]), labels]  # (M,)  -log softmax(x)[y]
    if weights is not None:
        loss *= weights
    e /= total[:, None]  # softmax(x): what a first-order backward needs
    ctx.save_constant(e, labels, weights)
    if ctx.reduction == "none":
        return loss
    out = loss.sum()
    if ctx.reduction == "mean":
        ctx.denom = x.shape[0] if weights is None else weights.sum()
        out = out / ctx.denom
    return out


def _softmax_ce_graph(ctx, g, mean: bool):
    """The gradient as tinynet ops, for ``create_graph``: (softmax(x) - onehot) * coef."""
    (x,) = ctx.saved_inputs
    raw = ctx.device.xp
    labels = ctx.labels
    valid = labels != ctx.ignore_index  # (M,)
    safe = raw.where(valid, labels, 0)
    weight = valid.astype(x.dtype) if ctx.weights is None else ctx.weights * valid  # (M,)
    onehot = raw.zeros(x.shape, dtype=x.dtype)  # (M, C)
    onehot[raw.arange(labels.shape[0]), safe] = 1
    coef = (g / ctx.denom if mean else g) * Tensor.wrap(weight, ctx.device)  # () or (M,) -> (M,)
    return (softmax(x, 1) - Tensor.wrap(onehot, ctx.device)) * coef.reshape(-1, 1)


def _label_message(caller: tuple, classes: int, ignore_index: int, device):
    """The wording of a bad-label error (made only when one is raised)."""

    def message(count: int, label: int) -> str:
        name, shape = caller
        ignore = "" if ignore_index == _NO_IGNORE else f" (or ignore_index={ignore_index})"
        of = "" if shape is None else f"input of shape {tuple(shape)} with "
        where = "" if device.type == "cpu" else (
            f"; checked on {device} and reported at the first read of a value after it")
        return (f"{name}: target labels must be in [0, {classes - 1}]{ignore} for {of}{classes} "
                f"classes; got label {label} ({count} out of range){where}")
    return message


def softmax_cross_entropy(logits, labels, weights=None, reduction: str = "mean", *,
                          ignore_index: int | None = None) -> Tensor:
    """Cross entropy of ``(M, C)`` logits against ``(M,)`` integer class indices, as one op.

    ``-w_i * log softmax(logits_i)[labels_i]`` per row, summed (``"sum"``), divided by ``sum(w)``
    (``"mean"``; by the number of rows counted without weights) or returned per row (``"none"``).
    ``weights`` are constants (no gradient flows to them): row weights, 0 for rows to ignore. Rows
    whose label equals ``ignore_index`` count with weight 0. A label outside ``[0, C)`` raises
    ``ValueError`` (at once on the CPU; on a GPU at the next read of a value, the loss being NaN
    meanwhile). ``tn.nn.functional.cross_entropy`` builds on this and handles class weights and
    extra dimensions.
    """
    return _softmax_cross_entropy(logits, labels, weights, reduction, ignore_index)


def _softmax_cross_entropy(logits, labels, weights, reduction, ignore_index, caller=None):
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
        # the loss's dtype: the logits', or float32 for integer logits (result_dtype "float")
        dtype = logits.dtype if logits.dtype.kind == "f" else backend.get_default_dtype()
        w = weights.data.astype(dtype, copy=False)
    ignore_index = _NO_IGNORE if ignore_index is None else int(ignore_index)
    caller = caller or (name, logits.shape)
    device, classes = logits.device, logits.shape[1]
    plain = False
    if device.type == "cpu" and labels.data.size:  # in host memory: check now, it is free
        low, high = device.read_scalars(labels.data.min(), labels.data.max())
        plain = 0 <= low and high < classes and not 0 <= ignore_index < classes
        if not plain:
            backend_checks.index_range(
                device.xp, device, labels.data, 0, classes, None, ValueError,
                _label_message(caller, classes, ignore_index, device),
                exempt=None if ignore_index == _NO_IGNORE else ignore_index)
    return SoftmaxCrossEntropyOp.apply(logits, labels=labels.data, weights=w,
                                       reduction=reduction, ignore_index=ignore_index,
                                       _caller=caller, _plain=plain)


_TINY = 1e-44  # below exp(-100) (~3.7e-44), also as a float32 subnormal: log(_TINY) < -100


class BinaryCrossEntropyOp(Op):
    """-(y max(log p, -100) + (1 - y) max(log(1 - p), -100))  ->
    grad_p = g (p - y) / max(p (1 - p), 1e-12),  grad_y = g (log(1 - p) - log(p))
    (PyTorch's formulas: at p = 0 or 1 the loss is finite, 100, and the gradient +-1e12)"""

    result_dtype = "float"

    # The logs are clamped at -100, as PyTorch's BCE does, so p = 0 or 1 gives a finite loss;
    # the gradient is PyTorch's too, with the denominator kept from 0 (not the clamped logs'
    # zero slope, which would hide a saturated prediction from training).

    @staticmethod
    def forward(ctx, p, y):
        xp = ctx.xp
        ctx.save_inputs(0, 1)
        # max(log(max(p, tiny)), -100) is max(log p, -100) without taking log(0) (no warning)
        log_p = xp.maximum(xp.log(xp.maximum(p, _TINY)), -100.0)
        log_q = xp.maximum(xp.log(xp.maximum(1 - p, _TINY)), -100.0)
        return -(y * log_p + (1 - y) * log_q)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        p, y = ctx.saved_inputs
        need_p, need_y = ctx.needs_input_grad
        grad_p = g * (p - y) / xp.maximum(p * (1 - p), 1e-12) if need_p else None
        grad_y = g * (xp.log(1 - p) - xp.log(p)) if need_y else None
        return grad_p, grad_y


def binary_cross_entropy(p, y) -> Tensor:
    """The elementwise binary cross entropy of probabilities ``p`` against targets ``y`` (same
    shape), as one op: ``tn.nn.functional.binary_cross_entropy`` checks its arguments, weights
    and reduces these terms."""
    p, y = unary_operand(p), unary_operand(y)
    if p.shape != y.shape:
        raise ValueError(f"binary_cross_entropy: target shape {tuple(y.shape)} must be the input "
                         f"shape {tuple(p.shape)}")
    return BinaryCrossEntropyOp.apply(p, y if y.dtype == p.dtype else y.to(p.dtype))
