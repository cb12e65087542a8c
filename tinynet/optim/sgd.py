"""Stochastic gradient descent, with momentum and Nesterov momentum (``torch.optim.SGD``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backend import kernels
from ..tensor import Tensor
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent (Robbins & Monro, "A Stochastic Approximation Method", 1951),
    with optional momentum (Polyak, "Some methods of speeding up the convergence of iteration
    methods", 1964) and Nesterov momentum in the form of Sutskever, Martens, Dahl & Hinton, "On the
    importance of initialization and momentum in deep learning", ICML 2013.

    The update is PyTorch's, step ``t`` for each parameter ``p`` with gradient ``g``::

        g <- -g                                    if maximize
        g <- g + weight_decay * p                  (L2 penalty)
        b_1 = g;  b_t = momentum * b_{t-1} + (1 - dampening) * g     if momentum != 0
        g <- g + momentum * b_t   if nesterov,  else  g <- b_t
        p <- p - lr * g

    The first momentum buffer is the gradient itself (no dampening on the first step), and the
    momentum is applied to the step, not to the learning rate times the gradient (Sutskever et al.'s
    form), so changing ``lr`` mid-run does not rescale the velocity.

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        momentum: momentum factor (0 = plain SGD).
        dampening: dampening of the gradient added to the momentum buffer.
        weight_decay: L2 penalty coefficient added to the gradient.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend the objective instead of descending it.

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Example:
        >>> opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        if group["lr"] < 0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if group["momentum"] < 0:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {}  # no step count: PyTorch's SGD state is the momentum buffer alone

    def _slot_initial_value(self, key: str, group: dict[str, Any]) -> None:
        return None  # the momentum buffer starts as the first gradient (made in _update)

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay = group["weight_decay"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * w
        if momentum != 0:
            b = arrays["momentum_buffer"]
            if b is None:  # first step: the buffer is the gradient, undampened
                b = arrays["momentum_buffer"] = g.copy()
            else:
                b *= momentum
                b += g if dampening == 0 else (1 - dampening) * g  # skip a pass times 1.0
            g = g + momentum * b if group["nesterov"] else b
        w -= lr * g

    def _fused_step(self, xp, w, g, arrays, step, group) -> bool:
        """``_update`` with momentum, once the buffer exists, as one kernel
        (``kernels.SGD_MOMENTUM``, the same arithmetic in the same order)."""
        b = arrays.get("momentum_buffer")
        if group["momentum"] == 0 or b is None or w.dtype.kind != "f" or w.dtype.itemsize < 4:
            return False
        kernels.SGD_MOMENTUM(xp, g, group["lr"], group["momentum"], 1 - group["dampening"],
                             group["weight_decay"], -1.0 if group["maximize"] else 1.0,
                             int(group["nesterov"]), w, b)
        return True
