"""RMSprop (``torch.optim.RMSprop``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop: Tieleman & Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average
    of its recent magnitude", COURSERA: Neural Networks for Machine Learning, 2012. The centered
    variant is from Graves, "Generating Sequences With Recurrent Neural Networks", 2013
    (arXiv:1308.0850).

    The update is PyTorch's, for gradient ``g``::

        g <- -g                                   if maximize
        g <- g + weight_decay * p                 (L2 penalty)
        v <- alpha * v + (1 - alpha) * g^2        running mean square
        a <- alpha * a + (1 - alpha) * g          if centered (running mean)
        d = sqrt(v - a^2) + eps  if centered,  else  sqrt(v) + eps
        b <- momentum * b + g / d;  p <- p - lr * b      if momentum > 0
        p <- p - lr * g / d                              otherwise

    ``eps`` is added outside the square root, as PyTorch does (Keras adds it inside).

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        alpha: smoothing constant of the running averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient added to the gradient.
        momentum: momentum factor.
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
        maximize: ascend the objective instead of descending it.

    State per parameter: ``step``, ``square_avg``, plus ``momentum_buffer`` (momentum > 0) and
    ``grad_avg`` (centered).

    Example:
        >>> opt = tn.optim.RMSprop(model.parameters(), lr=1e-3)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False):
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            if group[name] < 0:
                label = "learning rate" if name == "lr" else f"{name} value"
                raise ValueError(f"Invalid {label}: {group[name]}")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        keys = ("square_avg",)
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        return keys + ("grad_avg",) if group["centered"] else keys

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * w
        v = arrays["square_avg"]
        v *= alpha
        v += (1 - alpha) * g * g
        if group["centered"]:
            a = arrays["grad_avg"]
            a += (1 - alpha) * (g - a)  # = alpha * a + (1 - alpha) * g, PyTorch's lerp
            denom = xp.sqrt(v - a * a)
        else:
            denom = xp.sqrt(v)
        denom += eps
        if momentum > 0:
            b = arrays["momentum_buffer"]
            b *= momentum
            b += g / denom
            w -= lr * b
        else:
            w += -lr * g / denom
