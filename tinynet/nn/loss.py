"""Loss functions, each as a function (``tn.nn.functional.cross_entropy``) and a Module
(``tn.nn.CrossEntropyLoss``), with ``torch.nn``'s names, arguments, defaults and reductions.
PyTorch's long-deprecated ``size_average``/``reduce`` arguments are not accepted: ``reduction``
says it, and every argument after the tensors (and ``weight``) is keyword-only, so a PyTorch call
that passed them by position fails loudly instead of being read as something else.

Most losses are composed from differentiable tinynet ops, so their gradient (and its gradient)
comes from the ops' own backward formulas. Cross entropy of class indices is one primitive,
``ops.softmax_cross_entropy``, whose backward (softmax minus one-hot) is written out; with label
smoothing or a class weight that requires grad it is composed as ``nll(log_softmax(x))`` instead.
The stable forms: never softmax then log (``log_softmax`` or the fused primitive), BCE-with-logits
through ``softplus`` (never sigmoid then log), so logits of +-1e4 give finite, exact losses.

Layout: shared checks and reductions, the pointwise losses (MSE, L1, smooth L1, Huber, BCE,
BCE-with-logits, KL divergence), the class-index losses (NLL, cross entropy), then the Modules.
"""

from __future__ import annotations

import math
import warnings

from .. import backend, ops
from ..tensor import Tensor
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")

# --- shared checks -------------------------------------------------------------------------------


def _reduction(name: str, reduction: str, allowed: tuple = _REDUCTIONS) -> str:
    """``reduction``, checked to be one of ``allowed``."""
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {', '.join(map(repr, allowed))}, "
                         f"got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _tensor(name: str, what: str, t, *, floating: bool = True) -> Tensor:
    """``t`` checked to be a Tensor (floating-point unless ``floating=False``)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    if floating and t.dtype.kind != "f":
        raise TypeError(f"{name}: {what} must be a floating-point tensor, got {t.dtype} of shape "
                        f"{tuple(t.shape)}; convert it with .float()")
    return t


def _same_device(name: str, input: Tensor, other: Tensor, what: str) -> None:
    if other.device is not input.device:
        raise RuntimeError(f"{name}: input is on {input.device} but {what} is on {other.device}; "
                           "move one of them explicitly with .to()")


def _check_same_shape(name: str, input: Tensor, target: Tensor) -> None:
    if target.shape != input.shape:
        raise ValueError(f"{name}: target size {tuple(target.shape)} must be the same as input "
                         f"size {tuple(input.shape)}")


def _broadcast_shape(a: tuple, b: tuple):
    """NumPy's broadcast of two shapes, or None when they do not broadcast."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)  # align on the right
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return tuple(y if x == 1 else x for x, y in zip(a, b))


def _pointwise_operands(name: str, input, target, *, same_shape: bool = False,
                        warn: bool = True) -> Tensor:
    """Checks for the elementwise losses: a floating input, a tensor target on the same device
    with the input's shape (``same_shape``) or one that broadcasts with it. A different shape warns
    (``warn``), as in PyTorch: ``(N, 1)`` against ``(N,)`` silently gives an ``(N, N)`` loss."""
    _tensor(name, "input", input)
    _tensor(name, "target", target, floating=False)
    _same_device(name, input, target, "target")
    if same_shape:
        _check_same_shape(name, input, target)
    elif target.shape != input.shape:
        if _broadcast_shape(input.shape, target.shape) is None:
            raise ValueError(f"{name}: target of shape {tuple(target.shape)} does not broadcast "
                             f"with input of shape {tuple(input.shape)}")
        if warn:
            warnings.warn(f"{name}: using a target size {tuple(target.shape)} that is different "
                          f"to the input size {tuple(input.shape)}; this will likely lead to "
                          "incorrect results due to broadcasting. Please ensure they have the "
                          "same size.", UserWarning, stacklevel=3)
    return target


def _weighted(name: str, loss: Tensor, reduction: str, weight, input: Tensor,
              weighted_mean: bool = True) -> Tensor:
    """MSE/L1/Huber with ``weight`` (one per element). ``mean`` is sum(w * loss) / sum(w), or, with
    ``weighted_mean=False`` (PyTorch's Huber), the plain mean of w * loss."""
    if weight is None:
        return _reduce(loss, reduction)
    _tensor(name, "weight", weight)
    _same_device(name, input, weight, "weight")
    if weight.shape != input.shape:
        raise ValueError(f"{name}: weight must have the input's shape {tuple(input.shape)}, got "
                         f"{tuple(weight.shape)}")
    loss = loss * weight
    if reduction == "mean" and weighted_mean:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


# --- regression losses ---------------------------------------------------------------------------


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """Mean squared error: ``(input - target)^2``, reduced.

    Args:
        input, target: tensors of the same shape (a broadcastable one warns, as in PyTorch).
        reduction: ``'mean'`` | ``'sum'`` | ``'none'``.
        weight: optional per-element weights (input's shape); ``'mean'`` then divides by their sum.

    Example:
        >>> F.mse_loss(tn.tensor([1.0, 2.0]), tn.tensor([1.0, 4.0]))
        tensor(2.)
    """
    reduction = _reduction("mse_loss", reduction)
    target = _pointwise_operands("mse_loss", input, target)
    diff = input - target
    return _weighted("mse_loss", diff * diff, reduction, weight, input)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """Mean absolute error ``|input - target|`` (gradient 0 where they are equal, as PyTorch).
    Arguments as :func:`mse_loss`."""
    reduction = _reduction("l1_loss", reduction)
    target = _pointwise_operands("l1_loss", input, target)
    return _weighted("l1_loss", ops.abs(input - target), reduction, weight, input)


def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``d = |input - target| < beta``, else ``d - 0.5 beta``.

    ``beta=0`` is the L1 loss (as in PyTorch); with ``beta=b`` it equals
    ``huber_loss(delta=b) / b``.
    """
    name = "smooth_l1_loss"
    reduction = _reduction(name, reduction)
    if beta < 0:
        raise ValueError(f"{name}: beta must be >= 0, got {beta}")
    target = _pointwise_operands(name, input, target)
    if beta == 0:  # the quadratic branch would divide by zero (a NaN gradient through where)
        return _reduce(ops.abs(input - target), reduction)
    diff = input - target
    dist = ops.abs(diff)
    loss = ops.where(dist < beta, diff * diff * (0.5 / beta), dist - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """``0.5 d^2`` where ``d = |input - target| < delta``, else ``delta (d - 0.5 delta)``.
    ``weight`` (input's shape) multiplies each element; unlike :func:`mse_loss`, ``'mean'`` is then
    the plain mean of ``weight * loss`` (as in PyTorch)."""
    name = "huber_loss"
    reduction = _reduction(name, reduction)
    if not delta > 0:
        raise ValueError(f"{name}: delta must be > 0, got {delta}")
    target = _pointwise_operands(name, input, target)
    diff = input - target
    dist = ops.abs(diff)
    loss = ops.where(dist < delta, 0.5 * diff * diff, delta * (dist - 0.5 * delta))
    return _weighted(name, loss, reduction, weight, input, weighted_mean=False)


# --- binary and distribution losses --------------------------------------------------------------


def _broadcast_weight(name: str, what: str, weight, input: Tensor) -> Tensor:
    _tensor(name, what, weight)
    _same_device(name, input, weight, what)
    if _broadcast_shape(input.shape, weight.shape) != tuple(input.shape):
        raise ValueError(f"{name}: {what} of shape {tuple(weight.shape)} does not broadcast to the "
                         f"input's shape {tuple(input.shape)}")
    return weight


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                         reduction: str = "mean") -> Tensor:
    """``-w (y log(p) + (1 - y) log(1 - p))`` for probabilities ``p`` (each log clamped to
    ``>= -100``, as in PyTorch, and PyTorch's gradient ``(p - y) / max(p (1 - p), 1e-12)``: at
    ``p`` exactly 0 or 1 it is +-1e12, not 0).

    Prefer :func:`binary_cross_entropy_with_logits` on raw scores: it never saturates.

    Args:
        input: probabilities in [0, 1] (checked; a ValueError otherwise).
        target: same shape as ``input``, values in [0, 1].
        weight: rescales each element's loss; broadcast to the input's shape.
        reduction: ``'mean'`` | ``'sum'`` | ``'none'`` (``mean`` is a plain mean of ``w * loss``).
    """
    name = "binary_cross_entropy"
    reduction = _reduction(name, reduction)
    target = _pointwise_operands(name, input, target, same_shape=True)
    xp = input.device.xp
    # One scalar comes back to the host here (a device -> host sync on a GPU): values outside
    # [0, 1] (or NaN) would otherwise give a silently meaningless loss.
    if not bool(xp.all((input.data >= 0) & (input.data <= 1))):
        raise ValueError(f"{name}: all elements of input (shape {tuple(input.shape)}) should be "
                         "probabilities between 0 and 1; for raw scores use "
                         "binary_cross_entropy_with_logits")
    loss = ops.binary_cross_entropy(input, target)  # one op, backward written out
    if weight is not None:
        loss = loss * _broadcast_weight(name, "weight", weight, input)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     *, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """BCE on raw scores ``x``: ``-w (p_w y log(sigmoid(x)) + (1 - y) log(1 - sigmoid(x)))``.

    Written as ``w ((1 - y) softplus(x) + p_w y softplus(-x))``: softplus never overflows and no
    log of a rounded-to-0 sigmoid is taken, so logits of +-1e4 give exact losses and gradients.

    Args:
        input: logits (any shape). target: same shape, values in [0, 1].
        weight: rescales each element's loss; broadcast to the input's shape.
        reduction: ``'mean'`` | ``'sum'`` | ``'none'``.
        pos_weight: weight of the positive term, per class (broadcast along the last dimension,
            e.g. shape ``(C,)``); ``> 1`` raises recall, ``< 1`` precision.

    Example:
        >>> F.binary_cross_entropy_with_logits(tn.tensor([1e4, -1e4]), tn.tensor([1.0, 1.0]))
        tensor(5000.)
    """
    name = "binary_cross_entropy_with_logits"
    reduction = _reduction(name, reduction)
    target = _pointwise_operands(name, input, target, same_shape=True)
    # threshold=inf: the exact softplus everywhere (the default switches to x above 20).
    positive_term = target * ops.softplus(-input, threshold=math.inf)
    if pos_weight is not None:
        positive_term = positive_term * _broadcast_weight(name, "pos_weight", pos_weight, input)
    loss = (1 - target) * ops.softplus(input, threshold=math.inf) + positive_term
    if weight is not None:
        loss = loss * _broadcast_weight(name, "weight", weight, input)
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, *, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence ``target * (log(target) - input)``, pointwise.

    Args:
        input: log-probabilities (e.g. from ``log_softmax``).
        target: probabilities (``0 * log 0`` counts as 0), or log-probabilities with
            ``log_target=True`` (then ``exp(target) * (target - input)``).
        reduction: ``'batchmean'`` (the sum divided by the batch size ``input.shape[0]``: the true
            KL divergence per sample), ``'sum'``, ``'mean'`` (over every element, as in PyTorch)
            or ``'none'``.
    """
    name = "kl_div"
    reduction = _reduction(name, reduction, _REDUCTIONS + ("batchmean",))
    target = _tensor(name, "target", target)
    target = _pointwise_operands(name, input, target, warn=False)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        positive = target > 0  # xlogy: 0 log 0 = 0, and the log never sees 0
        loss = ops.where(positive, target * ops.log(ops.where(positive, target, 1.0)), 0.0) \
            - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


# --- class-index losses (targets are class numbers, or probabilities) ---------------------------


def _class_count(name: str, input: Tensor) -> int:
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension: (C,), (N, C) or "
                         "(N, C, d1, ...), got a 0-d tensor")
    return input.shape[1] if input.ndim > 1 else input.shape[0]


def _index_target(name: str, input: Tensor, target) -> Tensor:
    """Checks for a class-index target: integers of shape (N, d1, ...) for input (N, C, d1, ...)."""
    _tensor(name, "target", target, floating=False)
    _same_device(name, input, target, "target")
    expected = tuple(input.shape[:1] + input.shape[2:]) if input.ndim > 1 else ()
    if target.dtype.kind not in "iu":
        hint = " (float class probabilities need a target of the input's shape)" \
            if target.dtype.kind == "f" and name == "cross_entropy" else ""
        raise TypeError(f"{name}: class-index target must be an integer tensor (e.g. int64) of "
                        f"shape {expected}, got {target.dtype} of shape {tuple(target.shape)}"
                        f"{hint}")
    if tuple(target.shape) != expected:
        raise ValueError(f"{name}: expected a target of shape {expected} for input of shape "
                         f"{tuple(input.shape)}, got target of shape {tuple(target.shape)}")
    return target


def _class_weight(name: str, input: Tensor, weight, classes: int):
    if weight is None:
        return None
    _tensor(name, "weight", weight)
    _same_device(name, input, weight, "weight")
    if tuple(weight.shape) != (classes,):
        raise ValueError(f"{name}: weight must hold one value per class, shape ({classes},) for "
                         f"input of shape {tuple(input.shape)}, got {tuple(weight.shape)}")
    return ops.cast(weight, input.dtype)


def _classes_last(x: Tensor, classes: int) -> Tensor:
    """(N, C, d1, ...) -> (N * d1 * ..., C), rows in the order of the target's elements."""
    if x.ndim == 2:
        return x
    if x.ndim > 2:
        x = x.permute((0, *range(2, x.ndim), 1))  # (N, d1, ..., C)
    return x.reshape(-1, classes)  # (M, C)


def _checked_labels(name: str, input: Tensor, target: Tensor, classes: int, ignore_index: int):
    """The target as flat int64 labels ``(M,)``, the mask of ignored ones (None when no label can
    be ignored), and the labels with the ignored ones replaced by class 0 (safe to index with;
    they get weight 0). A label out of range raises ValueError: at once on the CPU, at the next
    read of a value on a GPU (``backend/checks.py``: no host sync per call)."""
    device = input.device
    xp = device.xp
    labels = target.data.reshape(-1).astype(xp.int64, copy=False)  # (M,)
    message = ops.stable._label_message((name, input.shape), classes, ignore_index, device)
    if device.type == "cpu" and labels.size and not 0 <= ignore_index < classes:
        # The usual case first: every label a class (two reductions, read for free on the host)
        # means none is out of range and none equals ignore_index, so there is nothing to mask.
        low, high = device.read_scalars(labels.min(), labels.max())
        if 0 <= low and high < classes:
            return labels, None, labels
    backend.checks.index_range(xp, device, labels, 0, classes, ("labels", name, classes,
                               ignore_index), ValueError, message, exempt=ignore_index)
    ignored = labels == ignore_index
    return labels, ignored, xp.where(ignored, 0, labels)


def _fused_cross_entropy(name: str, input: Tensor, target: Tensor, weight, ignore_index: int,
                         reduction: str) -> Tensor:
    """Cross entropy of class indices through the one-op ``softmax_cross_entropy`` (its gradient
    is softmax minus one-hot, its labels checked inside it); class weights become constant row
    weights, and labels equal to ``ignore_index`` count with weight 0."""
    classes = _class_count(name, input)
    logits = _classes_last(input, classes)  # (M, C)
    labels = target.data.reshape(-1)  # (M,)
    rows = None
    if weight is not None:  # the weight of each row's class (a bad label's row is NaN anyway)
        xp = input.device.xp
        safe = xp.where((labels >= 0) & (labels < classes), labels, 0)
        rows = Tensor._make(weight.data[safe], input.device)
    loss = ops.stable._softmax_cross_entropy(logits, Tensor._make(labels, input.device), rows,
                                             reduction, ignore_index, (name, input.shape))
    return loss.reshape(target.shape) if reduction == "none" else loss


def _index_loss(name: str, log_probs: Tensor, target: Tensor, weight, ignore_index: int,
                reduction: str, smoothing: float = 0.0) -> Tensor:
    """NLL of the target classes (plus the label-smoothing term), with PyTorch's weighted mean:
    the sum divided by the total weight of the targets that are not ``ignore_index``."""
    classes = _class_count(name, log_probs)
    xp = log_probs.device.xp
    lp = _classes_last(log_probs, classes)  # (M, C)
    labels, ignored, safe = _checked_labels(name, log_probs, target, classes, ignore_index)
    if ignored is None:
        ignored = xp.zeros(labels.shape, dtype=bool)
    picked = lp[xp.arange(labels.shape[0]), safe]  # (M,)  log p of each target class
    keep = Tensor._make((~ignored).astype(log_probs.dtype), log_probs.device)  # (M,)
    target_weight = keep if weight is None else weight[safe] * keep  # (M,)
    loss = -(target_weight * picked)
    if smoothing:
        # PyTorch's label smoothing: (1 - eps) * nll + eps / C * (-sum_c w_c log p_c).
        spread = -(lp if weight is None else lp * weight).sum(axis=1)  # (M,)
        loss = (1 - smoothing) * loss + (smoothing / classes) * spread * keep
    if reduction == "none":
        return loss.reshape(target.shape)
    total = loss.sum()
    return total if reduction == "sum" else total / target_weight.sum()


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood ``-w[y] * input[y]`` of class-index targets ``y``.

    Args:
        input: log-probabilities, (N, C), (N, C, d1, ...) or (C,).
        target: integer class indices, (N,), (N, d1, ...) or () respectively, in [0, C).
        weight: one weight per class, shape (C,).
        ignore_index: targets equal to it add nothing to the loss or to the mean's denominator.
        reduction: ``'mean'`` (sum divided by the total weight of the non-ignored targets),
            ``'sum'`` or ``'none'`` (the target's shape).
    """
    name = "nll_loss"
    reduction = _reduction(name, reduction)
    _tensor(name, "input", input)
    classes = _class_count(name, input)
    target = _index_target(name, input, target)
    weight = _class_weight(name, input, weight, classes)
    return _index_loss(name, input, target, weight, ignore_index, reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits against class indices or class probabilities:
    ``-log softmax(input)[target]`` per sample (``-sum_c t_c log softmax(input)_c`` for
    probabilities), reduced.

    How it is computed: class indices go through the one fused primitive
    ``ops.softmax_cross_entropy`` (log-sum-exp shifted forward; backward ``softmax - one_hot``,
    scaled by the row weights that class weights and ``ignore_index`` give). Label smoothing, or a
    ``weight`` that requires grad, is composed as ``nll_loss(log_softmax(input))`` instead, and
    probability targets as ``-(log_softmax(input) * target).sum(class axis)``. Either way the
    log-sum-exp shift keeps logits of +-1e4 finite and exact, which softmax then log cannot.

    Args:
        input: logits, (N, C), (N, C, d1, ...) or (C,).
        target: either integer class indices of shape (N,), (N, d1, ...) or (), or floating class
            probabilities of the input's shape.
        weight: one weight per class, shape (C,).
        ignore_index: (class indices only) targets equal to it are skipped.
        reduction: ``'mean'`` | ``'sum'`` | ``'none'``. With class indices the mean divides by the
            total weight of the non-ignored targets; with probabilities by N * d1 * ...
        label_smoothing: in [0, 1]; the target becomes ``(1 - eps) * target + eps / C``.

    Example:
        >>> logits = tn.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 0.0]])
        >>> F.cross_entropy(logits, tn.tensor([0, 1]))
        tensor(0.1681)
    """
    name = "cross_entropy"
    reduction = _reduction(name, reduction)
    _tensor(name, "input", input)
    classes = _class_count(name, input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing}")
    weight = _class_weight(name, input, weight, classes)
    class_axis = 1 if input.ndim > 1 else 0
    if isinstance(target, Tensor) and target.ndim == input.ndim:
        if ignore_index >= 0:  # as PyTorch: only the (negative) default is accepted
            raise ValueError(f"{name}: ignore_index is not supported for class-probability "
                             f"targets, got ignore_index={ignore_index}")
        return _probability_loss(name, input, target, weight, reduction, label_smoothing,
                                 class_axis, classes)
    target = _index_target(name, input, target)
    if not label_smoothing and (weight is None or not weight.requires_grad):
        return _fused_cross_entropy(name, input, target, weight, ignore_index, reduction)
    log_probs = ops.log_softmax(input, axis=class_axis)
    return _index_loss(name, log_probs, target, weight, ignore_index, reduction, label_smoothing)


def _probability_loss(name, input, target, weight, reduction, smoothing, class_axis, classes):
    """Cross entropy against class probabilities: ``-sum_c w_c t_c log p_c`` per sample."""
    _same_device(name, input, target, "target")
    if target.dtype.kind != "f":
        raise TypeError(f"{name}: a target of the input's number of dimensions holds class "
                        f"probabilities and must be floating-point, got {target.dtype}; class "
                        f"indices need shape {tuple(input.shape[:1] + input.shape[2:])}")
    _check_same_shape(name, input, target)
    if smoothing:
        target = target * (1 - smoothing) + smoothing / classes
    terms = ops.log_softmax(input, axis=class_axis) * target
    if weight is not None:  # (C,) -> (C, 1, ..., 1): lines up with the class axis
        terms = terms * weight.reshape((classes,) + (1,) * (input.ndim - 1 - class_axis))
    return _reduce(-terms.sum(axis=class_axis), reduction)


# --- modules -------------------------------------------------------------------------------------


class _Loss(Module):
    """Base of the loss modules: holds ``reduction`` (checked when the module is built)."""

    _allowed = _REDUCTIONS

    def __init__(self, *, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction(type(self).__name__, reduction, self._allowed)


class _WeightedLoss(_Loss):
    """A loss with a per-class ``weight``, kept as a buffer (moves with ``.to()``, is saved in the
    state dict as ``weight`` when given, as in PyTorch)."""

    def __init__(self, weight: Tensor | None = None, *, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error, :func:`mse_loss`. Example: ``tn.nn.MSELoss()(pred, target)``."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error, :func:`l1_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """:func:`smooth_l1_loss`: quadratic below ``beta``, linear above."""

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction=reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """:func:`huber_loss`: quadratic below ``delta``, ``delta``-scaled linear above."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """:func:`cross_entropy` of logits against class indices or class probabilities.

    Example:
        >>> loss_fn = tn.nn.CrossEntropyLoss(label_smoothing=0.1)
        >>> loss = loss_fn(model(x), labels)          # model(x): (N, C) logits, labels: (N,) ints
    """

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, reduction=reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """:func:`nll_loss` of log-probabilities (e.g. after ``LogSoftmax``) against class indices."""

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean"):
        super().__init__(weight, reduction=reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """:func:`binary_cross_entropy` of probabilities."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """:func:`binary_cross_entropy_with_logits`: sigmoid and BCE in one stable expression.
    ``weight`` and ``pos_weight`` are buffers (state-dict keys ``weight``, ``pos_weight``)."""

    def __init__(self, weight: Tensor | None = None, *, reduction: str = "mean",
                 pos_weight: Tensor | None = None):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """:func:`kl_div`; ``reduction='batchmean'`` gives the KL divergence per sample."""

    _allowed = _REDUCTIONS + ("batchmean",)

    def __init__(self, *, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction=reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
