"""Adagrad (``torch.optim.Adagrad``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12, 2011.

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                   if maximize
        g <- g + weight_decay * p                 (L2 penalty)
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s <- s + g^2                              (s starts at initial_accumulator_value)
        p <- p - lr_t * g / (sqrt(s) + eps)

    Each coordinate's step shrinks with the sum of its squared gradients, so rarely-updated
    coordinates keep large steps (the point of the method for sparse features).

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty coefficient added to the gradient.
        initial_accumulator_value: starting value of the sum of squares.
        eps: added to the denominator for numerical stability.
        maximize: ascend the objective instead of descending it.

    State per parameter (created with the optimizer, as PyTorch does): ``step``, ``sum``.

    Example:
        >>> opt = tn.optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "maximize": maximize}
        super().__init__(params, defaults)
        for group in self.param_groups:  # PyTorch creates Adagrad's state up front
            for p in group["params"]:
                self.state[p] = self._init_state(p, group)

    def _validate(self, group: dict[str, Any]) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            if group[name] < 0:
                label = "learning rate" if name == "lr" else f"{name} value"
                raise ValueError(f"Invalid {label}: {group[name]}")

    def _init_state(self, p, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, **self._slot_tensors(p, group)}

    def _slot_initial_value(self, key: str, group: dict[str, Any]) -> float:
        return group["initial_accumulator_value"]

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("sum",)

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, lr_decay, eps, weight_decay = (group["lr"], group["lr_decay"], group["eps"],
                                           group["weight_decay"])
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * w
        clr = lr / (1 + (step - 1) * lr_decay)
        s = arrays["sum"]
        s += g * g
        std = xp.sqrt(s)
        std += eps
        w += -clr * g / std
