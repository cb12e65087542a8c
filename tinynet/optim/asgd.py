"""ASGD, averaged stochastic gradient descent (``torch.optim.ASGD``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer
from .shared import check_flags, check_nonnegative, effective_gradient


class ASGD(Optimizer):
    """Averaged SGD: Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
    SIAM J. Control Optim. 30(4), 1992, with the decaying step of Bottou, "Large-Scale Machine
    Learning with Stochastic Gradient Descent", COMPSTAT 2010.

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                          if maximize
        g <- g + weight_decay * p                        (L2 penalty)
        eta_t = lr / (1 + lambd * lr * (t - 1))^alpha    the decaying step size
        p <- p * (1 - lambd * eta_t) - eta_t * g
        mu_t = 1 / max(1, t - 1 - t0)
        ax <- p  if mu_t = 1,  else  ax + mu_t * (p - ax)     the running average of p

    The parameters themselves follow SGD with a decaying step; ``ax`` (in the optimizer state)
    is their average over the steps after ``t0``, the estimate the method is named for: copy it
    into the model to use it. ``eta_t`` and ``mu_t`` depend only on the step, so they are computed
    from it (PyTorch keeps them as state, ``eta`` and ``mu``, computed at the end of the previous
    step: under a learning-rate schedule PyTorch's ``eta`` lags one step behind the schedule,
    tinynet's uses the current ``lr``).

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate (the first step size).
        lambd: decay term of the step size (and of the weights).
        alpha: power of the step-size decay.
        t0: the step after which averaging starts.
        weight_decay: L2 penalty coefficient added to the gradient.
        foreach, capturable: accepted, no effect (see ``shared.py``).
        maximize: ascend the objective instead of descending it.
        differentiable: must be False.

    State per parameter: ``step``, ``ax``.

    Example:
        >>> opt = tn.optim.ASGD(model.parameters(), lr=1e-2, t0=100)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0,
                 foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        check_flags("ASGD", foreach, capturable, differentiable)
        defaults = {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0,
                    "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "weight_decay")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("ax",)

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, lambd = group["lr"], group["lambd"]
        g = effective_gradient(w, g, group)
        eta = lr / (1 + lambd * lr * (step - 1)) ** group["alpha"]
        mu = 1 / max(1, step - 1 - group["t0"])
        w *= 1 - lambd * eta
        w += -eta * g
        ax = arrays["ax"]
        if mu != 1:
            ax += mu * (w - ax)
        else:
            ax[...] = w
