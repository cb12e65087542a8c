"""Metrics for classification: accuracy and top-k accuracy, computed on the training device.

A metric is a function ``metric(output, target) -> Tensor``: the batch mean as a 0-d tensor on
the output's device (float64 here, so that batch means times batch sizes are exact counts).
``fit`` and ``evaluate`` weight each batch's value by its size, add it to a running sum on the
device (:func:`accumulate`) and read the sums back to the host once per epoch, so metrics never
force a device synchronisation per batch. A metric may offer a cheaper way to add its batch sum
(``metric.accumulate``): accuracy counts the hits with one kernel, two launches a batch in all.
Names accepted by ``fit(metrics=...)``: ``"accuracy"`` and ``"top{k}_accuracy"``
(``"top5_accuracy"``), or any callable (its ``__name__`` becomes the history key).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..autograd import no_grad
from ..backend import kernels
from ..creation import arange
from ..tensor import Tensor

Metric = Callable[[Tensor, Tensor], Tensor]

__all__ = ["accumulate", "accuracy", "get_metric", "metric_name", "top_k_accuracy"]


def accuracy(output: Tensor, target: Tensor) -> Tensor:
    """Fraction of samples whose predicted class is the target.

    Args:
        output: scores ``(B, C)`` (logits or probabilities: the arg-max is the prediction), or one
            logit per sample ``(B,)`` / ``(B, 1)`` for binary problems (positive when > 0).
        target: class indices ``(B,)`` (integers; 0/1 for the binary case).

    Example:
        >>> accuracy(tn.tensor([[2.0, 1.0], [0.0, 3.0]]), tn.tensor([0, 0])).item()
        0.5
    """
    with no_grad():
        output = output.detach()
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            predicted = (output.reshape(-1) > 0).long()  # (B,) binary logits
        else:
            predicted = output.argmax(axis=1)  # (B,)
        return (predicted == target.reshape(-1)).double().mean()


def _count_hits(output: Tensor, target: Tensor, sums, slot: int) -> None:
    """Add the batch's number of correct predictions to ``sums[slot]`` on the device: the arg-max
    and one counting kernel (``accuracy``'s ``accumulate``)."""
    with no_grad():
        scores = output.detach().data
        if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
            predicted = scores.reshape(-1) > 0  # (B,) binary logits
        else:
            predicted = scores.argmax(axis=1)  # (B,)
        kernels.COUNT_EQUAL(output.device.xp, predicted, target.data.reshape(-1), slot, sums)


accuracy.accumulate = _count_hits


def accumulate(metric: Metric, output: Tensor, target: Tensor, sums, slot: int) -> None:
    """Add ``metric``'s batch value times the batch size to ``sums[slot]``, a float64 array on the
    output's device (through ``metric.accumulate`` when it has one): no host read."""
    add = getattr(metric, "accumulate", None)
    if add is not None:
        add(output, target, sums, slot)
        return
    with no_grad():
        value = metric(output, target)
    n = float(target.shape[0])
    if isinstance(value, Tensor):
        kernels.ACCUMULATE(output.device.xp, value.data, n, slot, sums)
    else:  # a plain number (computed on the host): one small upload
        kernels.ACCUMULATE(output.device.xp, output.device.xp.asarray(float(value)), n, slot,
                           sums)


def top_k_accuracy(output: Tensor, target: Tensor, k: int = 5) -> Tensor:
    """Fraction of samples whose target class is among the ``k`` highest scores.

    Computed without sorting: the target is in the top ``k`` when fewer than ``k`` classes score
    strictly higher than it (a tie with the k-th score counts as a hit).

    Args:
        output: scores ``(B, C)``.
        target: class indices ``(B,)``.
        k: how many of the highest-scoring classes count.

    Example:
        >>> top_k_accuracy(tn.tensor([[0.1, 0.5, 0.4]]), tn.tensor([2]), k=2).item()
        1.0
    """
    if k < 1:
        raise ValueError(f"top_k_accuracy needs k >= 1, got {k}")
    with no_grad():
        output = output.detach()
        if output.ndim != 2:
            raise ValueError(f"top_k_accuracy needs scores of shape (B, C), got {output.shape}")
        target = target.reshape(-1)
        rows = arange(output.shape[0], device=output.device)
        target_score = output[rows, target]  # (B,)
        higher = (output > target_score.unsqueeze(1)).long().sum(axis=1)  # (B,) classes above
        return (higher < k).double().mean()


_TOP_K = re.compile(r"top_?(\d+)(_accuracy)?$")


def get_metric(metric: str | Metric) -> Metric:
    """The function for a metric name (``"accuracy"``, ``"top3_accuracy"``) or a callable as is."""
    if callable(metric):
        return metric
    if metric in ("accuracy", "acc"):
        return accuracy
    match = _TOP_K.match(metric)
    if match:
        k = int(match.group(1))

        def top_k(output: Tensor, target: Tensor) -> Tensor:
            return top_k_accuracy(output, target, k)

        top_k.__name__ = f"top{k}_accuracy"
        return top_k
    raise ValueError(f"unknown metric {metric!r}: use 'accuracy', 'top5_accuracy' (any k) or a "
                     "function metric(output, target) -> Tensor")


def metric_name(metric: str | Metric) -> str:
    """The history key of a metric: ``"accuracy"``, ``"top5_accuracy"``, or a function's name."""
    if isinstance(metric, str):
        return "accuracy" if metric == "acc" else get_metric(metric).__name__
    return getattr(metric, "__name__", type(metric).__name__)
