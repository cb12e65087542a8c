"""Adadelta (``torch.optim.Adadelta``), the pytorch/examples MNIST script's optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer
from .shared import check_flags, check_nonnegative, effective_gradient


class Adadelta(Optimizer):
    """Adadelta: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012 (arXiv:1212.5701).

    The update is PyTorch's, for gradient ``g``::

        g <- -g                                          if maximize
        g <- g + weight_decay * p                        (L2 penalty)
        v <- rho * v + (1 - rho) * g^2                   running mean of squared gradients
        d = sqrt(u + eps) / sqrt(v + eps) * g            the step, in the units of p
        u <- rho * u + (1 - rho) * d^2                   running mean of squared steps
        p <- p - lr * d

    The ratio of the two running RMS values gives each coordinate a step with the units of the
    parameter (section 3.2 of the paper), so the paper's method needs no learning rate; ``lr``
    (default 1.0, the paper's method) scales it, as PyTorch's does.

    Args:
        params: tensors, or parameter-group dicts.
        lr: scale of the step (1.0: the paper's update).
        rho: decay rate of both running averages.
        eps: added inside both square roots (it also sets the size of the very first steps).
        weight_decay: L2 penalty coefficient added to the gradient.
        foreach, capturable: accepted, no effect (see ``shared.py``).
        maximize: ascend the objective instead of descending it.
        differentiable: must be False.

    State per parameter: ``step``, ``square_avg``, ``acc_delta``.

    Example:
        >>> opt = tn.optim.Adadelta(model.parameters(), lr=1.0)
    """

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False, differentiable: bool = False):
        check_flags("Adadelta", foreach, capturable, differentiable)
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr")
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {group['rho']}")
        check_nonnegative(group, "eps", "weight_decay")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("square_avg", "acc_delta")

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        g = effective_gradient(w, g, group)
        v, u = arrays["square_avg"], arrays["acc_delta"]
        v *= rho
        v += (1 - rho) * g * g
        delta = xp.sqrt(u + eps)
        delta /= xp.sqrt(v + eps)
        delta *= g
        u *= rho
        u += (1 - rho) * delta * delta
        w += -lr * delta
