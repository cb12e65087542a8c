"""Normalisation primitives: ``LayerNormOp`` and ``BatchNormOp`` (normalise with the statistics of
the input itself), ``BatchNormEvalOp`` (normalise with given per-channel statistics).

Notation. ``x`` is standardised over a set of axes (layer norm: the last k dims of each sample;
batch norm: every dim but the channel dim 1), ``n`` values per group:

    mu = mean(x),  var = mean((x - mu)^2)  (biased),  r = 1 / sqrt(var + eps),  xh = (x - mu) r
    y = xh * w + b

and the gradient of a loss L with ``g = dL/dy``, ``gh = g * w`` (the gradient reaching xh), means
over the same axes:

    grad_x = r * (gh - mean(gh) - xh * mean(gh * xh))
    grad_w = sum(g * xh) over the axes w is broadcast along,   grad_b = sum(g) over the same

(``mean(gh)`` removes what moving every x of a group by the same amount does, ``xh * mean(gh *
xh)`` what scaling them does: y is invariant to both.) With given statistics (eval mode) y is a
per-channel affine map of x, and the mean and variance get gradients of their own, which
SyncBatchNorm's global statistics (graph tensors) need.

Saving: forward keeps x (an input) and, for a first-order backward, ``xh`` and ``r`` (constants:
no second pass over x). A constant is invisible to a second derivative, so under ``create_graph``
backward recomputes ``xh`` and ``r`` from the saved x with ``ctx.xp`` (tinynet ops then) and runs the
same formula: the gradient is recorded and differentiable again (``tn.gradgradcheck``).

The functions here are the primitives' faces; ``tn.nn.functional.layer_norm`` is ``layer_norm``
itself, ``tn.nn.functional.batch_norm`` (PyTorch's signature, running statistics updated in
``tinynet/nn/normalization.py``) calls ``batch_norm_train`` or ``batch_norm_eval``. The compositions
of smaller primitives these replace are kept as the reference they are tested against
(``tinynet/testing/norm_reference.py``).
"""

from __future__ import annotations

import functools
import math

from ..autograd import Op
from ..tensor import Tensor
from .convert import cast
from .operands import result_dtype

__all__: list = []  # nothing on tn itself: the norms are reached through tn.nn.functional


def _standardize(xp, x, axes, eps):
    """(xh, r, mean, var): x standardised over ``axes`` with the biased variance, 1 / sqrt(var +
    eps), and the mean and variance themselves, the last three with size-1 ``axes``. The same
    code on arrays and, under create_graph, on Tensors (two passes: no E[x^2] - E[x]^2
    cancellation)."""
    scale = 1.0 / math.prod(x.shape[a] for a in axes)
    mean = x.sum(axis=axes, keepdims=True) * scale
    centered = x - mean
    var = (centered * centered).sum(axis=axes, keepdims=True) * scale
    r = (var + eps) ** -0.5
    return centered * r, r, mean, var


def _common_dtype(*tensors) -> list:
    """The tensors (None kept) in their promoted dtype when they differ (float32 input with a
    float64 layer gives float64, as the compositions did), each cast a recorded op: gradients
    return in every input's own dtype. The primitives then see one dtype."""
    dtypes = {t.dtype for t in tensors if t is not None}
    if len(dtypes) < 2:
        return list(tensors)
    dtype = functools.reduce(result_dtype, dtypes)
    return [None if t is None else cast(t, dtype) for t in tensors]


def _affine_args(weight, bias) -> list:
    return [t for t in (weight, bias) if t is not None]


def _affine(needs, has_weight: bool, has_bias: bool, grad_w, grad_b) -> tuple:
    """The trailing gradients of the optional weight and bias inputs, in their order."""
    return ((grad_w if needs[0] else None,) if has_weight else ()) + \
        ((grad_b if needs[-1] else None,) if has_bias else ())


# --- layer norm ---------------------------------------------------------------------------------


class LayerNormOp(Op):
    """xh = (x - mean) / sqrt(var + eps) over the last k dims (biased var), y = xh * w + b  ->
    grad_x = r (gh - mean(gh) - xh mean(gh xh)) with gh = g w, r = 1 / sqrt(var + eps), means
    over the last k dims; grad_w = sum(g xh), grad_b = sum(g) over the leading dims"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *affine, normalized_ndim=1, eps=1e-5, has_weight=False, has_bias=False):
        axes = tuple(range(x.ndim - normalized_ndim, x.ndim))
        ctx.axes, ctx.eps, ctx.has_weight, ctx.has_bias = axes, eps, has_weight, has_bias
        xh, r, _, _ = _standardize(ctx.xp, x, axes, eps)
        ctx.save_inputs(*range(1 + has_weight))  # x, and w (gh = g * w)
        ctx.save_constant(xh, r)  # first order only: recomputed from x under create_graph
        y = xh * affine[0] if has_weight else xh
        return y + affine[-1] if has_bias else y

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_inputs
        x, w = saved[0], (saved[1] if ctx.has_weight else None)
        axes = ctx.axes
        xp = ctx.xp
        xh, r = _standardize(xp, x, axes, ctx.eps)[:2] if ctx.create_graph \
            else ctx.saved_constants
        needs = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if needs[0]:
            gh = g if w is None else g * w
            scale = 1.0 / math.prod(x.shape[a] for a in axes)
            mean_gh = gh.sum(axis=axes, keepdims=True) * scale
            mean_ghxh = (gh * xh).sum(axis=axes, keepdims=True) * scale
            grad_x = (gh - mean_gh - xh * mean_ghxh) * r
        lead = tuple(range(x.ndim - len(axes)))  # the dims w and b are broadcast along
        if ctx.has_weight and needs[1]:
            grad_w = (g * xh).sum(axis=lead) if lead else g * xh
        if ctx.has_bias and needs[-1]:
            grad_b = g.sum(axis=lead) if lead else g
        return (grad_x, *_affine(needs[1:], ctx.has_weight, ctx.has_bias, grad_w, grad_b))


def _as_shape(normalized_shape, owner: str) -> tuple[int, ...]:
    from ..nn.arguments import integer  # here: importing tinynet.nn at load would be circular

    sizes = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return tuple(integer(owner, "normalized_shape", s, minimum=1) for s in sizes)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dimensions of each sample
    (``torch.nn.functional.layer_norm``).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance; ``weight`` and
    ``bias`` (each optional) have shape ``normalized_shape``. The same in training and eval.

    Example:
        >>> y = tn.nn.functional.layer_norm(tn.randn(2, 5, 8), (8,))
    """
    shape = _as_shape(normalized_shape, "layer_norm")
    k = len(shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} must match the trailing "
                         f"dimensions of the input, got input of shape {tuple(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(t.shape)}, expected "
                             f"normalized_shape {shape}")
    input, weight, bias = _common_dtype(input, weight, bias)
    return LayerNormOp.apply(input, *_affine_args(weight, bias), normalized_ndim=k, eps=eps,
                             has_weight=weight is not None, has_bias=bias is not None)


# --- batch norm ---------------------------------------------------------------------------------


def _channel_shape(x) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)  # (1, C, 1, ...): broadcasts over x


class BatchNormOp(Op):
    """xh = (x - mean) / sqrt(var + eps) per channel over every dim but 1 (batch statistics,
    biased var), y = xh * w + b  ->  grad_x = w r (g - (sum(g) + xh sum(g xh)) / n),
    grad_w = sum(g xh), grad_b = sum(g), sums per channel over n values, r = 1 / sqrt(var + eps)"""

    result_dtype = "float"

    # The general formula's means of gh = g w are w * sum(g) / n and w * sum(g xh) / n here (w is
    # constant over the reduced dims), and those two sums are grad_b and grad_w: computed once.

    @staticmethod
    def forward(ctx, x, *affine, eps=1e-5, has_weight=False, has_bias=False, _stats=None):
        # _stats (plumbing, out of traces): a list that receives the batch mean and biased
        # variance, (C,) arrays, for the running statistics that nn.functional.batch_norm updates
        axes = (0,) + tuple(range(2, x.ndim))
        ctx.axes, ctx.eps, ctx.has_weight, ctx.has_bias = axes, eps, has_weight, has_bias
        xh, r, mean, var = _standardize(ctx.xp, x, axes, eps)
        if _stats is not None:
            _stats.extend((mean.reshape(-1), var.reshape(-1)))  # (C,) each
        ctx.save_inputs(*range(1 + has_weight))  # x, and w
        ctx.save_constant(xh, r)  # first order only: recomputed from x under create_graph
        shape = _channel_shape(x)
        y = xh * affine[0].reshape(shape) if has_weight else xh
        return y + affine[-1].reshape(shape) if has_bias else y

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_inputs
        x = saved[0]
        axes = ctx.axes
        xh, r = _standardize(ctx.xp, x, axes, ctx.eps)[:2] if ctx.create_graph \
            else ctx.saved_constants
        needs = ctx.needs_input_grad
        sum_g = g.sum(axis=axes)  # (C,): grad_b
        sum_gxh = (g * xh).sum(axis=axes)  # (C,): grad_w
        grad_x = None
        if needs[0]:
            shape = _channel_shape(x)
            n = math.prod(x.shape[a] for a in axes)
            coef = r if not ctx.has_weight else r * saved[1].reshape(shape)  # w r, (1, C, 1, ..)
            grad_x = (g - (sum_g.reshape(shape) + xh * sum_gxh.reshape(shape)) * (1.0 / n)) * coef
        return (grad_x, *_affine(needs[1:], ctx.has_weight, ctx.has_bias, sum_gxh, sum_g))


def _check_channels(owner: str, x: Tensor, **tensors) -> None:
    if x.ndim < 2:
        raise ValueError(f"{owner}: input needs a channel dimension, shape (N, C, *), got "
                         f"{tuple(x.shape)}")
    channels = x.shape[1]
    for name, t in tensors.items():
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"{owner}: {name} has shape {tuple(t.shape)}, expected "
                             f"({channels},) for an input with {channels} channels")


def batch_norm_train(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                     eps: float = 1e-5, *, return_stats: bool = False):
    """Batch norm in training mode: each channel (dim 1) of ``input`` ``(N, C, *)`` normalised
    with its own mean and biased variance over all other dims, then ``* weight + bias``.

    With ``return_stats=True`` returns ``(y, mean, var)``: the batch mean and biased variance,
    ``(C,)`` Tensors outside the graph (what running statistics are updated from).

    Example:
        >>> y = tn.ops.batch_norm_train(tn.randn(8, 3, 4), tn.ones(3), tn.zeros(3))
    """
    _check_channels("batch_norm", input, weight=weight, bias=bias)
    if input.numel() // input.shape[1] <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(input.shape)}")
    stats = [] if return_stats else None
    input, weight, bias = _common_dtype(input, weight, bias)
    y = BatchNormOp.apply(input, *_affine_args(weight, bias), eps=eps,
                          has_weight=weight is not None, has_bias=bias is not None, _stats=stats)
    if not return_stats:
        return y
    return (y, *(Tensor.wrap(s, input.device) for s in stats))


class BatchNormEvalOp(Op):
    """y = xh w + b, xh = (x - m) r per channel (dim 1) with given statistics m, v (eval mode's
    running ones), r = 1 / sqrt(v + eps)  ->  grad_x = g w r, grad_m = -w r sum(g),
    grad_v = -w r^2 sum(g xh) / 2, grad_w = sum(g xh), grad_b = sum(g), sums per channel over
    every dim but 1"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, mean, var, *affine, eps=1e-5, has_weight=False, has_bias=False):
        ctx.eps, ctx.has_weight, ctx.has_bias = eps, has_weight, has_bias
        shape = _channel_shape(x)
        r = (var + eps) ** -0.5  # (C,)
        if not any(ctx.needs_input_grad):  # inference: y = x (w r) + (b - m w r), two passes
            scale = r * affine[0] if has_weight else r
            shift = mean * -scale
            if has_bias:
                shift = shift + affine[-1]
            return x * scale.reshape(shape) + shift.reshape(shape)
        xh = (x - mean.reshape(shape)) * r.reshape(shape)
        ctx.save_inputs(*range(3 + has_weight))  # x, m, v (and w)
        ctx.save_constant(xh, r)  # first order only: recomputed from x, m, v under create_graph
        y = xh * affine[0].reshape(shape) if has_weight else xh
        return y + affine[-1].reshape(shape) if has_bias else y

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_inputs
        x, mean, var = saved[:3]
        needs = ctx.needs_input_grad
        shape = _channel_shape(x)
        axes = (0,) + tuple(range(2, x.ndim))
        if ctx.create_graph:
            r = (var + ctx.eps) ** -0.5
            xh = (x - mean.reshape(shape)) * r.reshape(shape)
        else:
            xh, r = ctx.saved_constants
        has_w, has_b = ctx.has_weight, ctx.has_bias
        wr = r * saved[3] if has_w else r  # (C,)
        grad_x = g * wr.reshape(shape) if needs[0] else None
        sum_g = g.sum(axis=axes) if needs[1] or (has_b and needs[-1]) else None  # (C,): grad_b
        sum_gxh = (g * xh).sum(axis=axes) \
            if needs[2] or (has_w and needs[3]) else None  # (C,): grad_w
        grad_m = -(sum_g * wr) if needs[1] else None
        grad_v = sum_gxh * (wr * r * -0.5) if needs[2] else None
        return (grad_x, grad_m, grad_v, *_affine(needs[3:], has_w, has_b, sum_gxh, sum_g))


def batch_norm_eval(input: Tensor, mean: Tensor, var: Tensor, weight: Tensor | None = None,
                    bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Batch norm with given per-channel statistics (eval mode: the running ones):
    ``(input - mean) / sqrt(var + eps) * weight + bias`` along dim 1 of ``(N, C, *)``. Gradients
    flow to ``mean`` and ``var`` too when they require them (SyncBatchNorm's global statistics).

    Example:
        >>> y = tn.ops.batch_norm_eval(tn.randn(8, 3), tn.zeros(3), tn.ones(3))
    """
    _check_channels("batch_norm", input, running_mean=mean, running_var=var, weight=weight,
                    bias=bias)
    input, mean, var, weight, bias = _common_dtype(input, mean, var, weight, bias)
    return BatchNormEvalOp.apply(input, mean, var, *_affine_args(weight, bias), eps=eps,
                                 has_weight=weight is not None, has_bias=bias is not None)
